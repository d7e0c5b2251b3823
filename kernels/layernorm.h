// LayerNorm and RMSNorm over the last dim of a (N, C) activation, forward and backward.
//
// Forward saves per-row f32 statistics (mean and 1/std, or 1/rms) for the backward.
// The fused residual variant computes residual_out = x + residual and normalises it in the same
// pass (one read of each input instead of two).
// dweight/dbias are overwritten (the core op accumulates into parameters), and are produced
// without float atomics so results are deterministic.
// Bytes (bf16, forward): 2NC in + 2NC out; backward: ~3 reads + 1 write of NC.
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace tiller::kernels {

// y = (x - mean) * rstd * weight + bias. bias may be null.
template <Backend B>
void layernorm_forward(const void* x, const void* weight, const void* bias, void* y, float* mean,
                       float* rstd, int64_t N, int64_t C, float eps, DType dtype);

// dbias may be null (no bias).
template <Backend B>
void layernorm_backward(const void* dy, const void* x, const void* weight, const float* mean,
                        const float* rstd, void* dx, void* dweight, void* dbias, int64_t N,
                        int64_t C, DType dtype);

// residual_out = x + residual; y = layernorm(residual_out).
template <Backend B>
void residual_layernorm_forward(const void* x, const void* residual, void* residual_out,
                                const void* weight, const void* bias, void* y, float* mean,
                                float* rstd, int64_t N, int64_t C, float eps, DType dtype);

// y = x * rrms * weight, rrms = 1 / sqrt(mean(x^2) + eps).
template <Backend B>
void rmsnorm_forward(const void* x, const void* weight, void* y, float* rrms, int64_t N,
                     int64_t C, float eps, DType dtype);

template <Backend B>
void rmsnorm_backward(const void* dy, const void* x, const void* weight, const float* rrms,
                      void* dx, void* dweight, int64_t N, int64_t C, DType dtype);

}  // namespace tiller::kernels
