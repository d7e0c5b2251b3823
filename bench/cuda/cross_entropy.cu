// Benchmark: fused softmax cross-entropy (kernels/softmax.h) at GPT-2's padded vocabulary.
//
// Shape: 8192 rows (B * T) x V = 50304, bf16 logits, f32 loss. Memory-bound: the forward reads
// the logits once (one pass with an online max/sum), the backward reads them again and writes
// dlogits — 3 x rows x V x 2 bytes for forward+backward, the minimum without fusing the loss into
// the last matmul. Compared with F.cross_entropy (forward, and forward + loss.backward()).
#include <string>

#include "bench_common.cuh"
#include "kernels/softmax.h"

namespace {

using tiller::kernels::Backend;

void run_shape(int64_t rows, int64_t V, const bench::Ceilings& ceilings) {
  constexpr int32_t kIgnoreIndex = -100;
  const std::string shape = "N=" + std::to_string(rows) + " V=" + std::to_string(V) + " bf16";
  const size_t logits_bytes = static_cast<size_t>(rows * V) * sizeof(__nv_bfloat16);
  const size_t row_bytes = static_cast<size_t>(rows) * sizeof(float);
  const int rotations = bench::rotation_count(2 * logits_bytes);
  std::vector<bench::DeviceBuffer> logits, dlogits;
  for (int r = 0; r < rotations; ++r) {
    logits.emplace_back(logits_bytes);
    dlogits.emplace_back(logits_bytes);
    bench::fill_uniform(logits.back().get<__nv_bfloat16>(), rows * V, r, 4.f);
  }
  bench::DeviceBuffer targets(static_cast<size_t>(rows) * sizeof(int32_t)), loss(row_bytes),
      lse(row_bytes), dloss(row_bytes);
  bench::fill_targets_kernel<<<256, 256>>>(targets.get<int32_t>(), rows, static_cast<int32_t>(V));
  TILLER_CUDA_CHECK_LAUNCH();
  bench::fill_uniform(dloss.get<float>(), rows, 7, 1.f / static_cast<float>(rows));

  auto forward = [&](int r) {
    tiller::kernels::cross_entropy_forward<Backend::cuda>(logits[r].get(), targets.get<int32_t>(),
                                                          loss.get<float>(), lse.get<float>(), rows,
                                                          V, kIgnoreIndex, tiller::DType::bf16);
  };
  auto backward = [&](int r) {
    tiller::kernels::cross_entropy_backward<Backend::cuda>(
        logits[r].get(), targets.get<int32_t>(), lse.get<float>(), dloss.get<float>(),
        dlogits[r].get(), rows, V, kIgnoreIndex, tiller::DType::bf16);
  };
  bench::guarded("cross_entropy_fwd", shape, [&] {
    bench::Timing t = bench::time_it(forward, rotations);
    bench::report("cross_entropy_fwd", shape, t, 4.0 * rows * V, logits_bytes + 3.0 * row_bytes,
                  bench::Bound::memory, ceilings);
  });
  bench::guarded("cross_entropy_fwd+bwd", shape, [&] {
    bench::Timing t = bench::time_it(
        [&](int r) {
          forward(r);
          backward(r);
        },
        rotations);
    bench::report("cross_entropy_fwd+bwd", shape, t, 8.0 * rows * V,
                  3.0 * logits_bytes + 6.0 * row_bytes, bench::Bound::memory, ceilings);
  });
}

}  // namespace

int main() {
  return bench::run_program("bench_cuda_cross_entropy", [](const bench::Ceilings& ceilings) {
    for (int64_t rows : {4096, 8192}) run_shape(rows, 50304, ceilings);
  });
}
