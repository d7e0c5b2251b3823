// CPU GEMM for kernels/matmul.h: OpenBLAS sgemm when the build found it, otherwise a blocked,
// OpenMP-parallel fallback (correct everywhere, several times slower than BLAS).
//
// Threading: OpenBLAS is set to one thread and tiller splits each GEMM over its own OpenMP
// threads (batch items, else blocks of output rows or columns, each one single-threaded sgemm).
// Two thread pools on the same cores (OpenMP for every other kernel, OpenBLAS's pthreads for
// GEMM) would each spin-wait while the other works; one pool keeps the cores for the work.
// Every output element is still one sgemm's dot over all of K, but OpenBLAS's register tiling
// (and so the FMA order) depends on the block shape: results may differ in the last bits between
// thread counts, as they did with OpenBLAS's own threading.
#include "kernels/matmul.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/parallel.h"

#if defined(TILLER_HAVE_CBLAS)
#include <cblas.h>
#endif

namespace tiller::kernels {

using cpu::parallel_for;
using cpu::require_f32;

namespace {

#if !defined(TILLER_HAVE_CBLAS)
// C (M, N) = alpha * A (M, K) @ B (K, N) + beta * C, all row-major with explicit leading dims.
// Blocked over K and N so a panel of B stays in cache; parallel over rows of C.
void gemm_fallback(int64_t M, int64_t N, int64_t K, bool ta, bool tb, float alpha, const float* A,
                   const float* B, float beta, float* C) {
  constexpr int64_t kBlockK = 256;  // a 256 x N_block panel of B is ~256 KiB at N_block = 256
  constexpr int64_t kBlockN = 256;
  parallel_for(M, N * K, [&](int64_t m0, int64_t m1) {
    std::vector<float> acc(kBlockN);
    std::vector<float> arow(kBlockK);
    for (int64_t m = m0; m < m1; ++m) {
      float* crow = C + m * N;
      for (int64_t n0 = 0; n0 < N; n0 += kBlockN) {
        int64_t nb = std::min(kBlockN, N - n0);
        std::fill(acc.begin(), acc.begin() + nb, 0.f);
        for (int64_t k0 = 0; k0 < K; k0 += kBlockK) {
          int64_t kb = std::min(kBlockK, K - k0);
          for (int64_t k = 0; k < kb; ++k) arow[k] = ta ? A[(k0 + k) * M + m] : A[m * K + k0 + k];
          for (int64_t k = 0; k < kb; ++k) {
            float a = arow[k];
            if (tb) {
              for (int64_t n = 0; n < nb; ++n) acc[n] += a * B[(n0 + n) * K + k0 + k];
            } else {
              const float* brow = B + (k0 + k) * N + n0;
              for (int64_t n = 0; n < nb; ++n) acc[n] += a * brow[n];
            }
          }
        }
        for (int64_t n = 0; n < nb; ++n)
          crow[n0 + n] = alpha * acc[n] + (beta == 0.f ? 0.f : beta * crow[n0 + n]);
      }
    }
  });
}
#endif

#if defined(TILLER_HAVE_CBLAS)
void use_single_threaded_blas() {
#if defined(OPENBLAS_VERSION)
  static const bool done = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)done;
#endif
}

// Rows [m0, m1) x columns [n0, n1) of one item's C by one sgemm call on the matching slices.
void sgemm_block(const GemmShape& s, const float* a, const float* b, float* c, int64_t m0,
                 int64_t m1, int64_t n0, int64_t n1) {
  if (m1 <= m0 || n1 <= n0) return;
  const int64_t lda = s.trans_a ? s.M : s.K;  // A is (K, M) when transposed, else (M, K)
  const int64_t ldb = s.trans_b ? s.K : s.N;  // B is (N, K) when transposed, else (K, N)
  const float* a_rows = s.trans_a ? a + m0 : a + m0 * lda;
  const float* b_cols = s.trans_b ? b + n0 * ldb : b + n0;
  cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans,
              s.trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(m1 - m0),
              static_cast<int>(n1 - n0), static_cast<int>(s.K), s.alpha, a_rows,
              static_cast<int>(lda), b_cols, static_cast<int>(ldb), s.beta, c + m0 * s.N + n0,
              static_cast<int>(s.N));
}
#endif

}  // namespace

bool cpu_gemm_uses_blas() {
#if defined(TILLER_HAVE_CBLAS)
  return true;
#else
  return false;
#endif
}

template <>
void gemm<Backend::cpu>(const GemmShape& s, const void* a_, const void* b_, void* c_, DType dtype) {
  require_f32(dtype, "gemm");
  auto a = static_cast<const float*>(a_);
  auto b = static_cast<const float*>(b_);
  auto c = static_cast<float*>(c_);
  if (s.M == 0 || s.N == 0) return;
  if (s.K == 0) {
    for (int64_t i = 0; i < s.batch; ++i) {
      float* ci = c + i * s.stride_c;
      for (int64_t j = 0; j < s.M * s.N; ++j) ci[j] = s.beta == 0.f ? 0.f : s.beta * ci[j];
    }
    return;
  }
#if defined(TILLER_HAVE_CBLAS)
  use_single_threaded_blas();
  const int64_t threads = cpu::max_threads();
  const int64_t item_flops = 2 * s.M * s.N * s.K;
  if (s.batch >= threads || threads == 1) {
    parallel_for(s.batch, item_flops, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        sgemm_block(s, a + i * s.stride_a, b + i * s.stride_b, c + i * s.stride_c, 0, s.M, 0, s.N);
    });
    return;
  }
  // Fewer items than threads: split each item's output along its longer side.
  const bool split_rows = s.M >= s.N;
  const int64_t extent = split_rows ? s.M : s.N;
  const int64_t blocks = std::min<int64_t>(threads, extent);
  for (int64_t i = 0; i < s.batch; ++i) {
    const float* ai = a + i * s.stride_a;
    const float* bi = b + i * s.stride_b;
    float* ci = c + i * s.stride_c;
    parallel_for(blocks, item_flops / blocks, [&](int64_t k0, int64_t k1) {
      int64_t begin = extent * k0 / blocks, end = extent * k1 / blocks;
      if (split_rows)
        sgemm_block(s, ai, bi, ci, begin, end, 0, s.N);
      else
        sgemm_block(s, ai, bi, ci, 0, s.M, begin, end);
    });
  }
#else
  for (int64_t i = 0; i < s.batch; ++i)
    gemm_fallback(s.M, s.N, s.K, s.trans_a, s.trans_b, s.alpha, a + i * s.stride_a,
                  b + i * s.stride_b, s.beta, c + i * s.stride_c);
#endif
}

template <>
void add_bias<Backend::cpu>(void* out_, const void* bias_, int64_t rows, int64_t cols,
                            DType dtype) {
  require_f32(dtype, "add_bias");
  auto out = static_cast<float*>(out_);
  auto bias = static_cast<const float*>(bias_);
  parallel_for(rows, cols, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < cols; ++c) out[r * cols + c] += bias[c];
  });
}

}  // namespace tiller::kernels
