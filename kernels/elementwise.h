// Elementwise kernels: broadcasting binary ops, unary activations with their backward, casts.
//
// FLOPs ~ a few per element; bytes = (inputs + outputs) * dtype size. Memory-bound everywhere.
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace tiller::kernels {

constexpr int kMaxDims = 8;

// out[i] = op(a[ia], b[ib]) where ia/ib come from per-dim strides (0 on a broadcast dim).
// `shape` is the output shape; strides are in elements.
struct BroadcastShape {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t a_stride[kMaxDims] = {};
  int64_t b_stride[kMaxDims] = {};
  int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < ndim; ++d) n *= shape[d];
    return n;
  }
};

// greater_equal / less_equal give 1.0 where the comparison holds, else 0.0 (gradient masks).
enum class BinaryOp { add, sub, mul, div, maximum, minimum, greater_equal, less_equal };

template <Backend B>
void binary(BinaryOp op, const void* a, const void* b, void* out, const BroadcastShape& shape,
            DType dtype);

enum class UnaryOp { neg, exp, log, sqrt, square, abs, tanh, sigmoid, logsigmoid, relu, gelu, silu };

// out = op(x) over n elements.
template <Backend B>
void unary(UnaryOp op, const void* x, void* out, int64_t n, DType dtype);

// dx = dy * op'(x) over n elements (x is the op's input). Overwrites dx.
template <Backend B>
void unary_backward(UnaryOp op, const void* x, const void* dy, void* dx, int64_t n, DType dtype);

// out = x * scale + shift.
template <Backend B>
void affine(const void* x, void* out, int64_t n, float scale, float shift, DType dtype);

// out = clamp(x, low, high); backward passes dy where low < x < high (strictly inside), else 0.
template <Backend B>
void clamp(const void* x, void* out, int64_t n, float low, float high, DType dtype);
template <Backend B>
void clamp_backward(const void* x, const void* dy, void* dx, int64_t n, float low, float high,
                    DType dtype);

// SwiGLU: out = silu(gate) * up; backward writes dgate and dup.
template <Backend B>
void swiglu(const void* gate, const void* up, void* out, int64_t n, DType dtype);
template <Backend B>
void swiglu_backward(const void* gate, const void* up, const void* dout, void* dgate, void* dup,
                     int64_t n, DType dtype);

// dst += src (gradient accumulation), same dtype.
template <Backend B>
void accumulate(void* dst, const void* src, int64_t n, DType dtype);

// out = fill value.
template <Backend B>
void fill(void* out, int64_t n, float value, DType dtype);

// Dtype conversion (f32 <-> bf16, i32 <-> f32) of n elements.
template <Backend B>
void cast(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n);

// Counter-based random fills (kernels/random.h): element i uses counter offset + i.
template <Backend B>
void fill_normal(void* out, int64_t n, uint64_t seed, uint64_t offset, float mean, float std,
                 DType dtype);
template <Backend B>
void fill_uniform(void* out, int64_t n, uint64_t seed, uint64_t offset, float low, float high,
                  DType dtype);

// Dropout with keep-probability 1-p and 1/(1-p) scaling; element i is kept when
// random::uniform(seed, offset + i) >= p. Backward recomputes the same mask.
template <Backend B>
void dropout(const void* x, void* out, int64_t n, float p, uint64_t seed, uint64_t offset,
             DType dtype);
template <Backend B>
void dropout_backward(const void* dy, void* dx, int64_t n, float p, uint64_t seed,
                      uint64_t offset, DType dtype);

}  // namespace tiller::kernels
