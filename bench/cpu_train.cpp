// Training throughput on the CPU backend against its CPU peers: the time of one full training
// step (forward, loss, backward, grad-norm clipping, AdamW) of a GPT-2, f32.
//
//   bench_cpu_train                       # small GPTs: tiller, then torch_cpu_train.py
//   bench_cpu_train --suite gpt2 --python /work/wt/venv/bin/python --llmc-src /path/to/llm.c
//                                         # GPT-2 124M at B x T = 4 x 64 and 4 x 256: tiller,
//                                         # PyTorch, llm.c, each next to the GEMM ceiling
//   bench_cpu_train --no-torch --steps 10 --warmup 2
//   bench_cpu_train --suite gpt2 --baseline OTHER/bench_cpu_train
//                                         # also another build of tiller (before/after a change)
//
// Every side runs in its own process, one after the other (tiller re-executes this binary with
// --worker), so each gets the machine alone and reports its own peak RSS. Each prints
// step_seconds (median of the timed steps), cpu_seconds (CPU time of all its threads per timed
// step), peak_rss_kib and tokens_per_sec; this program parses them. All sides train the same shapes on random tokens — a step's speed does not depend
// on the data — and differ only where each library's own trainer does (the table says how).
// The thread count is the OpenMP thread count here (OMP_NUM_THREADS), torch.set_num_threads(same)
// in PyTorch and OMP_NUM_THREADS for llm.c; children inherit the environment, so OMP_WAIT_POLICY
// and OPENBLAS_CORETYPE (printed in the header) are the same for all:
//   OMP_WAIT_POLICY=passive   on a machine shared with other work, spinning OpenMP threads that
//                             lose their core stall every barrier (2 threads: ~6x slower).
//   OPENBLAS_CORETYPE         which GEMM kernels OpenBLAS uses (tiller; Debian's torch too).
// The GEMM ceiling is tiller's matmul op on a (2048 x 768) @ (768 x 3072) product (a GPT-2 MLP
// matmul at 2048 tokens), median of 7 after 2 warm-ups, measured before each GPT-2 shape, and the
// load average (/proc/loadavg, 1 minute) is printed next to every figure: this is meant for a
// shared machine, where a ceiling and a step measured minutes apart must be read with the load.
// FLOPs per step: tokens x (6 N + 12 L T C) (nanoGPT / PaLM), N the parameters without the
// position table (the tied token table counts: it is the LM head).
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "bench_util.h"
#include "core/models/model.h"
#include "core/ops/ops.h"
#include "kernels/cpu/parallel.h"
#include "optim/adamw.h"
#include "optim/clip.h"

using namespace tiller;

