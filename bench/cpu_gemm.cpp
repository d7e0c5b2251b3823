// CPU GEMM throughput: tiller's matmul op (validation + autograd bookkeeping + kernel) against a
// direct call of the BLAS it wraps, on the same threads. FLOPs = 2 M N K per GEMM.
// Prints a markdown table; the gap between the two columns is tiller's per-call overhead.
#include <cstdio>

#include "bench_util.h"
#include "core/ops/ops.h"
#include "kernels/cpu/parallel.h"
#include "kernels/matmul.h"

#if defined(TILLER_HAVE_CBLAS)
#include <cblas.h>
#endif

using namespace tiller;

int main() {
  std::printf("CPU GEMM, f32, %d OpenMP threads, BLAS: %s\n\n", kernels::cpu::max_threads(),
              kernels::cpu_gemm_uses_blas() ? "OpenBLAS" : "built-in fallback");
  std::printf("| M x N x K | tiller matmul GFLOP/s | BLAS sgemm GFLOP/s | ratio |\n");
  std::printf("|---|---|---|---|\n");
  const int shapes[][3] = {{128, 128, 128},  {256, 768, 256},  {512, 512, 512},
                           {1024, 1024, 1024}, {2048, 768, 768}, {2048, 3072, 768}};
  for (auto& s : shapes) {
    int M = s[0], N = s[1], K = s[2];
    Generator gen(1);
    Tensor a = Tensor::randn({M, K}, gen), b = Tensor::randn({K, N}, gen);
    double flops = 2.0 * M * N * K;
    double ours = bench::time_median([&] { matmul(a, b); });
    double blas = ours;
#if defined(TILLER_HAVE_CBLAS)
    Tensor c = Tensor::empty({M, N});
    blas = bench::time_median([&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.f, a.data<float>(), K,
                  b.data<float>(), N, 0.f, c.data<float>(), N);
    });
#endif
    std::printf("| %d x %d x %d | %.1f | %.1f | %.2f |\n", M, N, K, flops / ours / 1e9,
                flops / blas / 1e9, blas / ours);
  }
  return 0;
}
