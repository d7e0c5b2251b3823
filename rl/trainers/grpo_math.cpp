// GRPO arithmetic (see rl/trainers/grpo_math.h).
#include "rl/trainers/grpo_math.h"

#include <cmath>
#include <string>

namespace tiller::rl {

namespace {

void check_like(const Tensor& t, const char* name, const Tensor& logp) {
  TILLER_CHECK(t.defined() && t.shape() == logp.shape(), "grpo_loss: {} is {} but logp is {}", name,
               t.defined() ? shape_str(t.shape()) : "undefined", shape_str(logp.shape()));
}

}  // namespace

ScaleRewards parse_scale_rewards(std::string_view name) {
  if (name == "group") return ScaleRewards::group;
  if (name == "batch") return ScaleRewards::batch;
  if (name == "none") return ScaleRewards::none;
  TILLER_CHECK(false, "grpo: unknown scale_rewards '{}' (expected group, batch or none)",
               std::string(name));
  return ScaleRewards::group;
}

GrpoLossType parse_grpo_loss_type(std::string_view name) {
  if (name == "grpo") return GrpoLossType::grpo;
  if (name == "bnpo") return GrpoLossType::bnpo;
  if (name == "dr_grpo") return GrpoLossType::dr_grpo;
  if (name == "dapo") return GrpoLossType::dapo;
  TILLER_CHECK(false, "grpo: unknown loss_type '{}' (expected grpo, bnpo, dr_grpo or dapo)",
               std::string(name));
  return GrpoLossType::dapo;
}

const char* scale_rewards_name(ScaleRewards scale) {
  switch (scale) {
    case ScaleRewards::group:
      return "group";
    case ScaleRewards::batch:
      return "batch";
    case ScaleRewards::none:
      return "none";
  }
  return "?";
}

const char* grpo_loss_type_name(GrpoLossType type) {
  switch (type) {
    case GrpoLossType::grpo:
      return "grpo";
    case GrpoLossType::bnpo:
      return "bnpo";
    case GrpoLossType::dr_grpo:
      return "dr_grpo";
    case GrpoLossType::dapo:
      return "dapo";
  }
  return "?";
}

std::vector<float> weighted_rewards(const std::vector<std::vector<float>>& per_function,
                                    const std::vector<float>& weights) {
  TILLER_CHECK(!per_function.empty(), "grpo: no reward functions");
  TILLER_CHECK(per_function.size() == weights.size(),
               "grpo: {} reward functions but {} reward weights", per_function.size(),
               weights.size());
  size_t n = per_function[0].size();
  std::vector<float> total(n, 0.f);
  for (size_t f = 0; f < per_function.size(); ++f) {
    TILLER_CHECK(per_function[f].size() == n,
                 "grpo: reward function {} gave {} rewards, reward function 0 gave {}", f,
                 per_function[f].size(), n);
    for (size_t i = 0; i < n; ++i) {
      TILLER_CHECK(std::isfinite(per_function[f][i]),
                   "grpo: reward function {} gave a non-finite reward ({}) for completion {}", f,
                   per_function[f][i], i);
      total[i] += weights[f] * per_function[f][i];
    }
  }
  return total;
}

double mean_of(const std::vector<float>& v) {
  if (v.empty()) return 0.0;
  double total = 0;
  for (float x : v) total += x;
  return total / static_cast<double>(v.size());
}

double unbiased_std(const std::vector<float>& v) {
  if (v.size() < 2) return 0.0;
  double m = mean_of(v), squares = 0;
  for (float x : v) squares += (x - m) * (x - m);
  return std::sqrt(squares / static_cast<double>(v.size() - 1));
}

GroupAdvantages group_advantages(const std::vector<float>& rewards, int64_t num_generations,
                                 ScaleRewards scale_rewards) {
  TILLER_CHECK(num_generations >= 2,
               "grpo: num_generations must be >= 2 (a group of one has no relative reward), got {}",
               num_generations);
  int64_t n = static_cast<int64_t>(rewards.size());
  TILLER_CHECK(n > 0 && n % num_generations == 0,
               "grpo: {} rewards is not a whole number of groups of {}", n, num_generations);
  GroupAdvantages out;
  out.advantages.resize(n);
  out.std_rewards.resize(n);
  double batch_std = unbiased_std(rewards);
  for (int64_t g = 0; g < n / num_generations; ++g) {
    auto first = rewards.begin() + g * num_generations;
    std::vector<float> group(first, first + num_generations);
    double group_mean = mean_of(group), group_std = unbiased_std(group);
    double s = scale_rewards == ScaleRewards::batch ? batch_std : group_std;
    for (int64_t j = 0; j < num_generations; ++j) {
      int64_t i = g * num_generations + j;
      double centred = rewards[i] - group_mean;
      out.advantages[i] =
          static_cast<float>(scale_rewards == ScaleRewards::none ? centred : centred / (s + 1e-4));
      out.std_rewards[i] = static_cast<float>(s);
    }
  }
  out.reward = mean_of(rewards);
  out.reward_std = batch_std;
  int64_t zero = 0;
  // torch.isclose(std, 0) with its defaults (atol 1e-8, rtol 1e-5): |std| <= 1e-8.
  for (float s : out.std_rewards) zero += std::fabs(s) <= 1e-8f ? 1 : 0;
  out.frac_reward_zero_std = static_cast<double>(zero) / static_cast<double>(n);
  return out;
}

void validate(const GrpoLossConfig& config) {
  TILLER_CHECK(config.epsilon > 0.f && config.epsilon < 1.f,
               "grpo: epsilon must be in (0, 1), got {}", config.epsilon);
  TILLER_CHECK(config.epsilon_high >= 0.f,
               "grpo: epsilon_high must be >= 0 (0: equal to "
               "epsilon), got {}",
               config.epsilon_high);
  TILLER_CHECK(config.beta >= 0.f, "grpo: beta must be >= 0, got {}", config.beta);
  TILLER_CHECK(config.max_completion_length > 0, "grpo: max_completion_length must be > 0, got {}",
               config.max_completion_length);
}

GrpoLoss grpo_loss(const GrpoLossInputs& in, const GrpoLossConfig& config) {
  validate(config);
  TILLER_CHECK(in.logp.defined() && in.logp.dim() == 2, "grpo_loss: logp must be (B, T), got {}",
               in.logp.defined() ? shape_str(in.logp.shape()) : "undefined");
  int64_t B = in.logp.size(0);
  check_like(in.mask, "mask", in.logp);
  TILLER_CHECK(in.advantages.defined() && in.advantages.dim() == 1 && in.advantages.size(0) == B,
               "grpo_loss: advantages must be ({}), got {}", B,
               in.advantages.defined() ? shape_str(in.advantages.shape()) : "undefined");
  TILLER_CHECK(in.accumulation_steps >= 1, "grpo_loss: accumulation_steps must be >= 1, got {}",
               in.accumulation_steps);
  if (in.old_logp.defined()) check_like(in.old_logp, "old_logp", in.logp);
  bool use_kl = config.beta > 0.f;
  if (use_kl) check_like(in.ref_logp, "ref_logp", in.logp);
  float eps_low = config.epsilon;
  float eps_high = config.epsilon_high > 0.f ? config.epsilon_high : config.epsilon;

  Tensor old = in.old_logp.defined() ? in.old_logp.detach() : in.logp.detach();
  Tensor ratio = exp(sub(in.logp, old));                     // (B, T)
  Tensor advantages = unsqueeze(in.advantages.detach(), 1);  // (B, 1)
  Tensor surrogate =
      minimum(mul(ratio, advantages), mul(clamp(ratio, 1.f - eps_low, 1.f + eps_high), advantages));
  Tensor per_token = neg(surrogate);
  Tensor kl;
  if (use_kl) {
    Tensor ref_minus_logp = sub(in.ref_logp.detach(), in.logp);
    kl = add_scalar(sub(exp(ref_minus_logp), ref_minus_logp), -1.f);  // k3, >= 0
    per_token = add(per_token, scale(kl, config.beta));
  }
  Tensor masked = mul(per_token, in.mask);
  // The token count is read on the host once per micro-batch: it sizes the normaliser.
  double tokens = sum(in.mask).item();
  double k = static_cast<double>(in.accumulation_steps);
  GrpoLoss out;
  out.tokens = static_cast<int64_t>(tokens);
  switch (config.loss_type) {
    case GrpoLossType::grpo: {
      Tensor lengths = clamp(sum(in.mask.detach(), 1), 1.f, 1e30f);
      out.loss = scale(mean(div(sum(masked, 1), lengths)), static_cast<float>(1.0 / k));
      break;
    }
    case GrpoLossType::bnpo:
      out.loss = scale(sum(masked), static_cast<float>(1.0 / (std::max(tokens, 1.0) * k)));
      break;
    case GrpoLossType::dr_grpo:
      out.loss = scale(
          sum(masked),
          static_cast<float>(1.0 / (static_cast<double>(B * config.max_completion_length) * k)));
      break;
    case GrpoLossType::dapo: {
      TILLER_CHECK(in.tokens_in_batch > 0,
                   "grpo_loss: dapo needs tokens_in_batch (completion tokens of the whole "
                   "accumulated batch) > 0, got {}",
                   in.tokens_in_batch);
      out.loss =
          scale(sum(masked), static_cast<float>(1.0 / static_cast<double>(in.tokens_in_batch)));
      break;
    }
  }

  NoGradGuard no_grad;
  std::vector<float> r = ratio.to_vector(), m = in.mask.to_vector();
  std::vector<float> a = in.advantages.to_vector();
  std::vector<float> klv = use_kl ? kl.to_vector() : std::vector<float>();
  int64_t T = in.logp.size(1);
  double low = 0, high = 0, region = 0, kl_sum = 0;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      float w = m[b * T + t];
      if (w == 0.f) continue;
      bool is_low = r[b * T + t] < 1.f - eps_low && a[b] < 0.f;
      bool is_high = r[b * T + t] > 1.f + eps_high && a[b] > 0.f;
      low += w * is_low;
      high += w * is_high;
      region += w * (is_low || is_high);
      if (use_kl) kl_sum += w * klv[b * T + t];
    }
  }
  if (tokens > 0) {
    out.clip_low = low / tokens;
    out.clip_high = high / tokens;
    out.clip_region = region / tokens;
    out.kl = kl_sum / tokens;
  }
  return out;
}

}  // namespace tiller::rl