namespace {

struct TrainShape {
  int64_t layers, width, heads, batch, seq_len, vocab, max_seq_len;
  std::string str() const {
    return fmt::format("L={} C={} H={} B={} T={} V={}", layers, width, heads, batch, seq_len,
                       vocab);
  }
  int64_t tokens() const { return batch * seq_len; }
};

// The example trainer's default model, and one 4x wider in compute.
const std::vector<TrainShape> kSmallShapes = {{4, 128, 4, 16, 128, 1024, 128},
                                              {4, 256, 4, 8, 256, 2048, 256}};
// GPT-2 124M (vocabulary 50257, 1024 positions) at the B x T of issue #16.
const std::vector<TrainShape> kGpt2Shapes = {{12, 768, 12, 4, 64, 50257, 1024},
                                             {12, 768, 12, 4, 256, 50257, 1024}};

struct RunResult {
  double step_seconds = -1;
  double peak_rss_mib = -1;
  double cpu_seconds = -1;  // CPU time of all threads per timed step
  double load = -1;  // 1-minute load average when the run ended
  bool ok() const { return step_seconds > 0; }
};

double load_average() {
  std::ifstream file("/proc/loadavg");
  double one_minute = -1;
  file >> one_minute;
  return one_minute;
}

long peak_rss_kib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// CPU time of all this process's threads: with the machine shared, wall time says how much of
// the cores this process got; CPU time per step says how much work a step is.
double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// The tiller step, run inside the --worker child.
int run_tiller_worker(const TrainShape& s, int warmup, int steps) {
  Transformer model(ModelConfig::gpt2(s.vocab, s.layers, s.heads, s.width, s.max_seq_len), 1);
  optim::AdamW optimizer(optim::default_param_groups(model.parameters(), 0.1f),
                         {.lr = 1e-3f, .beta2 = 0.95f, .weight_decay = 0.1f});
  Generator gen(7);
  std::vector<int32_t> inputs, targets;
  for (int64_t i = 0; i < s.tokens(); ++i) {
    inputs.push_back(static_cast<int32_t>(gen.take(1) * 2654435761u % s.vocab));
    targets.push_back(static_cast<int32_t>(gen.take(1) * 2654435761u % s.vocab));
  }
  Tensor x = Tensor::from_ints(inputs, {s.batch, s.seq_len});
  Tensor y = Tensor::from_ints(targets, {s.batch, s.seq_len});
  float last_loss = 0;
  auto step = [&] {
    optimizer.zero_grad();
    Tensor loss = model.loss(x, y);
    loss.backward();
    float norm = optim::global_grad_norm(model.parameters());
    optimizer.step(optim::clip_factor(norm, 1.f));
    last_loss = loss.item();
  };
  for (int i = 0; i < warmup; ++i) step();
  const double cpu_start = process_cpu_seconds();
  const double seconds = bench::time_median(step, 0, steps);
  const double cpu_per_step = (process_cpu_seconds() - cpu_start) / steps;
  std::printf(
      "last_loss %.4f\nstep_seconds %.4f\ncpu_seconds %.4f\npeak_rss_kib %ld\ntokens_per_sec "
      "%.1f\n",
      last_loss, seconds, cpu_per_step, peak_rss_kib(), static_cast<double>(s.tokens()) / seconds);
  return 0;
}

// Runs a command, echoes nothing unless it fails, and parses its "key value" lines.
RunResult run_peer(const std::string& command) {
  std::FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  RunResult result;
  if (!pipe) return result;
  std::string output;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe)) output += buffer;
  int status = pclose(pipe);
  result.load = load_average();
  std::map<std::string, double> values;
  size_t begin = 0;
  while (begin < output.size()) {
    size_t end = output.find('\n', begin);
    if (end == std::string::npos) end = output.size();
    std::string line = output.substr(begin, end - begin);
    begin = end + 1;
    size_t space = line.find(' ');
    if (space == std::string::npos) continue;
    char* parsed_end = nullptr;
    double value = std::strtod(line.c_str() + space + 1, &parsed_end);
    if (parsed_end != line.c_str() + space + 1) values[line.substr(0, space)] = value;
  }
  if (status == 0 && values.count("step_seconds")) {
    result.step_seconds = values["step_seconds"];
    if (values.count("peak_rss_kib")) result.peak_rss_mib = values["peak_rss_kib"] / 1024.0;
    if (values.count("cpu_seconds")) result.cpu_seconds = values["cpu_seconds"];
  } else {
    std::fprintf(stderr, "peer run failed (%s):\n%s\n", command.c_str(), output.c_str());
  }
  return result;
}

std::string shape_arguments(const TrainShape& s) {
  return fmt::format(
      "--layers {} --width {} --heads {} --batch {} --seq-len {} --vocab {} "
      "--max-seq-len {}",
      s.layers, s.width, s.heads, s.batch, s.seq_len, s.vocab, s.max_seq_len);
}

// GFLOP/s of tiller's matmul on a GPT-2 MLP product, median of 7 after 2 warm-ups: by wall time,
// and by CPU time per thread (the rate had each thread kept its core; see the table's notes).
struct Ceiling {
  double wall_gflops, cpu_gflops;
};

Ceiling gemm_ceiling(int threads) {
  const int64_t M = 2048, K = 768, N = 3072;
  const double flops = 2.0 * M * N * K;
  Tensor a = Tensor::full({M, K}, 0.5f), b = Tensor::full({K, N}, 0.25f);
  auto product = [&] { Tensor c = matmul(a, b); };
  for (int i = 0; i < 2; ++i) product();
  const double cpu_start = process_cpu_seconds();
  const double seconds = bench::time_median(product, 0, 7);
  const double cpu_per_call = (process_cpu_seconds() - cpu_start) / 7;
  return {flops / seconds / 1e9, flops / (cpu_per_call / threads) / 1e9};
}

