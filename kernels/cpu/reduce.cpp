// CPU reference for kernels/reduce.h.
#include "kernels/reduce.h"

#include <cstring>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vector_math.h"

namespace tiller::kernels {

using cpu::parallel_for;
using cpu::require_f32;

template <>
void sum_dim<Backend::cpu>(const void* x_, void* out_, int64_t outer, int64_t n, int64_t inner,
                           DType dtype) {
  require_f32(dtype, "sum_dim");
  auto x = static_cast<const float*>(x_);
  auto out = static_cast<float*>(out_);
  if (inner == 1) {
    // Reduce contiguous rows: one output per row, summed in double to keep long rows exact.
    parallel_for(outer, n, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        const float* row = x + o * n;
        double acc = 0;
        for (int64_t j = 0; j < n; ++j) acc += row[j];
        out[o] = static_cast<float>(acc);
      }
    });
    return;
  }
  // Reduce a strided dim: accumulate whole inner rows, vectorised along inner.
  parallel_for(outer, n * inner, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      float* dst = out + o * inner;
      std::memset(dst, 0, inner * sizeof(float));
      const float* src = x + o * n * inner;
      for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < inner; ++i) dst[i] += src[j * inner + i];
    }
  });
}

namespace {
// sum x[i]^2 over one block in double, in SIMD lanes (a fixed order, whatever the thread count).
TILLER_SIMD_CLONES double block_sum_squares(const float* x, int64_t n) {
  double acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(x[i]) * x[i];
  return acc;
}
}  // namespace

template <>
void sum_squares<Backend::cpu>(const void* x_, int64_t n, float* result, DType dtype) {
  require_f32(dtype, "sum_squares");
  auto x = static_cast<const float*>(x_);
  // Fixed-size blocks summed in order: the result does not depend on the thread count.
  constexpr int64_t kBlock = 4096;
  int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(blocks, 0.0);
  parallel_for(blocks, kBlock, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      int64_t end = (b + 1) * kBlock < n ? (b + 1) * kBlock : n;
      partial[b] = block_sum_squares(x + b * kBlock, end - b * kBlock);
    }
  });
  double total = 0;
  for (double p : partial) total += p;
  *result += static_cast<float>(total);
}

template <>
void permute<Backend::cpu>(const void* x_, void* out_, int ndim, const int64_t* in_shape,
                           const int* perm, DType dtype) {
  size_t elem = dtype_size(dtype);
  auto x = static_cast<const char*>(x_);
  auto out = static_cast<char*>(out_);
  int64_t in_stride[kMaxDims], out_shape[kMaxDims];
  int64_t numel = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    in_stride[d] = numel;
    numel *= in_shape[d];
  }
  for (int d = 0; d < ndim; ++d) out_shape[d] = in_shape[perm[d]];
  int64_t inner = ndim ? out_shape[ndim - 1] : 1;
  int64_t inner_stride = ndim ? in_stride[perm[ndim - 1]] : 1;
  int64_t rows = inner ? numel / inner : 0;
  parallel_for(rows, inner, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t src = 0, rem = r;
      for (int d = ndim - 2; d >= 0; --d) {
        src += (rem % out_shape[d]) * in_stride[perm[d]];
        rem /= out_shape[d];
      }
      char* dst = out + r * inner * elem;
      if (inner_stride == 1) {
        std::memcpy(dst, x + src * elem, inner * elem);
      } else {
        for (int64_t i = 0; i < inner; ++i)
          std::memcpy(dst + i * elem, x + (src + i * inner_stride) * elem, elem);
      }
    }
  });
}

template <>
void copy_rows<Backend::cpu>(const void* src, int64_t src_stride, void* dst, int64_t dst_stride,
                             int64_t rows, int64_t row_elems, DType dtype) {
  size_t elem = dtype_size(dtype);
  parallel_for(rows, row_elems, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      std::memcpy(static_cast<char*>(dst) + r * dst_stride * elem,
                  static_cast<const char*>(src) + r * src_stride * elem, row_elems * elem);
  });
}

}  // namespace tiller::kernels
