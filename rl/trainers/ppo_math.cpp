// PPO arithmetic (see rl/ppo_math.h).
#include "rl/trainers/ppo_math.h"

#include <algorithm>
#include <cmath>

namespace tiller::rl {

namespace {

void check_same_shape(const char* op, const Tensor& a, const char* a_name, const Tensor& b,
                      const char* b_name) {
  TILLER_CHECK(a.defined() && b.defined() && a.shape() == b.shape(), "{}: {} is {} but {} is {}",
               op, a_name, a.defined() ? shape_str(a.shape()) : "undefined", b_name,
               b.defined() ? shape_str(b.shape()) : "undefined");
}

void check_2d(const char* op, const Tensor& t, const char* name) {
  TILLER_CHECK(t.defined() && t.dim() == 2, "{}: {} must be (B, T), got {}", op, name,
               t.defined() ? shape_str(t.shape()) : "undefined");
}

}  // namespace

Tensor masked_mean(const Tensor& x, const Tensor& mask) {
  check_same_shape("masked_mean", x, "x", mask, "mask");
  float count = sum(mask).item();
  if (count <= 0.f) return scale(sum(mul(x, mask)), 0.f);
  return scale(sum(mul(x, mask)), 1.f / count);
}

float masked_variance(const Tensor& x, const Tensor& mask) {
  check_same_shape("masked_variance", x, "x", mask, "mask");
  std::vector<float> xv = x.to_vector(), mv = mask.to_vector();
  double n = 0, total = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    n += mv[i];
    total += mv[i] * xv[i];
  }
  TILLER_CHECK(n > 1, "masked_variance: needs at least 2 unmasked elements, got {}", n);
  double mean = total / n, squares = 0;
  for (size_t i = 0; i < xv.size(); ++i) squares += mv[i] * (xv[i] - mean) * (xv[i] - mean);
  return static_cast<float>(squares / n * (n / (n - 1)));
}

Tensor masked_whiten(const Tensor& x, const Tensor& mask, bool shift_mean) {
  check_same_shape("masked_whiten", x, "x", mask, "mask");
  std::vector<float> xv = x.to_vector(), mv = mask.to_vector();
  double n = 0, total = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    n += mv[i];
    total += mv[i] * xv[i];
  }
  float mean = n > 0 ? static_cast<float>(total / n) : 0.f;
  float variance = masked_variance(x, mask);
  float inv_std = 1.f / std::sqrt(variance + 1e-8f);
  std::vector<float> out(xv.size(), 0.f);
  for (size_t i = 0; i < xv.size(); ++i) {
    if (mv[i] == 0.f) continue;
    out[i] = (xv[i] - mean) * inv_std + (shift_mean ? 0.f : mean);
  }
  return Tensor::from_vector(out, x.shape());
}

Tensor kl_estimate(const Tensor& logp, const Tensor& ref_logp, KLEstimator estimator) {
  check_same_shape("kl_estimate", logp, "logp", ref_logp, "ref_logp");
  Tensor log_ratio = sub(logp, ref_logp);  // log p - log p_ref
  if (estimator == KLEstimator::k1) return log_ratio;
  // k3 with r = p_ref / p: (r - 1) - log r = exp(-log_ratio) - 1 + log_ratio
  return add(add_scalar(exp(neg(log_ratio)), -1.f), log_ratio);
}

Tensor shape_rewards(const Tensor& score, const Tensor& kl, const Tensor& mask, float kl_coef) {
  check_2d("shape_rewards", kl, "kl");
  check_same_shape("shape_rewards", kl, "kl", mask, "mask");
  int64_t B = kl.size(0), T = kl.size(1);
  TILLER_CHECK(score.defined() && score.numel() == B, "shape_rewards: score has {} values for {} "
               "sequences", score.defined() ? score.numel() : 0, B);
  std::vector<float> klv = kl.to_vector(), mv = mask.to_vector(), sv = score.to_vector();
  std::vector<float> rewards(B * T, 0.f);
  for (int64_t b = 0; b < B; ++b) {
    int64_t last = -1;
    for (int64_t t = 0; t < T; ++t) {
      if (mv[b * T + t] == 0.f) continue;
      rewards[b * T + t] = -kl_coef * klv[b * T + t];
      last = t;
    }
    if (last >= 0) rewards[b * T + last] += sv[b];
  }
  return Tensor::from_vector(rewards, {B, T});
}

