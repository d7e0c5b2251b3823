// softmax, log_softmax and the losses on logits (..., V): cross_entropy, token_logprobs, entropy.
//
// Leading dims are flattened to rows of V. softmax/log_softmax save their output (their backward
// is a function of it); the losses save only the f32 per-row log-sum-exp, and their backward
// kernels rebuild probabilities from the logits, so no (rows, V) probability matrix is kept.
// Saved outputs are captured detached: a node holding its own output would be a reference cycle.
// cross_entropy's per-token loss is one node; the mean/sum reductions are ordinary differentiable
// ops on top of it, so there is one backward kernel call whatever the reduction.
#include "core/tensor/dispatch.h"
#include "core/tensor/op_checks.h"
#include "core/ops/ops.h"
#include "kernels/softmax.h"

namespace tiller {

using detail::check_float;
using detail::check_i32;
using detail::check_same_device;
using detail::empty_f32;
using detail::empty_like;

namespace {

struct Rows {
  int64_t rows;
  int64_t V;
};

Rows check_logits(const char* op, const Tensor& logits, const char* name = "logits") {
  check_float(op, name, logits);
  TILLER_CHECK(logits.dim() >= 1 && logits.size(-1) > 0,
               "{}: {} must have a non-empty last dim, got {}", op, name,
               shape_str(logits.shape()));
  int64_t V = logits.size(-1);
  return {logits.numel() / V, V};
}

Shape leading_shape(const Tensor& logits) {
  return Shape(logits.shape().begin(), logits.shape().end() - 1);
}

// Token ids (...) matching logits (..., V), on the same device, in [0, V) or `allowed`.
// With `want_divisor`, returns max(1, number of ids that are not `allowed`) as an f32 scalar on
// the device (see detail::check_token_range).
Tensor check_tokens(const char* op, const Tensor& logits, const Tensor& ids, const char* name,
                    const int32_t* allowed = nullptr, bool want_divisor = false) {
  check_i32(op, name, ids);
  check_same_device(op, logits, "logits", ids, name);
  TILLER_CHECK(ids.shape() == leading_shape(logits), "{}: logits are {} so {} must be {}, got {}",
               op, shape_str(logits.shape()), name, shape_str(leading_shape(logits)),
               shape_str(ids.shape()));
  return detail::check_token_range(op, name, ids, logits.size(-1), allowed, want_divisor);
}

// softmax and log_softmax share everything but their two kernels.
// (Structured bindings enter lambdas as init-captures, `rows = rows`: clang 14, the fuzz preset's
// compiler, cannot capture a binding directly.)
template <typename Forward, typename Backward>
Tensor normalise_last_dim(const char* op, const Tensor& x, Forward forward, Backward backward) {
  auto [rows, cols] = check_logits(op, x, "x");
  Tensor y = empty_like(x);
  if (rows > 0) forward(x, y, rows, cols);
  return record(y, op, {x}, [y = y.detach(), rows = rows, cols = cols, backward](const Tensor& g) {
    Tensor dx = empty_like(y);
    Tensor dy = g.to(y.dtype());
    if (rows > 0) backward(y, dy, dx, rows, cols);
    return std::vector<Tensor>{dx};
  });
}

}  // namespace

Tensor softmax(const Tensor& x) {
  return normalise_last_dim(
      "softmax", x,
      [](const Tensor& in, Tensor& out, int64_t rows, int64_t cols) {
        TILLER_DISPATCH(in.device(), kernels::softmax_forward, in.data_ptr(), out.data_ptr(),
                        rows, cols, in.dtype());
      },
      [](const Tensor& y, const Tensor& dy, Tensor& dx, int64_t rows, int64_t cols) {
        TILLER_DISPATCH(y.device(), kernels::softmax_backward, y.data_ptr(), dy.data_ptr(),
                        dx.data_ptr(), rows, cols, y.dtype());
      });
}

Tensor log_softmax(const Tensor& x) {
  return normalise_last_dim(
      "log_softmax", x,
      [](const Tensor& in, Tensor& out, int64_t rows, int64_t cols) {
        TILLER_DISPATCH(in.device(), kernels::log_softmax_forward, in.data_ptr(), out.data_ptr(),
                        rows, cols, in.dtype());
      },
      [](const Tensor& y, const Tensor& dy, Tensor& dx, int64_t rows, int64_t cols) {
        TILLER_DISPATCH(y.device(), kernels::log_softmax_backward, y.data_ptr(), dy.data_ptr(),
                        dx.data_ptr(), rows, cols, y.dtype());
      });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int32_t ignore_index,
                     Reduction reduction) {
  const char* op = "cross_entropy";
  auto [rows, V] = check_logits(op, logits);
  const Tensor divisor =
      check_tokens(op, logits, targets, "targets", &ignore_index, reduction == Reduction::mean);
  Tensor loss = empty_f32(logits, leading_shape(logits));
  Tensor lse = empty_f32(logits, {rows});
  if (rows > 0)
    TILLER_DISPATCH(logits.device(), kernels::cross_entropy_forward, logits.data_ptr(),
                    targets.data<int32_t>(), loss.data<float>(), lse.data<float>(), rows, V,
                    ignore_index, logits.dtype());
  loss = record(loss, op, {logits}, [logits, targets, lse, rows = rows, V = V, ignore_index](const Tensor& g) {
    Tensor dlogits = empty_like(logits);
    Tensor dloss = g.to(DType::f32);
    if (rows > 0)
      TILLER_DISPATCH(logits.device(), kernels::cross_entropy_backward, logits.data_ptr(),
                      targets.data<int32_t>(), lse.data<float>(), dloss.data<float>(),
                      dlogits.data_ptr(), rows, V, ignore_index, logits.dtype());
    return std::vector<Tensor>{dlogits};
  });
  switch (reduction) {
    case Reduction::none: return loss;
    case Reduction::sum: return sum(loss);
    case Reduction::mean:
      // divisor = max(1, real tokens): with every token ignored the loss and its gradient are 0,
      // not 0/0. On CUDA the division stays on the device (no host round trip in a step); on the
      // CPU reading the count is free and scale() keeps the mean's rounding as it was.
      if (logits.device().is_cuda()) return div(sum(loss), divisor);
      return scale(sum(loss), 1.f / divisor.item());
  }
  fail("cross_entropy: unknown reduction {}", static_cast<int>(reduction));
}

Tensor token_logprobs(const Tensor& logits, const Tensor& tokens) {
  const char* op = "token_logprobs";
  auto [rows, V] = check_logits(op, logits);
  check_tokens(op, logits, tokens, "tokens");
  Tensor logp = empty_f32(logits, leading_shape(logits));
  Tensor lse = empty_f32(logits, {rows});
  if (rows > 0)
    TILLER_DISPATCH(logits.device(), kernels::token_logprobs_forward, logits.data_ptr(),
                    tokens.data<int32_t>(), logp.data<float>(), lse.data<float>(), rows, V,
                    logits.dtype());
  return record(logp, op, {logits}, [logits, tokens, lse, rows = rows, V = V](const Tensor& g) {
    Tensor dlogits = empty_like(logits);
    Tensor dlogp = g.to(DType::f32);
    if (rows > 0)
      TILLER_DISPATCH(logits.device(), kernels::token_logprobs_backward, logits.data_ptr(),
                      tokens.data<int32_t>(), lse.data<float>(), dlogp.data<float>(),
                      dlogits.data_ptr(), rows, V, logits.dtype());
    return std::vector<Tensor>{dlogits};
  });
}

Tensor entropy(const Tensor& logits) {
  const char* op = "entropy";
  auto [rows, V] = check_logits(op, logits);
  Tensor result = empty_f32(logits, leading_shape(logits));
  Tensor lse = empty_f32(logits, {rows});
  if (rows > 0)
    TILLER_DISPATCH(logits.device(), kernels::entropy_forward, logits.data_ptr(),
                    result.data<float>(), lse.data<float>(), rows, V, logits.dtype());
  return record(result, op, {logits},
                [logits, lse, saved = result.detach(), rows = rows, V = V](const Tensor& g) {
                  Tensor dlogits = empty_like(logits);
                  Tensor dentropy = g.to(DType::f32);
                  if (rows > 0)
                    TILLER_DISPATCH(logits.device(), kernels::entropy_backward, logits.data_ptr(),
                                    lse.data<float>(), saved.data<float>(), dentropy.data<float>(),
                                    dlogits.data_ptr(), rows, V, logits.dtype());
                  return std::vector<Tensor>{dlogits};
                });
}

}  // namespace tiller
