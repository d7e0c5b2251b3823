// The arithmetic of Group Relative Policy Optimization, separate from the trainer so each piece is
// tested by hand and against TRL: weighted rewards, group-relative advantages, the clipped
// surrogate with a k3 KL penalty, the four loss normalisations and the clip-ratio metrics.
// Semantics and names follow TRL's GRPOTrainer (trl/trainer/grpo_trainer.py:
// `_generate_and_score_completions` and `_compute_loss`).
//
// Advantages. G = num_generations completions per prompt, consecutive in the batch. With group
// mean m_g and unbiased (Bessel) standard deviation s:
//   A = r - m_g                      scale_rewards = none
//   A = (r - m_g) / (s_g + 1e-4)     scale_rewards = group (s over the prompt's G completions)
//   A = (r - m_g) / (s_b + 1e-4)     scale_rewards = batch (s over the whole batch; the mean is
//                                    still the group's, as in TRL)
//
// Per-token loss, ratio ρ = exp(logp - old_logp) (old = the generating policy; with one policy
// update per generation batch old_logp is logp detached, so ρ = 1 and only its gradient acts):
//   ℓ = -min(ρ A, clip(ρ, 1 - ε_low, 1 + ε_high) A) + β k3,   k3 = exp(ref - logp) - (ref - logp) -
//   1
// Normalisation over the completion mask M (B sequences in this micro-batch, k micro-batches per
// optimizer step):
//   grpo     mean over sequences of (Σ_t ℓ M / Σ_t M), divided by k   (per-sequence mean)
//   bnpo     Σ ℓ M / Σ M over the micro-batch, divided by k           (token mean, local batch)
//   dr_grpo  Σ ℓ M / (B · max_completion_length), divided by k
//   dapo     Σ ℓ M / (tokens in the whole accumulated batch)          (TRL's default)
// so for grpo, dr_grpo and dapo k equal micro-batches give exactly one batch's gradient; bnpo's
// token mean is over the local batch by definition and differs when lengths differ.
// Clip metrics (token means over M): low = ρ < 1 - ε_low with A < 0, high = ρ > 1 + ε_high with
// A > 0, region = either.
//
// Where tiller differs from TRL: no sequence-level importance sampling (GSPO), no two-sided
// `delta` clip, no top_entropy_quantile masking, no cispo / sapo losses, no vLLM importance
// correction; rewards that are "not applicable" (TRL's None -> NaN) are not supported: every
// callable scores every completion.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/ops/ops.h"

namespace tiller::rl {

enum class ScaleRewards { group, batch, none };
enum class GrpoLossType { grpo, bnpo, dr_grpo, dapo };

ScaleRewards parse_scale_rewards(std::string_view name);   // "group" | "batch" | "none"
GrpoLossType parse_grpo_loss_type(std::string_view name);  // "grpo" | "bnpo" | "dr_grpo" | "dapo"
const char* scale_rewards_name(ScaleRewards scale);
const char* grpo_loss_type_name(GrpoLossType type);

// Σ_f weights[f] * per_function[f][i]: one reward per completion. per_function holds one vector
// per reward function, all of the same length.
std::vector<float> weighted_rewards(const std::vector<std::vector<float>>& per_function,
                                    const std::vector<float>& weights);

// Mean and unbiased standard deviation of v (TRL's torch.std); the std of one value is 0 here
// (torch gives NaN).
double mean_of(const std::vector<float>& v);
double unbiased_std(const std::vector<float>& v);

struct GroupAdvantages {
  std::vector<float> advantages;   // one per completion
  std::vector<float> std_rewards;  // the s used (or, for none, the group's s), per completion
  double reward = 0;               // mean reward (TRL's "reward")
  double reward_std = 0;           // unbiased std over the whole batch (TRL's "reward_std")
  double frac_reward_zero_std = 0;
};

// rewards.size() must be a multiple of num_generations (>= 2).
GroupAdvantages group_advantages(const std::vector<float>& rewards, int64_t num_generations,
                                 ScaleRewards scale_rewards);

struct GrpoLossConfig {
  GrpoLossType loss_type = GrpoLossType::dapo;
  float epsilon = 0.2f;                 // ε_low
  float epsilon_high = 0.f;             // 0: equal to epsilon; DAPO uses 0.28
  float beta = 0.f;                     // KL coefficient; 0 needs no reference log-probs
  int64_t max_completion_length = 256;  // dr_grpo's constant length
};

void validate(const GrpoLossConfig& config);

struct GrpoLossInputs {
  Tensor logp;        // (B, T) policy log-probs of the completion tokens, differentiable
  Tensor old_logp;    // (B, T) or undefined (= logp detached: ρ = 1)
  Tensor ref_logp;    // (B, T); required when beta > 0, ignored otherwise
  Tensor advantages;  // (B)
  Tensor mask;        // (B, T) f32, 1 on completion tokens
  int64_t accumulation_steps = 1;  // k: micro-batches per optimizer step
  int64_t tokens_in_batch = 0;     // dapo: completion tokens over all k micro-batches
};

struct GrpoLoss {
  Tensor loss;          // scalar, differentiable w.r.t. logp
  double kl = 0;        // masked mean of k3 (0 when beta = 0, as TRL logs nothing then)
  double clip_low = 0;  // token fractions over the mask
  double clip_high = 0;
  double clip_region = 0;
  int64_t tokens = 0;  // Σ mask
};

GrpoLoss grpo_loss(const GrpoLossInputs& inputs, const GrpoLossConfig& config);

}  // namespace tiller::rl