double flops_per_step(const TrainShape& s) {
  // Parameters without the position table; the tied token table once, unpadded.
  const int64_t C = s.width, L = s.layers;
  const int64_t per_layer = 12 * C * C + 13 * C;  // qkv, proj, fc, fc_proj + biases and 2 norms
  const double N = static_cast<double>(s.vocab * C + L * per_layer + 2 * C);
  return static_cast<double>(s.tokens()) * (6.0 * N + 12.0 * L * s.seq_len * C);
}

std::string seconds_cell(const RunResult& r) {
  if (!r.ok()) return "n/a";
  return fmt::format("{:.3f} s, CPU {:.2f} s, {:.0f} MiB (load {:.1f})", r.step_seconds,
                     r.cpu_seconds, r.peak_rss_mib, r.load);
}

}  // namespace

int main(int argc, char** argv) {
  bool with_torch = true;
  int steps = 7, warmup = 2;
  std::string suite = "small", worker, python = "/usr/bin/python3", llmc_src, baseline;
  std::string bench_dir = TILLER_BENCH_DIR;
  TrainShape worker_shape{};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_cpu_train: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--no-torch")
      with_torch = false;
    else if (arg == "--steps")
      steps = std::stoi(next());
    else if (arg == "--warmup")
      warmup = std::stoi(next());
    else if (arg == "--suite")
      suite = next();
    else if (arg == "--python")
      python = next();
    else if (arg == "--llmc-src")
      llmc_src = next();
    else if (arg == "--baseline")
      baseline = next();
    else if (arg == "--bench-dir")
      bench_dir = next();
    else if (arg == "--worker")
      worker = next();
    else if (arg == "--layers")
      worker_shape.layers = std::stoll(next());
    else if (arg == "--width")
      worker_shape.width = std::stoll(next());
    else if (arg == "--heads")
      worker_shape.heads = std::stoll(next());
    else if (arg == "--batch")
      worker_shape.batch = std::stoll(next());
    else if (arg == "--seq-len")
      worker_shape.seq_len = std::stoll(next());
    else if (arg == "--vocab")
      worker_shape.vocab = std::stoll(next());
    else if (arg == "--max-seq-len")
      worker_shape.max_seq_len = std::stoll(next());
    else {
      std::fprintf(stderr,
                   "usage: bench_cpu_train [--suite small|gpt2] [--no-torch] [--steps N] "
                   "[--warmup N] [--python P] [--llmc-src LLM_C_DIR] [--baseline BENCH_CPU_TRAIN] "
                   "[--bench-dir DIR]\n");
      return 2;
    }
  }
  if (steps < 1 || warmup < 0 || (suite != "small" && suite != "gpt2")) {
    std::fprintf(stderr, "bench_cpu_train: need --steps >= 1, --warmup >= 0, --suite small|gpt2\n");
    return 2;
  }
  if (worker == "tiller") return run_tiller_worker(worker_shape, warmup, steps);

  const int threads = kernels::cpu::max_threads();
  auto environment = [](const char* name) {
    const char* value = std::getenv(name);
    return std::string(value ? value : "unset");
  };
  const std::string self = std::filesystem::read_symlink("/proc/self/exe");
  const std::string timing = fmt::format("--warmup {} --steps {}", warmup, steps);
  std::string llmc_binary;
  if (!llmc_src.empty()) {
    llmc_binary = fmt::format("/tmp/bench_cpu_train_llmc_{}", getpid());
    std::string build = fmt::format(
        "cc -Ofast -march=native -fopenmp -DOMP -DTESTING -Wno-unused-result -I{} "
        "{}/llmc_train_gpt2.c "
        "-lm -o {}",
        llmc_src, bench_dir, llmc_binary);
    if (std::system(build.c_str()) != 0) {
      std::fprintf(stderr, "bench_cpu_train: could not build llm.c (%s)\n", build.c_str());
      llmc_binary.clear();
    }
  }
  std::printf(
      "Training step (fwd + loss + bwd + clip + AdamW), f32, %d threads, %d warm-up + median of "
      "%d steps (OMP_WAIT_POLICY=%s, OPENBLAS_CORETYPE=%s); load = 1-minute load average\n\n",
      threads, warmup, steps, environment("OMP_WAIT_POLICY").c_str(),
      environment("OPENBLAS_CORETYPE").c_str());
  const std::vector<TrainShape>& shapes = suite == "gpt2" ? kGpt2Shapes : kSmallShapes;
  if (suite == "gpt2")
    std::printf(
        "| config | GEMM ceiling GFLOP/s | tiller step, CPU/step, peak RSS | tiller GFLOP/s (%% of "
        "ceiling) | FLOPs / ceiling (wall / CPU), tiller at | baseline tiller | PyTorch | llm.c "
        "|\n"
        "|---|---|---|---|---|---|---|---|\n");
  else
    std::printf(
        "| config | tiller | tok/s | PyTorch | tok/s | tiller / PyTorch |\n"
        "|---|---|---|---|---|---|\n");
  for (const TrainShape& shape : shapes) {
    const Ceiling ceiling = suite == "gpt2" ? gemm_ceiling(threads) : Ceiling{0, 0};
    const double ceiling_load = load_average();
    RunResult ours =
        run_peer(fmt::format("{} --worker tiller {} {}", self, shape_arguments(shape), timing));
    RunResult before, torch, llmc;
    if (!baseline.empty())
      before = run_peer(
          fmt::format("{} --worker tiller {} {}", baseline, shape_arguments(shape), timing));
    if (with_torch)
      torch = run_peer(fmt::format("{} {}/torch_cpu_train.py {} {} --threads {}", python,
                                   bench_dir, shape_arguments(shape), timing, threads));
    bool llmc_fits = shape.layers == 12 && shape.width == 768 && shape.vocab == 50257;
    if (!llmc_binary.empty() && llmc_fits)
      llmc = run_peer(fmt::format("OMP_NUM_THREADS={} {} --batch {} --seq-len {} {} --dir /tmp",
                                  threads, llmc_binary, shape.batch, shape.seq_len, timing));
    if (suite == "gpt2") {
      // Wall: step time against the wall-time ceiling. CPU: CPU seconds per step / threads
      // against the CPU-time ceiling (what a quiet machine would give if no thread ever idled).
      const double flops = flops_per_step(shape);
      const double ideal_wall = flops / (ceiling.wall_gflops * 1e9);
      const double ideal_cpu = flops / (ceiling.cpu_gflops * 1e9);
      std::string rate = "n/a", ratio = "n/a";
      if (ours.ok()) {
        double cpu_step = ours.cpu_seconds / threads;
        rate = fmt::format("wall {:.0f} ({:.0f}%), CPU {:.0f} ({:.0f}%)",
                           flops / ours.step_seconds / 1e9, 100 * ideal_wall / ours.step_seconds,
                           flops / cpu_step / 1e9, 100 * ideal_cpu / cpu_step);
        ratio = fmt::format("{:.3f} s / {:.3f} s: {:.2f}x / {:.2f}x", ideal_wall, ideal_cpu,
                            ours.step_seconds / ideal_wall, cpu_step / ideal_cpu);
      }
      std::printf("| %s | wall %.0f, CPU %.0f (load %.1f) | %s | %s | %s | %s | %s | %s |\n",
                  shape.str().c_str(), ceiling.wall_gflops, ceiling.cpu_gflops, ceiling_load,
                  seconds_cell(ours).c_str(), rate.c_str(), ratio.c_str(),
                  seconds_cell(before).c_str(), seconds_cell(torch).c_str(),
                  seconds_cell(llmc).c_str());
    } else {
      auto tokens = [&](const RunResult& r) {
        return r.ok() ? fmt::format("{:.0f}", shape.tokens() / r.step_seconds) : std::string("n/a");
      };
      std::string ratio = ours.ok() && torch.ok()
                              ? fmt::format("{:.2f}x", torch.step_seconds / ours.step_seconds)
                              : std::string("n/a");
      std::printf("| %s | %s | %s | %s | %s | %s |\n", shape.str().c_str(),
                  seconds_cell(ours).c_str(), tokens(ours).c_str(), seconds_cell(torch).c_str(),
                  tokens(torch).c_str(), ratio.c_str());
    }
    std::fflush(stdout);
  }
  if (!llmc_binary.empty()) std::remove(llmc_binary.c_str());
  return 0;
}
