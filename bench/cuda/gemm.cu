// Benchmark: tiller's bf16 GEMM (kernels/matmul.h, cuBLAS underneath) on the matmuls of a GPT-2
// small layer at 16384 tokens, plus a square 8192^3.
//
// The point is the wrapper, not cuBLAS: the ratio to the ceiling (cuBLAS 8192^3 measured in the
// same run) shows what the row-major mapping and f32-accumulation settings cost, and the PyTorch
// column shows whether torch.matmul picks better algorithms for the same shapes.
// FLOPs = 2 M N K; bytes = (M K + K N + M N) x 2.
#include <string>

#include "bench_common.cuh"
#include "kernels/matmul.h"

namespace {

using tiller::kernels::Backend;
using tiller::kernels::GemmShape;

void run_shape(int64_t M, int64_t N, int64_t K, const bench::Ceilings& ceilings) {
  const std::string shape =
      "M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) + " bf16";
  const size_t a_bytes = M * K * 2, b_bytes = K * N * 2, c_bytes = M * N * 2;
  const int rotations = bench::rotation_count(a_bytes + b_bytes + c_bytes);
  std::vector<bench::DeviceBuffer> buffers;
  for (int r = 0; r < rotations; ++r) {
    buffers.emplace_back(a_bytes);
    bench::fill_uniform(buffers.back().get<__nv_bfloat16>(), M * K, 3 * r);
    buffers.emplace_back(b_bytes);
    bench::fill_uniform(buffers.back().get<__nv_bfloat16>(), K * N, 3 * r + 1);
    buffers.emplace_back(c_bytes);
  }
  GemmShape s;
  s.M = M, s.N = N, s.K = K;
  bench::guarded("gemm", shape, [&] {
    bench::Timing t = bench::time_it(
        [&](int r) {
          tiller::kernels::gemm<Backend::cuda>(s, buffers[3 * r].get(), buffers[3 * r + 1].get(),
                                               buffers[3 * r + 2].get(), tiller::DType::bf16);
        },
        rotations);
    bench::report("gemm", shape, t, 2.0 * M * N * K, double(a_bytes + b_bytes + c_bytes),
                  bench::Bound::compute, ceilings);
  });
}

}  // namespace

int main() {
  return bench::run_program("bench_cuda_gemm", [](const bench::Ceilings& ceilings) {
    constexpr int64_t kTokens = 16384, C = 768;
    run_shape(kTokens, 3 * C, C, ceilings);  // qkv projection
    run_shape(kTokens, C, C, ceilings);      // attention output projection
    run_shape(kTokens, 4 * C, C, ceilings);  // MLP up
    run_shape(kTokens, C, 4 * C, ceilings);  // MLP down
    run_shape(kTokens, 50304, C, ceilings);  // LM head
    run_shape(8192, 8192, 8192, ceilings);   // square, the ceiling's own shape
  });
}
