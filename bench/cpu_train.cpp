// Training throughput on the CPU backend against PyTorch on the same CPU: tokens/s of one full
// training step (forward, loss, backward, grad-norm clipping, AdamW) of a small GPT-2.
//
//   bench_cpu_train                 # tiller, then bench/torch_cpu_train.py with the same threads
//   bench_cpu_train --no-torch      # tiller only
//   bench_cpu_train --steps 10 --python /usr/bin/python3
//
// Both sides train the same configurations (same B, T, sizes, tied embeddings, tanh GELU, AdamW
// with weight decay on matrices, clip 1.0) on random tokens — the speed of a step does not depend
// on the data. Each side runs 2 warm-up steps and reports the median step time; the thread count
// is the OpenMP thread count here (OMP_NUM_THREADS) and torch.set_num_threads(same) there.
// PyTorch is Debian's python3-torch (CPU); its attention is the explicit softmax(q k^T) v of
// nanoGPT, because 1.13 has no fused CPU attention.
//
// Both sides run the same OpenBLAS (Debian's libblas.so.3 is OpenBLAS), and its child inherits
// this process's environment, so two knobs move both and the header prints them:
//   OMP_WAIT_POLICY=passive   on a machine shared with other work, spinning OpenMP threads that
//                             lose their core stall every barrier (2 threads: ~6x slower).
//   OPENBLAS_CORETYPE         which GEMM kernels OpenBLAS uses; pinned to Haswell (AVX2), both
//                             sides run ~1.4x slower on an AVX-512 machine than with it unset.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_util.h"
#include "core/models/model.h"
#include "kernels/cpu/parallel.h"
#include "optim/adamw.h"
#include "optim/clip.h"

using namespace tiller;

namespace {

struct TrainShape {
  int64_t layers, width, heads, batch, seq_len, vocab;
  std::string str() const {
    return fmt::format("L={} C={} H={} B={} T={} V={}", layers, width, heads, batch, seq_len,
                       vocab);
  }
};

// The example trainer's default model, and one 4x wider in compute.
const TrainShape kShapes[] = {{4, 128, 4, 16, 128, 1024}, {4, 256, 4, 8, 256, 2048}};

double tiller_tokens_per_second(const TrainShape& s, int steps) {
  Transformer model(ModelConfig::gpt2(s.vocab, s.layers, s.heads, s.width, s.seq_len), 1);
  optim::AdamW optimizer(optim::default_param_groups(model.parameters(), 0.1f),
                         {.lr = 1e-3f, .beta2 = 0.95f, .weight_decay = 0.1f});
  Generator gen(7);
  std::vector<int32_t> ids(static_cast<size_t>(s.batch * (s.seq_len + 1)));
  for (auto& id : ids) id = static_cast<int32_t>(gen.take(1) * 2654435761u % s.vocab);
  std::vector<int32_t> inputs, targets;
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t t = 0; t < s.seq_len; ++t) {
      inputs.push_back(ids[static_cast<size_t>(b * (s.seq_len + 1) + t)]);
      targets.push_back(ids[static_cast<size_t>(b * (s.seq_len + 1) + t + 1)]);
    }
  Tensor x = Tensor::from_ints(inputs, {s.batch, s.seq_len});
  Tensor y = Tensor::from_ints(targets, {s.batch, s.seq_len});
  double seconds = bench::time_median(
      [&] {
        optimizer.zero_grad();
        model.loss(x, y).backward();
        float norm = optim::global_grad_norm(model.parameters());
        optimizer.step(optim::clip_factor(norm, 1.f));
      },
      2, steps);
  return static_cast<double>(s.batch * s.seq_len) / seconds;
}

// Runs the PyTorch twin; returns its tokens/s or a negative number when it could not run.
double torch_tokens_per_second(const std::string& python, const std::string& script,
                               const TrainShape& s, int steps, int threads) {
  std::string command = fmt::format(
      "{} {} --layers {} --width {} --heads {} --batch {} --seq-len {} --vocab {} --steps {} "
      "--threads {} 2>&1",
      python, script, s.layers, s.width, s.heads, s.batch, s.seq_len, s.vocab, steps, threads);
  std::FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return -1;
  std::string output;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe)) output += buffer;
  int status = pclose(pipe);
  double tokens_per_second = -1;
  auto at = output.rfind("tokens_per_sec ");
  if (status == 0 && at != std::string::npos)
    tokens_per_second = std::stod(output.substr(at + 15));
  else
    std::fprintf(stderr, "torch run failed (%s):\n%s\n", command.c_str(), output.c_str());
  return tokens_per_second;
}

}  // namespace

int main(int argc, char** argv) {
  bool with_torch = true;
  int steps = 7;
  std::string python = "/usr/bin/python3";
  std::string script = (std::filesystem::path(__FILE__).parent_path() / "torch_cpu_train.py");
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--no-torch")
      with_torch = false;
    else if (arg == "--steps" && i + 1 < argc)
      steps = std::stoi(argv[++i]);
    else if (arg == "--python" && i + 1 < argc)
      python = argv[++i];
    else if (arg == "--torch-script" && i + 1 < argc)
      script = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: bench_cpu_train [--no-torch] [--steps N] [--python P] "
                   "[--torch-script S]\n");
      return 2;
    }
  }
  const int threads = kernels::cpu::max_threads();
  auto environment = [](const char* name) {
    const char* value = std::getenv(name);
    return std::string(value ? value : "unset");
  };
  std::printf(
      "Training step (fwd + loss + bwd + clip + AdamW), GPT-2, f32, %d threads, median "
      "of %d steps (OMP_WAIT_POLICY=%s, OPENBLAS_CORETYPE=%s)\n\n",
      threads, steps, environment("OMP_WAIT_POLICY").c_str(),
      environment("OPENBLAS_CORETYPE").c_str());
  std::printf("| config | tiller tok/s | PyTorch tok/s | tiller / PyTorch |\n|---|---|---|---|\n");
  for (const TrainShape& shape : kShapes) {
    double ours = tiller_tokens_per_second(shape, steps);
    double theirs =
        with_torch ? torch_tokens_per_second(python, script, shape, steps, threads) : -1;
    if (theirs > 0)
      std::printf("| %s | %.0f | %.0f | %.2fx |\n", shape.str().c_str(), ours, theirs,
                  ours / theirs);
    else
      std::printf("| %s | %.0f | n/a | n/a |\n", shape.str().c_str(), ours);
    std::fflush(stdout);
  }
  return 0;
}
