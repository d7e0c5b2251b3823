// Benchmark: greedy generation with the KV cache (rl/generate.h) on a GPT-2 124M-sized model with
// random bf16 weights: batch 1, 8 and 32, prompts of 64 random tokens, 128 new tokens, no stop
// tokens (every row generates all 128). bench/torch_generate.py runs the same in PyTorch.
//
// One timed call = rl::generate end to end: the prefill, 127 single-token decode steps (the
// 128th token needs no forward) and the sampling, which copies each step's (B, V) logits to the
// host — exactly what a PPO rollout pays. 1 warm-up call, then the median of 5.
// Rates: tokens/s = B x 128 / call time. Decode is memory-bound: the prefill and each of the 127
// decode forwards read every weight once, so "gbps" counts 128 x the bf16 weight bytes per call
// (a lower bound on the traffic: the KV cache, activations and logits are left out) and % of
// ceiling is against this run's device copy.
// Usage: bench_cuda_generate [--prompt 64] [--new 128] [--runs 5]
#include <string>
#include <vector>

#include "core/models/model.h"
#include "end_to_end.cuh"
#include "rl/generation/generate.h"

namespace {

using tiller::Device;
using tiller::DType;
using tiller::ModelConfig;
using tiller::Transformer;

std::vector<std::vector<int32_t>> random_prompts(int64_t B, int64_t length, int64_t vocab,
                                                 uint64_t seed) {
  const std::vector<int32_t> ids = bench::random_token_ids(B * length, vocab, seed);
  std::vector<std::vector<int32_t>> prompts;
  for (int64_t b = 0; b < B; ++b)
    prompts.emplace_back(ids.begin() + b * length, ids.begin() + (b + 1) * length);
  return prompts;
}

void run(Transformer& model, int64_t B, int64_t prompt_length, int64_t new_tokens, int runs,
         const bench::Ceilings& ceilings) {
  const std::string shape = "gpt2-124M B=" + std::to_string(B) +
                            " prompt=" + std::to_string(prompt_length) +
                            " new=" + std::to_string(new_tokens) + " greedy bf16";
  bench::guarded("generate", shape, [&] {
    const auto prompts = random_prompts(B, prompt_length, model.config().vocab_size, 10 + B);
    tiller::rl::GenerationConfig config;
    config.max_new_tokens = new_tokens;
    config.sampling.temperature = 0.f;
    tiller::rl::GenerationResult result;
    bench::CallTimes times =
        bench::time_calls([&] { result = tiller::rl::generate(model, prompts, config); }, 1, runs);
    TILLER_CHECK(result.generated_tokens == B * new_tokens,
                 "bench generate: expected {} generated tokens, got {}", B * new_tokens,
                 result.generated_tokens);

    double weight_bytes = 0;
    for (const auto& parameter : model.parameters())
      weight_bytes += static_cast<double>(parameter.tensor.nbytes());
    const double seconds = times.median() * 1e-3;
    const double gbps = new_tokens * weight_bytes / seconds / 1e9;
    bench::end_to_end_line("generate", shape, times)
        .add("tokens_per_s", static_cast<double>(result.generated_tokens) / seconds)
        .add("ms_per_token_step", times.median() / new_tokens)
        .add("tflops", 0.0)
        .add("gbps", gbps)
        .add("bound", "memory")
        .add("ceiling_tflops", ceilings.gemm_tflops)
        .add("ceiling_gbps", ceilings.copy_gbps)
        .add("pct_of_ceiling", 100.0 * gbps / ceilings.copy_gbps)
        .add("kv_cache", "yes")
        .print();
  });
}

}  // namespace

int main(int argc, char** argv) {
  return bench::run_program("bench_cuda_generate", [&](const bench::Ceilings& ceilings) {
    const int prompt_length = bench::int_flag(argc, argv, "--prompt", 64);
    const int new_tokens = bench::int_flag(argc, argv, "--new", 128);
    const int runs = bench::int_flag(argc, argv, "--runs", 5);
    Transformer model(ModelConfig::gpt2(), 1);
    model.to(Device::cuda());
    model.to(DType::bf16);
    for (int64_t B : {1, 8, 32}) run(model, B, prompt_length, new_tokens, runs, ceilings);
  });
}
