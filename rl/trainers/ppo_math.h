// The arithmetic of RLHF-PPO, separate from the trainer so each piece is tested by hand:
// per-token KL estimators, reward shaping, GAE, whitening, the clipped policy and value losses,
// and the adaptive KL controller. Semantics follow TRL's PPO trainer (and "The N Implementation
// Details of RLHF with PPO"), so numbers are comparable with what practitioners know.
//
// Shapes: (B, T) over response tokens, with `mask` (B, T) f32 = 1 on real response tokens and 0
// on padding after the response ended. Losses are masked means. Everything that is
// differentiable is built from tiller ops (any device); advantage computation is host-side
// (rollout-sized, not on the hot path) and returns CPU tensors.
#pragma once

#include <vector>

#include "core/ops/ops.h"

namespace tiller::rl {

// sum(x * mask) / sum(mask); 0 when the mask is empty.
Tensor masked_mean(const Tensor& x, const Tensor& mask);

// Unbiased variance over the masked elements (Bessel-corrected, as TRL's masked_var).
float masked_variance(const Tensor& x, const Tensor& mask);

// (x - mean) / sqrt(var + 1e-8) over masked elements; with shift_mean = false the mean is added
// back (TRL whitens rewards that way). Masked-out positions come back as 0. Not differentiable.
Tensor masked_whiten(const Tensor& x, const Tensor& mask, bool shift_mean = true);

enum class KLEstimator {
  k1,  // log p - log p_ref: unbiased, can be negative per token
  k3,  // (r - 1) - log r with r = p_ref / p: unbiased, always >= 0, lower variance
};

// Per-token KL estimate between the policy and the reference from their token log-probs.
Tensor kl_estimate(const Tensor& logp, const Tensor& ref_logp, KLEstimator estimator);

// Per-token reward: -kl_coef * kl everywhere, plus `score` (B) added at the last real token of
// each sequence (mask gives the lengths). Returns (B, T) on the CPU.
Tensor shape_rewards(const Tensor& score, const Tensor& kl, const Tensor& mask, float kl_coef);

struct Advantages {
  Tensor advantages;  // (B, T), 0 on masked positions
  Tensor returns;     // advantages + values, (B, T)
};

// Generalised advantage estimation over each sequence's real tokens; the value after the last
// real token is 0 (the episode ends with the response).
Advantages gae(const Tensor& rewards, const Tensor& values, const Tensor& mask, float gamma,
               float lambda);

struct PolicyLoss {
  Tensor loss;         // scalar, differentiable w.r.t. logp
  float clipfrac = 0;  // fraction of tokens where the clipped objective was the active one
  float approxkl = 0;  // 0.5 * mean((logp - old_logp)^2)
  float ratio_mean = 0;
};

// PPO clipped surrogate: mean(max(-A r, -A clip(r, 1-eps, 1+eps))), r = exp(logp - old_logp).
PolicyLoss clipped_policy_loss(const Tensor& logp, const Tensor& old_logp,
                               const Tensor& advantages, const Tensor& mask, float clip_range);

struct ValueLoss {
  Tensor loss;         // scalar, differentiable w.r.t. values
  float clipfrac = 0;  // fraction of tokens where the clipped error was the larger one
};

// 0.5 * mean(max((v - R)^2, (v_clipped - R)^2)), v_clipped = old + clip(v - old, -c, c).
ValueLoss clipped_value_loss(const Tensor& values, const Tensor& old_values,
                             const Tensor& returns, const Tensor& mask, float clip_range);

// Fixed or adaptive KL coefficient (Ziegler et al. 2019): the coefficient is multiplied by
// 1 + clip(kl / target - 1, -0.2, 0.2) * n_steps / horizon after each batch.
class KLController {
 public:
  explicit KLController(float initial, float target = 0.f, float horizon = 10000.f);
  float value() const { return value_; }
  void restore(float value) { value_ = value; }  // resume: the coefficient a checkpoint saved
  bool adaptive() const { return target_ > 0.f; }
  void update(float current_kl, int64_t n_steps);

 private:
  float value_, target_, horizon_;
};

}  // namespace tiller::rl
