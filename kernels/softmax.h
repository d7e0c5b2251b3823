// Softmax and log-softmax over the last dim of a (rows, cols) tensor, and the losses built on
// them: fused cross-entropy, gathered token log-probs and entropy.
//
// Every loss kernel works from the row's log-sum-exp (lse, f32, saved by the forward) so the
// backward recomputes probabilities on the fly and never stores a (rows, V) probability matrix.
// Cross-entropy forward+backward is one read of the logits each way: bytes ~ 2 * rows * V * size.
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace tiller::kernels {

template <Backend B>
void softmax_forward(const void* x, void* y, int64_t rows, int64_t cols, DType dtype);
// dx = y * (dy - sum(dy * y))
template <Backend B>
void softmax_backward(const void* y, const void* dy, void* dx, int64_t rows, int64_t cols,
                      DType dtype);

template <Backend B>
void log_softmax_forward(const void* x, void* y, int64_t rows, int64_t cols, DType dtype);
// dx = dy - exp(y) * sum(dy)
template <Backend B>
void log_softmax_backward(const void* y, const void* dy, void* dx, int64_t rows, int64_t cols,
                          DType dtype);

// loss[r] = lse[r] - logits[r, target[r]]; rows whose target == ignore_index get loss 0.
// Targets must be in [0, V) or ignore_index (core checks).
template <Backend B>
void cross_entropy_forward(const void* logits, const int32_t* targets, float* loss, float* lse,
                           int64_t rows, int64_t V, int32_t ignore_index, DType dtype);
// dlogits[r] = dloss[r] * (softmax(logits[r]) - onehot(target[r])); zero on ignored rows.
template <Backend B>
void cross_entropy_backward(const void* logits, const int32_t* targets, const float* lse,
                            const float* dloss, void* dlogits, int64_t rows, int64_t V,
                            int32_t ignore_index, DType dtype);

// hits[r] = 1 when targets[r] is the row's argmax (the first index of its largest logit), else 0;
// 0 on rows whose target == ignore_index or lies outside [0, V). No gradient. Lets a trainer count
// greedy-prediction hits on the device instead of copying (rows, V) logits to the host.
template <Backend B>
void argmax_hits(const void* logits, const int32_t* targets, float* hits, int64_t rows, int64_t V,
                 int32_t ignore_index, DType dtype);

// logp[r] = logits[r, token[r]] - lse[r].
template <Backend B>
void token_logprobs_forward(const void* logits, const int32_t* tokens, float* logp, float* lse,
                            int64_t rows, int64_t V, DType dtype);
// dlogits[r] = dlogp[r] * (onehot(token[r]) - softmax(logits[r])).
template <Backend B>
void token_logprobs_backward(const void* logits, const int32_t* tokens, const float* lse,
                             const float* dlogp, void* dlogits, int64_t rows, int64_t V,
                             DType dtype);

// entropy[r] = -sum_j p_j log p_j.
template <Backend B>
void entropy_forward(const void* logits, float* entropy, float* lse, int64_t rows, int64_t V,
                     DType dtype);
// dlogits[r, j] = -dentropy[r] * p_j * (log p_j + entropy[r]).
template <Backend B>
void entropy_backward(const void* logits, const float* lse, const float* entropy,
                      const float* dentropy, void* dlogits, int64_t rows, int64_t V, DType dtype);

}  // namespace tiller::kernels