Advantages gae(const Tensor& rewards, const Tensor& values, const Tensor& mask, float gamma,
               float lambda) {
  check_2d("gae", rewards, "rewards");
  check_same_shape("gae", rewards, "rewards", values, "values");
  check_same_shape("gae", rewards, "rewards", mask, "mask");
  int64_t B = rewards.size(0), T = rewards.size(1);
  std::vector<float> r = rewards.to_vector(), v = values.to_vector(), m = mask.to_vector();
  std::vector<float> adv(B * T, 0.f), ret(B * T, 0.f);
  for (int64_t b = 0; b < B; ++b) {
    float running = 0.f, next_value = 0.f;
    for (int64_t t = T - 1; t >= 0; --t) {
      int64_t i = b * T + t;
      if (m[i] == 0.f) continue;  // padding after the response: not part of the episode
      float delta = r[i] + gamma * next_value - v[i];
      running = delta + gamma * lambda * running;
      adv[i] = running;
      ret[i] = running + v[i];
      next_value = v[i];
    }
  }
  return {Tensor::from_vector(adv, {B, T}), Tensor::from_vector(ret, {B, T})};
}

PolicyLoss clipped_policy_loss(const Tensor& logp, const Tensor& old_logp,
                               const Tensor& advantages, const Tensor& mask, float clip_range) {
  check_same_shape("clipped_policy_loss", logp, "logp", old_logp, "old_logp");
  check_same_shape("clipped_policy_loss", logp, "logp", advantages, "advantages");
  check_same_shape("clipped_policy_loss", logp, "logp", mask, "mask");
  TILLER_CHECK(clip_range > 0.f, "clipped_policy_loss: clip_range must be > 0, got {}",
               clip_range);
  Tensor log_ratio = sub(logp, old_logp.detach());
  Tensor ratio = exp(log_ratio);
  Tensor adv = advantages.detach();
  Tensor unclipped = neg(mul(adv, ratio));
  Tensor clipped = neg(mul(adv, clamp(ratio, 1.f - clip_range, 1.f + clip_range)));
  PolicyLoss out;
  out.loss = masked_mean(maximum(unclipped, clipped), mask);
  NoGradGuard no_grad;
  std::vector<float> u = unclipped.to_vector(), c = clipped.to_vector(), m = mask.to_vector();
  std::vector<float> lr = log_ratio.to_vector(), ra = ratio.to_vector();
  double count = 0, clipped_count = 0, kl = 0, ratio_sum = 0;
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i] == 0.f) continue;
    count += 1;
    clipped_count += c[i] > u[i] ? 1 : 0;
    kl += 0.5 * lr[i] * lr[i];
    ratio_sum += ra[i];
  }
  if (count > 0) {
    out.clipfrac = static_cast<float>(clipped_count / count);
    out.approxkl = static_cast<float>(kl / count);
    out.ratio_mean = static_cast<float>(ratio_sum / count);
  }
  return out;
}

ValueLoss clipped_value_loss(const Tensor& values, const Tensor& old_values,
                             const Tensor& returns, const Tensor& mask, float clip_range) {
  check_same_shape("clipped_value_loss", values, "values", old_values, "old_values");
  check_same_shape("clipped_value_loss", values, "values", returns, "returns");
  check_same_shape("clipped_value_loss", values, "values", mask, "mask");
  Tensor old = old_values.detach(), target = returns.detach();
  Tensor clipped_values = add(old, clamp(sub(values, old), -clip_range, clip_range));
  Tensor error = square(sub(values, target));
  Tensor clipped_error = square(sub(clipped_values, target));
  ValueLoss out;
  out.loss = scale(masked_mean(maximum(error, clipped_error), mask), 0.5f);
  NoGradGuard no_grad;
  std::vector<float> e = error.to_vector(), ce = clipped_error.to_vector(), m = mask.to_vector();
  double count = 0, clipped_count = 0;
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i] == 0.f) continue;
    count += 1;
    clipped_count += ce[i] > e[i] ? 1 : 0;
  }
  if (count > 0) out.clipfrac = static_cast<float>(clipped_count / count);
  return out;
}

KLController::KLController(float initial, float target, float horizon)
    : value_(initial), target_(target), horizon_(horizon) {
  TILLER_CHECK(initial >= 0.f, "KLController: initial coefficient must be >= 0, got {}", initial);
  TILLER_CHECK(horizon > 0.f, "KLController: horizon must be > 0, got {}", horizon);
}

void KLController::update(float current_kl, int64_t n_steps) {
  if (!adaptive()) return;
  float error = std::clamp(current_kl / target_ - 1.f, -0.2f, 0.2f);
  value_ *= 1.f + error * static_cast<float>(n_steps) / horizon_;
}

}  // namespace tiller::rl
