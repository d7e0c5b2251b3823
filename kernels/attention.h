// Scaled dot-product attention for q (B, Hq, Tq, D), k/v (B, Hkv, Tk, D), out (B, Hq, Tq, D).
//
// Grouped-query: query head h reads kv head h / (Hq / Hkv). Query i sits at absolute position
// Tk - Tq + i (so Tq == Tk for training and Tq < Tk for decoding against a KV cache).
// Query i may attend to key j when all of:
//   causal            -> j <= Tk - Tq + i
//   key_padding_mask  -> mask[b, j] != 0            (mask (B, Tk) i32, may be null)
//   document_ids      -> doc[b, j] == doc[b, q_pos] (docs (B, Tk) i32, may be null; packed
//                        sequences: a token sees only its own document)
// A query with no visible key outputs zeros and lse = -inf; its gradient is zero.
// The forward saves lse (B, Hq, Tq) f32 for the backward, which recomputes probabilities tile by
// tile: the Tq x Tk matrix is never materialised on either backend.
// FLOPs (forward) = 4 * B * Hq * Tq * Tk * D (halved when causal); backward = 2.5x forward.
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace tiller::kernels {

struct AttentionShape {
  int64_t B = 0, Hq = 0, Hkv = 0, Tq = 0, Tk = 0, D = 0;
  float scale = 0.f;  // usually 1/sqrt(D)
  bool causal = true;
  const int32_t* key_padding_mask = nullptr;  // (B, Tk) or null
  const int32_t* document_ids = nullptr;      // (B, Tk) or null
};

template <Backend B>
void attention_forward(const AttentionShape& shape, const void* q, const void* k, const void* v,
                       void* out, float* lse, DType dtype);

// Overwrites dq, dk, dv. dk/dv sum over the query heads that share a kv head.
template <Backend B>
void attention_backward(const AttentionShape& shape, const void* q, const void* k, const void* v,
                        const void* out, const void* dout, const float* lse, void* dq, void* dk,
                        void* dv, DType dtype);

}  // namespace tiller::kernels
