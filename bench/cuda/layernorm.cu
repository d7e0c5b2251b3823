// Benchmark: bf16 LayerNorm (kernels/layernorm.h) over N = 16384 rows, C = 768..4096.
//
// Memory-bound, so the figure of merit is GB/s against the device-to-device copy ceiling.
// Bytes, forward: read x, write y (2 N C bf16) + weight, bias + mean, rstd (f32 per row).
// Forward+backward adds: read dy and x, write dx (3 N C bf16), read weight and the statistics,
// write dweight and dbias. Inputs rotate past L2 (weights are shared, as in a real model).
#include <string>

#include "bench_common.cuh"
#include "kernels/layernorm.h"

namespace {

using tiller::kernels::Backend;

void run_shape(int64_t C, const bench::Ceilings& ceilings) {
  constexpr int64_t N = 16384;
  constexpr float kEps = 1e-5f;
  const std::string shape = "N=" + std::to_string(N) + " C=" + std::to_string(C) + " bf16";
  const size_t activation_bytes = static_cast<size_t>(N * C) * sizeof(__nv_bfloat16);
  const size_t stats_bytes = static_cast<size_t>(N) * sizeof(float);
  const size_t vector_bytes = static_cast<size_t>(C) * sizeof(__nv_bfloat16);
  enum { kX, kY, kDy, kDx, kActivations };
  const int rotations = bench::rotation_count(kActivations * activation_bytes + 2 * stats_bytes);
  std::vector<bench::DeviceBuffer> activations, stats;
  for (int r = 0; r < rotations; ++r) {
    for (int t = 0; t < kActivations; ++t) {
      activations.emplace_back(activation_bytes);
      bench::fill_uniform(activations.back().get<__nv_bfloat16>(), N * C, r * kActivations + t);
    }
    stats.emplace_back(stats_bytes);  // mean
    stats.emplace_back(stats_bytes);  // rstd
  }
  bench::DeviceBuffer weight(vector_bytes), bias(vector_bytes), dweight(vector_bytes),
      dbias(vector_bytes);
  bench::fill_uniform(weight.get<__nv_bfloat16>(), C, 100);
  bench::fill_uniform(bias.get<__nv_bfloat16>(), C, 101);
  auto act = [&](int r, int t) { return activations[r * kActivations + t].get(); };
  auto mean = [&](int r) { return stats[2 * r].get<float>(); };
  auto rstd = [&](int r) { return stats[2 * r + 1].get<float>(); };

  auto forward = [&](int r) {
    tiller::kernels::layernorm_forward<Backend::cuda>(act(r, kX), weight.get(), bias.get(),
                                                      act(r, kY), mean(r), rstd(r), N, C, kEps,
                                                      tiller::DType::bf16);
  };
  auto backward = [&](int r) {
    tiller::kernels::layernorm_backward<Backend::cuda>(act(r, kDy), act(r, kX), weight.get(),
                                                       mean(r), rstd(r), act(r, kDx), dweight.get(),
                                                       dbias.get(), N, C, tiller::DType::bf16);
  };
  const double forward_bytes = 2.0 * activation_bytes + 2.0 * vector_bytes + 2.0 * stats_bytes;
  const double backward_bytes = 3.0 * activation_bytes + 3.0 * vector_bytes + 2.0 * stats_bytes;
  bench::guarded("layernorm_fwd", shape, [&] {
    bench::Timing t = bench::time_it(forward, rotations);
    bench::report("layernorm_fwd", shape, t, 8.0 * N * C, forward_bytes, bench::Bound::memory,
                  ceilings);
  });
  bench::guarded("layernorm_fwd+bwd", shape, [&] {
    bench::Timing t = bench::time_it(
        [&](int r) {
          forward(r);
          backward(r);
        },
        rotations);
    bench::report("layernorm_fwd+bwd", shape, t, 20.0 * N * C, forward_bytes + backward_bytes,
                  bench::Bound::memory, ceilings);
  });
}

}  // namespace

int main() {
  return bench::run_program("bench_cuda_layernorm", [](const bench::Ceilings& ceilings) {
    for (int64_t C : {768, 1024, 2048, 4096}) run_shape(C, ceilings);
  });
}
