// llm.c's CPU trainer as a bench_cpu_train peer: includes karpathy/llm.c's train_gpt2.c (fetched
// by the user, never committed here) with its main() compiled out, and times its training step
// (gpt2_forward, gpt2_zero_grad, gpt2_backward, gpt2_update) at any B x T.
//
//   cc -Ofast -march=native -fopenmp -DOMP -DTESTING -I<llm.c> bench/llmc_train_gpt2.c -lm \
//      -o llmc_train_gpt2        (llm.c's Makefile flags; bench_cpu_train --llmc-src does this)
//   llmc_train_gpt2 --batch 4 --seq-len 64 --steps 5 --warmup 3 --dir /tmp/llmc
//
// llm.c reads a checkpoint and a token file; both are written here in its formats (model header
// 20240326 version 3, tokens header 20240520 version 1) with random contents: GPT-2 124M shapes,
// matrices ~ N(0, 0.02) from a fixed xorshift generator, LayerNorm gains 1, biases 0; uniform
// random tokens. The step is llm.c's own main loop's: AdamW lr 1e-4, betas (0.9, 0.999), eps 1e-8,
// no weight decay, no clipping. Prints step_seconds (median), cpu_seconds (all threads, per timed
// step), peak_rss_kib and tokens_per_sec lines, which bench_cpu_train parses.
#include "train_gpt2.c"

#include <sys/resource.h>

static uint64_t xorshift_state = 88172645463325252ull;

static float uniform01(void) {
  xorshift_state ^= xorshift_state << 13;
  xorshift_state ^= xorshift_state >> 7;
  xorshift_state ^= xorshift_state << 17;
  return (float)((xorshift_state >> 40) + 0.5) / (float)(1ull << 24);
}

static float normal(float std) {  // Box-Muller
  float u1 = uniform01(), u2 = uniform01();
  return std * sqrtf(-2.f * logf(u1)) * cosf(6.2831853f * u2);
}

static void write_checkpoint(const char* path, int maxT, int V, int Vp, int L, int NH, int C) {
  GPT2Config config = {.max_seq_len = maxT, .vocab_size = V, .padded_vocab_size = Vp,
                       .num_layers = L, .num_heads = NH, .channels = C};
  size_t sizes[NUM_PARAMETER_TENSORS];
  fill_in_parameter_sizes(sizes, config);
  int header[256] = {20240326, 3, maxT, V, L, NH, C, Vp};
  FILE* f = fopenCheck(path, "wb");
  fwrite(header, sizeof(int), 256, f);
  for (int t = 0; t < NUM_PARAMETER_TENSORS; ++t) {
    // Tensor order of ParameterTensors: 2, 3, 8, 9, 14, 15 are LayerNorm gains and biases.
    int is_gain = t == 2 || t == 8 || t == 14;
    int is_bias = t == 3 || t == 5 || t == 7 || t == 9 || t == 11 || t == 13 || t == 15;
    float* values = (float*)mallocCheck(sizes[t] * sizeof(float));
    for (size_t i = 0; i < sizes[t]; ++i) values[i] = is_gain ? 1.f : is_bias ? 0.f : normal(0.02f);
    fwrite(values, sizeof(float), sizes[t], f);
    free(values);
  }
  fcloseCheck(f);
}

static void write_tokens(const char* path, int V, int64_t count) {
  int header[256] = {20240520, 1, (int)count};
  FILE* f = fopenCheck(path, "wb");
  fwrite(header, sizeof(int), 256, f);
  uint16_t* tokens = (uint16_t*)mallocCheck(count * sizeof(uint16_t));
  for (int64_t i = 0; i < count; ++i) tokens[i] = (uint16_t)(uniform01() * V);
  fwrite(tokens, sizeof(uint16_t), count, f);
  free(tokens);
  fcloseCheck(f);
}

static int compare_doubles(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  int B = 4, T = 64, steps = 5, warmup = 3;
  const char* dir = "/tmp";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--batch")) B = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--seq-len")) T = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
    else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
  }
  if (steps < 1 || steps > 1000 || B < 1 || T < 1 || T > 1024) {
    fprintf(stderr, "bad --batch/--seq-len/--steps\n");
    return 2;
  }
  char model_path[512], tokens_path[512];
  snprintf(model_path, sizeof model_path, "%s/llmc_gpt2_124M_random.bin", dir);
  snprintf(tokens_path, sizeof tokens_path, "%s/llmc_random_tokens.bin", dir);
  write_checkpoint(model_path, 1024, 50257, 50304, 12, 12, 768);
  write_tokens(tokens_path, 50257, (int64_t)B * T * (warmup + steps + 2) + 1);

  GPT2 model;
  gpt2_build_from_checkpoint(&model, model_path);
  DataLoader loader;
  dataloader_init(&loader, tokens_path, B, T, 0, 1, 0);
  double seconds[1000], cpu_start = 0;
  for (int step = 0; step < warmup + steps; ++step) {
    dataloader_next_batch(&loader);
    struct timespec start, end, cpu;
    if (step == warmup) {
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
      cpu_start = cpu.tv_sec + cpu.tv_nsec / 1e9;
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    gpt2_forward(&model, loader.inputs, loader.targets, B, T);
    gpt2_zero_grad(&model);
    gpt2_backward(&model);
    gpt2_update(&model, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f, step + 1);
    clock_gettime(CLOCK_MONOTONIC, &end);
    if (step >= warmup)
      seconds[step - warmup] = (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9;
    printf("step %d loss %f\n", step, model.mean_loss);
  }
  struct timespec cpu_end;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu_end);
  double cpu_per_step = (cpu_end.tv_sec + cpu_end.tv_nsec / 1e9 - cpu_start) / steps;
  qsort(seconds, steps, sizeof(double), compare_doubles);
  double median = seconds[steps / 2];
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  printf("step_seconds %.4f\ncpu_seconds %.4f\npeak_rss_kib %ld\ntokens_per_sec %.1f\n", median,
         cpu_per_step, usage.ru_maxrss, B * T / median);
  dataloader_free(&loader);
  gpt2_free(&model);
  return 0;
}
