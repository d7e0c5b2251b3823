// The differentiable ops. Each records an autograd node when an input requires grad.
//
// Every op validates its inputs at the boundary and throws tiller::Error with a message that
// starts with the op name and shows the offending shapes/dtypes/devices. All inputs of one op must
// live on one device. The CPU backend computes in f32 (convert bf16 with .to(DType::f32) first);
// CUDA accepts f32 and bf16 (mixed precision: f32 accumulation inside every kernel).
//
// Implementations are split by family: ops_elementwise.cpp, ops_reduce.cpp, ops_shape.cpp,
// ops_matmul.cpp, ops_norm.cpp, ops_softmax.cpp (softmax + losses), ops_attention.cpp (attention
// + rope), ops_embedding.cpp, ops_dropout.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor/autograd.h"
#include "core/tensor/tensor.h"

namespace tiller {

// --- elementwise, with numpy broadcasting -------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);  // gradient goes to a where a >= b
Tensor minimum(const Tensor& a, const Tensor& b);  // gradient goes to a where a <= b
Tensor scale(const Tensor& x, float factor);       // x * factor
Tensor add_scalar(const Tensor& x, float value);   // x + value
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor square(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor logsigmoid(const Tensor& x);  // log(sigmoid(x)), stable for large |x|
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x);  // tanh approximation (GPT-2's "gelu_new")
Tensor silu(const Tensor& x);
Tensor swiglu(const Tensor& gate, const Tensor& up);  // silu(gate) * up
Tensor clamp(const Tensor& x, float low, float high);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator*(const Tensor& a, float s) { return scale(a, s); }
inline Tensor operator*(float s, const Tensor& a) { return scale(a, s); }
inline Tensor operator+(const Tensor& a, float s) { return add_scalar(a, s); }
inline Tensor operator-(const Tensor& a, float s) { return add_scalar(a, -s); }
inline Tensor operator-(const Tensor& a) { return neg(a); }

// --- reductions ---------------------------------------------------------------------------------
Tensor sum(const Tensor& x);  // all elements -> shape ()
Tensor sum(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, int64_t dim, bool keepdim = false);

// --- shape (materialising copies; reshape/flatten on Tensor are views) ----------------------------
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end);  // [start, end)
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);  // view
Tensor squeeze(const Tensor& x, int64_t dim);    // view; dim must have size 1

// --- linear algebra -----------------------------------------------------------------------------
// a (..., M, K) @ b (..., K, N) -> (..., M, N). Batch dims must match, or b may be 2-D and is then
// shared over a's batch. transpose_a/b transpose the last two dims of that operand first.
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a = false,
              bool transpose_b = false);
// x (..., in) @ weight(out, in)^T + bias(out). bias may be undefined. Weight layout is PyTorch's.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// --- neural-network ops ---------------------------------------------------------------------------
// ids (...) i32 in [0, V), weight (V, C) -> (..., C).
Tensor embedding(const Tensor& ids, const Tensor& weight);
// Over the last dim. bias may be undefined.
Tensor layernorm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps = 1e-5f);
Tensor rmsnorm(const Tensor& x, const Tensor& weight, float eps = 1e-6f);
Tensor softmax(const Tensor& x);      // last dim
Tensor log_softmax(const Tensor& x);  // last dim
// Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1-p).
// Identity when !training or p == 0. Draws numel counters from `gen`.
Tensor dropout(const Tensor& x, float p, Generator& gen, bool training = true);

// Rotary embedding of x (B, H, T, D) at positions (B, T) i32 (or (T), shared by the batch).
Tensor rope(const Tensor& x, const Tensor& positions, float theta = 10000.f);

struct AttentionOptions {
  bool causal = true;
  Tensor key_padding_mask;  // (B, Tk) i32, nonzero = real token; optional
  Tensor document_ids;      // (B, Tk) i32, attend only within a document; optional
  float scale = 0.f;        // 0 means 1/sqrt(D)
};
// q (B, Hq, Tq, D), k and v (B, Hkv, Tk, D) with Hq % Hkv == 0 -> (B, Hq, Tq, D).
// See kernels/attention.h for the exact visibility rule.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v,
                 const AttentionOptions& options = {});

// --- losses (logits (..., V); f32 results) ----------------------------------------------------------
enum class Reduction { mean, sum, none };
// Targets (...) i32 in [0, V) or ignore_index. mean: over non-ignored tokens (0 when none);
// sum: over all; none: per token, 0 at ignored ones.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int32_t ignore_index = -100,
                     Reduction reduction = Reduction::mean);
// log softmax(logits)[token] per position -> (...). Tokens must be in [0, V).
// 1 where targets[...] is the argmax of logits[..., :] (first index of the largest value), 0
// elsewhere and where the target == ignore_index; f32 (...), no gradient. Greedy accuracy on the
// logits' device (sum() it), without copying the logits to the host.
Tensor argmax_hits(const Tensor& logits, const Tensor& targets, int32_t ignore_index = -100);
Tensor token_logprobs(const Tensor& logits, const Tensor& tokens);
// Entropy of softmax(logits) per position -> (...).
Tensor entropy(const Tensor& logits);

}  // namespace tiller
