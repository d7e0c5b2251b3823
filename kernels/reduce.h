// Reductions and layout kernels: sum over one dim, transpose/permute, slice and concat copies.
//
// A tensor is viewed as (outer, n, inner) around the reduced or sliced dim; every such kernel
// streams its input once (bytes = in + out).
#pragma once

#include <cstdint>

#include "kernels/backend.h"
#include "kernels/elementwise.h"

namespace tiller::kernels {

// out[o, i] = sum_j x[o, j, i] for x (outer, n, inner). Accumulates in f32.
template <Backend B>
void sum_dim(const void* x, void* out, int64_t outer, int64_t n, int64_t inner, DType dtype);

// out = sum of squares of x over n elements, added (+=) into *result (f32, device memory on
// CUDA). Used for global gradient norms.
template <Backend B>
void sum_squares(const void* x, int64_t n, float* result, DType dtype);

// out = permute(x, perm): out dim d is x dim perm[d]. `in_shape` has ndim entries.
template <Backend B>
void permute(const void* x, void* out, int ndim, const int64_t* in_shape, const int* perm,
             DType dtype);

// Copies a block of `rows` rows, each of `row_elems` contiguous elements, between buffers whose
// rows are `src_stride` and `dst_stride` elements apart. slice and concat use it (views the
// tensor as (outer, dim * inner)).
template <Backend B>
void copy_rows(const void* src, int64_t src_stride, void* dst, int64_t dst_stride, int64_t rows,
               int64_t row_elems, DType dtype);

}  // namespace tiller::kernels
