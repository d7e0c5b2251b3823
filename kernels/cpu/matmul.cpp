// CPU GEMM for kernels/matmul.h: OpenBLAS sgemm when the build found it, otherwise a blocked,
// OpenMP-parallel fallback (correct everywhere, several times slower than BLAS).
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
void gemm_fallback(int64_t M, int64_t N, int64_t K, bool ta, bool tb, float alpha,
                   const float* A, const float* B, float beta, float* C) {
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

}  // namespace

bool cpu_gemm_uses_blas() {
#if defined(TILLER_HAVE_CBLAS)
  return true;
#else
  return false;
#endif
}

template <>
void gemm<Backend::cpu>(const GemmShape& s, const void* a_, const void* b_, void* c_,
                        DType dtype) {
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
  for (int64_t i = 0; i < s.batch; ++i) {
    const float* ai = a + i * s.stride_a;
    const float* bi = b + i * s.stride_b;
    float* ci = c + i * s.stride_c;
#if defined(TILLER_HAVE_CBLAS)
    cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans,
                s.trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(s.M),
                static_cast<int>(s.N), static_cast<int>(s.K), s.alpha, ai,
                static_cast<int>(s.trans_a ? s.M : s.K), bi,
                static_cast<int>(s.trans_b ? s.K : s.N), s.beta, ci, static_cast<int>(s.N));
#else
    gemm_fallback(s.M, s.N, s.K, s.trans_a, s.trans_b, s.alpha, ai, bi, s.beta, ci);
#endif
  }
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
