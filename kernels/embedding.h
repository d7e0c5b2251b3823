// Token embedding lookup and its deterministic backward.
//
// Backward is a scatter-add of N rows of dout into dweight. Float atomics would make the result
// depend on scheduling, so both backends instead group rows by token id (CPU: one pass per thread
// over a slice of the vocabulary; CUDA: sort ids, then one block per distinct id sums its rows in
// a fixed order).
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace tiller::kernels {

// out[n, :] = weight[ids[n], :] for ids (N), weight (V, C), out (N, C). ids are in [0, V).
template <Backend B>
void embedding_forward(const int32_t* ids, const void* weight, void* out, int64_t N, int64_t V,
                       int64_t C, DType dtype);

// dweight[v, :] = sum over n with ids[n] == v of dout[n, :]. Overwrites all of dweight (V, C).
template <Backend B>
void embedding_backward(const int32_t* ids, const void* dout, void* dweight, int64_t N, int64_t V,
                        int64_t C, DType dtype);

// Rotary position embedding on x (B, H, T, D) with per-token positions (B, T), in the
// "rotate half" layout of GPT-NeoX and Hugging Face Llama: the pair (x[i], x[i + D/2]) is rotated
// by the angle pos * theta^(-2i/D). `inverse` rotates by the negative angle, which is the
// backward. D must be even. (Lives here: like embedding it is indexed by token position.)
template <Backend B>
void rope(const void* x, const int32_t* positions, void* out, int64_t batch, int64_t heads,
          int64_t T, int64_t D, float theta, bool inverse, DType dtype);

}  // namespace tiller::kernels
