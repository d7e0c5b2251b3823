// Benchmark: causal bf16 flash attention (kernels/attention.h), forward and forward+backward.
//
// Shapes: D = 64 and 128, T = 1024..8192, at 16384 tokens per batch (B = 16384 / T) and model
// width 2048 (H = 2048 / D) — a GPT-2-XL-sized layer at growing context. bench/torch_bench.py
// runs the same shapes through SDPA with the flash and cuDNN backends.
// FLOPs follow kernels/attention.h: forward 4 B H T^2 D / 2 (causal), backward 2.5x forward, so
// both sides count identically whatever their kernels actually do (our backward recomputes more).
// Bytes: q, k, v, out (+ dout, dq, dk, dv for the backward) once each, in bf16, plus lse.
#include <cmath>
#include <string>

#include "bench_common.cuh"
#include "kernels/attention.h"

namespace {

using tiller::kernels::AttentionShape;
using tiller::kernels::Backend;

void run_shape(int64_t T, int64_t D, const bench::Ceilings& ceilings) {
  constexpr int64_t kTokens = 16384, kWidth = 2048;
  const int64_t B = kTokens / T, H = kWidth / D;
  const std::string shape = "B=" + std::to_string(B) + " H=" + std::to_string(H) +
                            " T=" + std::to_string(T) + " D=" + std::to_string(D) + " causal bf16";
  const int64_t elems = B * H * T * D;
  const size_t tensor_bytes = static_cast<size_t>(elems) * sizeof(__nv_bfloat16);
  const size_t lse_bytes = static_cast<size_t>(B * H * T) * sizeof(float);
  enum { kQ, kK, kV, kOut, kDout, kDq, kDk, kDv, kTensors };
  const int rotations = bench::rotation_count(kTensors * tensor_bytes + lse_bytes);
  std::vector<bench::DeviceBuffer> buffers;
  for (int r = 0; r < rotations; ++r) {
    for (int t = 0; t < kTensors; ++t) {
      buffers.emplace_back(tensor_bytes);
      bench::fill_uniform(buffers.back().get<__nv_bfloat16>(), elems, r * kTensors + t);
    }
    buffers.emplace_back(lse_bytes);
  }
  auto tensor = [&](int r, int t) { return buffers[r * (kTensors + 1) + t].get(); };
  auto lse = [&](int r) { return buffers[r * (kTensors + 1) + kTensors].get<float>(); };

  AttentionShape s;
  s.B = B, s.Hq = H, s.Hkv = H, s.Tq = T, s.Tk = T, s.D = D;
  s.scale = 1.f / std::sqrt(static_cast<float>(D));
  s.causal = true;
  auto forward = [&](int r) {
    tiller::kernels::attention_forward<Backend::cuda>(s, tensor(r, kQ), tensor(r, kK),
                                                      tensor(r, kV), tensor(r, kOut), lse(r),
                                                      tiller::DType::bf16);
  };
  auto backward = [&](int r) {
    tiller::kernels::attention_backward<Backend::cuda>(
        s, tensor(r, kQ), tensor(r, kK), tensor(r, kV), tensor(r, kOut), tensor(r, kDout), lse(r),
        tensor(r, kDq), tensor(r, kDk), tensor(r, kDv), tiller::DType::bf16);
  };
  const double forward_flops = 4.0 * B * H * T * T * D / 2;
  bench::guarded("attention_fwd", shape, [&] {
    bench::Timing t = bench::time_it(forward, rotations);
    bench::report("attention_fwd", shape, t, forward_flops, 4.0 * tensor_bytes + lse_bytes,
                  bench::Bound::compute, ceilings);
  });
  bench::guarded("attention_fwd+bwd", shape, [&] {
    bench::Timing t = bench::time_it(
        [&](int r) {
          forward(r);
          backward(r);
        },
        rotations);
    bench::report("attention_fwd+bwd", shape, t, 3.5 * forward_flops,
                  12.0 * tensor_bytes + 2 * lse_bytes, bench::Bound::compute, ceilings);
  });
}

}  // namespace

int main() {
  return bench::run_program("bench_cuda_attention", [](const bench::Ceilings& ceilings) {
    for (int64_t D : {64, 128})
      for (int64_t T : {1024, 2048, 4096, 8192}) run_shape(T, D, ceilings);
  });
}
