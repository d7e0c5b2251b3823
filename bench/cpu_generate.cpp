// Generation tokens/s on the CPU backend with and without the KV cache (rl/generate.h).
//
// A small GPT-2 (4 layers, 128 wide, vocab 1024 — the size of the example models) with random
// weights; prompts of 32 random tokens; 64 new tokens greedy, no stop token, so every row
// generates all of them. Without the cache each step re-runs the whole sequence, so its cost grows
// with the length; the cache turns each step into a one-token forward plus attention over the
// cached keys. Timing: 1 warm-up call, then the median of 3 (bench_util.h).
// Output: a markdown table; thread count = OMP_NUM_THREADS.
#include <omp.h>

#include <cstdio>

#include "bench_util.h"
#include "rl/generation/generate.h"

using namespace tiller;

int main() {
  constexpr int64_t kPromptTokens = 32;
  constexpr int64_t kNewTokens = 64;
  const ModelConfig config = ModelConfig::gpt2(/*vocab_size=*/1024, /*n_layer=*/4, /*n_head=*/4,
                                               /*n_embd=*/128, /*max_seq_len=*/256);
  Transformer model(config, 1);
  std::printf(
      "# CPU generation: gpt2 %lld layers x %lld wide, vocab %lld, %lld-token prompts, "
      "%lld new tokens, %d threads\n\n",
      static_cast<long long>(config.n_layer), static_cast<long long>(config.n_embd),
      static_cast<long long>(config.vocab_size), static_cast<long long>(kPromptTokens),
      static_cast<long long>(kNewTokens), omp_get_max_threads());
  std::printf("| batch | KV cache tok/s | no cache tok/s | speed-up |\n");
  std::printf("|------:|---------------:|---------------:|---------:|\n");
  for (int64_t batch : {1, 4, 16}) {
    std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(batch));
    uint64_t state = 12345 + static_cast<uint64_t>(batch);
    for (auto& prompt : prompts)
      for (int64_t t = 0; t < kPromptTokens; ++t) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;  // LCG: fixed prompts
        prompt.push_back(static_cast<int32_t>((state >> 33) % config.vocab_size));
      }
    double tokens_per_second[2] = {0, 0};
    for (int cached = 0; cached < 2; ++cached) {
      rl::GenerationConfig generation;
      generation.max_new_tokens = kNewTokens;
      generation.sampling.temperature = 0.f;
      generation.use_cache = cached == 1;
      int64_t generated = 0;
      double seconds = bench::time_median(
          [&] { generated = rl::generate(model, prompts, generation).generated_tokens; }, 1, 3);
      tokens_per_second[cached] = static_cast<double>(generated) / seconds;
    }
    std::printf("| %5lld | %14.0f | %14.0f | %7.1fx |\n", static_cast<long long>(batch),
                tokens_per_second[1], tokens_per_second[0],
                tokens_per_second[1] / tokens_per_second[0]);
  }
  return 0;
}
