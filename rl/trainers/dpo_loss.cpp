// DPO arithmetic (see rl/trainers/dpo_loss.h).
#include "rl/trainers/dpo_loss.h"

#include <string>

namespace tiller::rl {

namespace {

void check_pairs(const Tensor& t, const char* name, int64_t pairs) {
  TILLER_CHECK(t.defined() && t.dim() == 1 && t.size(0) == pairs,
               "dpo_loss: {} must be ({}) like chosen_logps, got {}", name, pairs,
               t.defined() ? shape_str(t.shape()) : "undefined");
}

double mean_of(const std::vector<float>& v) {
  double total = 0;
  for (float x : v) total += x;
  return v.empty() ? 0.0 : total / static_cast<double>(v.size());
}

}  // namespace

DpoLossType parse_dpo_loss_type(std::string_view name) {
  if (name == "sigmoid") return DpoLossType::sigmoid;
  if (name == "ipo") return DpoLossType::ipo;
  if (name == "hinge") return DpoLossType::hinge;
  if (name == "robust") return DpoLossType::robust;
  TILLER_CHECK(false, "dpo: unknown loss_type '{}' (expected sigmoid, ipo, hinge or robust)",
               std::string(name));
  return DpoLossType::sigmoid;
}

const char* dpo_loss_type_name(DpoLossType type) {
  switch (type) {
    case DpoLossType::sigmoid:
      return "sigmoid";
    case DpoLossType::ipo:
      return "ipo";
    case DpoLossType::hinge:
      return "hinge";
    case DpoLossType::robust:
      return "robust";
  }
  return "?";
}

void validate(const DpoLossConfig& config) {
  TILLER_CHECK(config.beta > 0.f, "dpo: beta must be > 0, got {}", config.beta);
  TILLER_CHECK(config.label_smoothing >= 0.f && config.label_smoothing < 0.5f,
               "dpo: label_smoothing must be in [0, 0.5), got {}", config.label_smoothing);
  TILLER_CHECK(config.loss_type == DpoLossType::robust || config.label_smoothing == 0.f,
               "dpo: label_smoothing applies to the robust loss only, not {} (TRL 1.x dropped "
               "it from sigmoid)",
               dpo_loss_type_name(config.loss_type));
}

Tensor sequence_logps(const Tensor& token_logps, const Tensor& mask) {
  TILLER_CHECK(token_logps.defined() && mask.defined() && token_logps.dim() == 2 &&
                   token_logps.shape() == mask.shape(),
               "sequence_logps: token_logps {} and mask {} must both be (B, T)",
               token_logps.defined() ? shape_str(token_logps.shape()) : "undefined",
               mask.defined() ? shape_str(mask.shape()) : "undefined");
  return sum(mul(token_logps, mask), 1);  // (B)
}

DpoLoss dpo_loss(const DpoInputs& in, const DpoLossConfig& config) {
  validate(config);
  TILLER_CHECK(in.chosen_logps.defined() && in.chosen_logps.dim() == 1,
               "dpo_loss: chosen_logps must be (B), got {}",
               in.chosen_logps.defined() ? shape_str(in.chosen_logps.shape()) : "undefined");
  int64_t pairs = in.chosen_logps.size(0);
  TILLER_CHECK(pairs > 0, "dpo_loss: the batch holds no pairs");
  check_pairs(in.rejected_logps, "rejected_logps", pairs);
  check_pairs(in.ref_chosen_logps, "ref_chosen_logps", pairs);
  check_pairs(in.ref_rejected_logps, "ref_rejected_logps", pairs);

  Tensor chosen_ratio = sub(in.chosen_logps, in.ref_chosen_logps.detach());        // s_c (B)
  Tensor rejected_ratio = sub(in.rejected_logps, in.ref_rejected_logps.detach());  // s_r (B)
  float beta = config.beta, e = config.label_smoothing;
  Tensor losses;
  if (config.loss_type == DpoLossType::ipo) {
    check_pairs(in.chosen_lengths, "chosen_lengths (required by ipo)", pairs);
    check_pairs(in.rejected_lengths, "rejected_lengths (required by ipo)", pairs);
    Tensor chosen_n = clamp(in.chosen_lengths.detach(), 1.f, 1e30f);
    Tensor rejected_n = clamp(in.rejected_lengths.detach(), 1.f, 1e30f);
    Tensor z = sub(div(chosen_ratio, chosen_n), div(rejected_ratio, rejected_n));
    losses = square(add_scalar(z, -1.f / (2.f * beta)));
  } else {
    Tensor z = sub(chosen_ratio, rejected_ratio);
    switch (config.loss_type) {
      case DpoLossType::sigmoid:
        losses = neg(logsigmoid(scale(z, beta)));
        break;
      case DpoLossType::robust:
        losses = scale(add(scale(logsigmoid(scale(z, beta)), -(1.f - e)),
                           scale(logsigmoid(scale(z, -beta)), e)),
                       1.f / (1.f - 2.f * e));
        break;
      case DpoLossType::hinge:
        losses = relu(add_scalar(scale(z, -beta), 1.f));
        break;
      case DpoLossType::ipo:
        break;
    }
  }
  DpoLoss out;
  out.losses = losses;
  out.loss = mean(losses);

  // One host copy per batch for logging: the rewards are detached values, read once.
  NoGradGuard no_grad;
  std::vector<float> chosen = in.chosen_logps.to_vector(), rejected = in.rejected_logps.to_vector();
  std::vector<float> s_c = chosen_ratio.to_vector(), s_r = rejected_ratio.to_vector();
  DpoMetrics& m = out.metrics;
  m.pairs = pairs;
  double accurate = 0;
  for (int64_t i = 0; i < pairs; ++i) {
    // β s in f32, as TRL computes it, so the accuracy tie-break matches.
    float reward_c = beta * s_c[i], reward_r = beta * s_r[i];
    m.rewards_chosen += reward_c;
    m.rewards_rejected += reward_r;
    accurate += reward_c > reward_r ? 1 : 0;
  }
  m.rewards_chosen /= pairs;
  m.rewards_rejected /= pairs;
  m.rewards_accuracies = accurate / pairs;
  m.rewards_margins = m.rewards_chosen - m.rewards_rejected;
  m.logps_chosen = mean_of(chosen);
  m.logps_rejected = mean_of(rejected);
  m.loss = out.loss.item();
  return out;
}

DpoMetrics combine(const DpoMetrics& a, const DpoMetrics& b) {
  if (a.pairs == 0) return b;
  if (b.pairs == 0) return a;
  double wa = static_cast<double>(a.pairs), wb = static_cast<double>(b.pairs), n = wa + wb;
  auto mix = [&](double x, double y) { return (x * wa + y * wb) / n; };
  DpoMetrics m;
  m.rewards_chosen = mix(a.rewards_chosen, b.rewards_chosen);
  m.rewards_rejected = mix(a.rewards_rejected, b.rewards_rejected);
  m.rewards_accuracies = mix(a.rewards_accuracies, b.rewards_accuracies);
  m.rewards_margins = mix(a.rewards_margins, b.rewards_margins);
  m.logps_chosen = mix(a.logps_chosen, b.logps_chosen);
  m.logps_rejected = mix(a.logps_rejected, b.logps_rejected);
  m.loss = mix(a.loss, b.loss);
  m.pairs = a.pairs + b.pairs;
  return m;
}

}  // namespace tiller::rl
