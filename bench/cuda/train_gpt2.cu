// Benchmark: training throughput of GPT-2 124M (ModelConfig::gpt2(), vocabulary padded to 50304
// inside the model) through the public API, as a user's training loop would run it:
//   zero_grad; loss = model.loss(ids, targets); backward; norm = global_grad_norm;
//   AdamW step with the clip factor (max norm 1) folded in.
// Mixed precision: bf16 weights and activations, f32 master weights and moments in the fused
// AdamW (optim/adamw.h). Random token data (one fixed batch: the loader is not what is measured).
// bench/torch_train_gpt2.py runs the same model, batch and step in PyTorch.
//
// FLOPs per token (the nanoGPT / PaLM convention, identical in bench/torch_gpt2.py):
//   6 N + 12 L T C, N = parameters without the position table (a lookup, no FLOPs; the token
//   table counts: it is also the LM head), the second term the attention scores and values
//   counted without the causal half. MFU = achieved FLOP/s over (a) the cuBLAS bf16 8192^3 GEMM
//   measured at the start of this run and (b) the H200 datasheet dense bf16 peak, 989 TFLOP/s.
// Usage: bench_cuda_train_gpt2 [--batch 16] [--seq 1024] [--warmup 3] [--steps 10]
#include <cmath>
#include <string>
#include <vector>

#include "core/models/model.h"
#include "end_to_end.cuh"
#include "optim/adamw.h"
#include "optim/clip.h"

namespace {

using tiller::Device;
using tiller::DType;
using tiller::ModelConfig;
using tiller::Tensor;
using tiller::Transformer;

// Matmul FLOPs of one token's forward + backward (see the header comment).
double flops_per_token(const ModelConfig& config, int64_t T) {
  const double N =
      static_cast<double>(config.num_parameters() - config.max_seq_len * config.n_embd);
  return 6.0 * N + 12.0 * config.n_layer * T * config.n_embd;
}

// (B, T) i32 token ids on the device.
Tensor random_tokens(int64_t B, int64_t T, int64_t vocab, uint64_t seed) {
  return Tensor::from_ints(bench::random_token_ids(B * T, vocab, seed), {B, T}).to(Device::cuda());
}

void run(int64_t B, int64_t T, int warmup, int steps, const bench::Ceilings& ceilings) {
  const ModelConfig config = ModelConfig::gpt2();
  const std::string shape =
      "gpt2-124M B=" + std::to_string(B) + " T=" + std::to_string(T) + " bf16 adamw";
  bench::guarded("train_gpt2", shape, [&] {
    Transformer model(config, 1);
    model.to(Device::cuda());
    model.to(DType::bf16);
    // Built after the moves: the optimizer copies f32 masters of the bf16 parameters it is given.
    tiller::optim::AdamW optimizer(
        tiller::optim::default_param_groups(model.parameters(), 0.1f),
        {.lr = 6e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .seed = 1});
    const Tensor ids = random_tokens(B, T, config.vocab_size, 2);
    const Tensor targets = random_tokens(B, T, config.vocab_size, 3);

    Tensor last_loss;
    auto step = [&] {
      optimizer.zero_grad();
      last_loss = model.loss(ids, targets);
      last_loss.backward();
      float norm = tiller::optim::global_grad_norm(model.parameters());
      optimizer.step(tiller::optim::clip_factor(norm, 1.f));
    };
    step();
    const float first_loss = last_loss.item();  // loss of the initial weights, ~ln(50257) = 10.8
    bench::CallTimes times = bench::time_calls(step, warmup - 1, steps);
    const float final_loss = last_loss.item();

    const double tokens = static_cast<double>(B * T);
    const double seconds = times.mean() * 1e-3;
    const double tflops = flops_per_token(config, T) * tokens / seconds / 1e12;
    bench::end_to_end_line("train_gpt2", shape, times)
        .add("tokens_per_s", tokens / seconds)
        .add("tflops", tflops)
        .add("gbps", 0.0)
        .add("bound", "compute")
        .add("ceiling_tflops", ceilings.gemm_tflops)
        .add("ceiling_gbps", ceilings.copy_gbps)
        .add("pct_of_ceiling", 100.0 * tflops / ceilings.gemm_tflops)
        .add("mfu_measured_pct", 100.0 * tflops / ceilings.gemm_tflops)
        .add("mfu_datasheet_pct", 100.0 * tflops / bench::kH200DatasheetBf16Tflops)
        .add("datasheet_tflops", bench::kH200DatasheetBf16Tflops)
        .add("flops_per_token", flops_per_token(config, T))
        .add("params", static_cast<double>(model.num_parameters()))
        .add("loss_first", first_loss)
        .add("loss_last", final_loss)
        .add("loss_finite", std::isfinite(final_loss) ? "yes" : "NO")
        .print();
  });
}

}  // namespace

int main(int argc, char** argv) {
  return bench::run_program("bench_cuda_train_gpt2", [&](const bench::Ceilings& ceilings) {
    const int B = bench::int_flag(argc, argv, "--batch", 16);
    const int T = bench::int_flag(argc, argv, "--seq", 1024);
    const int warmup = std::max(1, bench::int_flag(argc, argv, "--warmup", 3));
    const int steps = bench::int_flag(argc, argv, "--steps", 10);
    run(B, T, warmup, steps, ceilings);
  });
}
