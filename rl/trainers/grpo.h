// Group Relative Policy Optimization: for each prompt, num_generations completions are sampled;
// their rewards, centred (and scaled) within the prompt's group, are the advantages of a clipped
// policy-gradient loss. No value model; a reference model only when beta > 0. The arithmetic is
// rl/trainers/grpo_math.h; semantics, defaults and metric names follow TRL's GRPOTrainer (1.16).
//
// One step:
//   1. prompts_per_step prompts, drawn without replacement from a seeded order (reshuffled after
//      each pass), each repeated num_generations times and completed by rl::generate (KV cache)
//      at `temperature`, stopping after end_token or max_completion_length tokens; sampling is
//      seeded by (seed, step), so a resumed run samples what the straight run would have;
//   2. every reward function scores every completion; rewards = Σ weight_f · reward_f;
//      advantages per group (scale_rewards group | batch | none);
//   3. with beta > 0, reference log-probs (frozen copy of the starting policy); with
//      num_iterations > 1, the generating policy's log-probs ("old");
//   4. num_iterations optimizer steps on this generation batch, each accumulating the loss over
//      micro-batches of micro_batch_size completions (loss_type normalisation, dapo default).
// TRL's layout differs in bookkeeping only: there a generation batch feeds steps_per_generation
// optimizer steps (default: one accumulated step, as here).
//
// Log-probs are taken under softmax(logits / temperature), the sampler's distribution (TRL does
// the same). Completions that never emitted end_token count in completions/clipped_ratio; TRL's
// mask_truncated_completions (off by default) is not implemented.
//
// Metrics per step (TRL's names): reward, reward_std, rewards/<name>/mean, rewards/<name>/std,
// frac_reward_zero_std, kl (beta > 0), entropy, clip_ratio/low_mean, clip_ratio/high_mean,
// clip_ratio/region_mean, completions/mean_length, completions/clipped_ratio, loss, lr,
// grad_norm, plus generation_seconds and training_seconds (generation dominates GRPO).
//
// Resume: trainer_state holds AdamW, step and the prompt cursor; the reference is rebuilt from the
// starting policy given to the constructor. N straight steps equal k + save + resume + N - k
// bit-exactly on the CPU (tested).
//
// Output directory (nothing is written when output_dir is empty):
//   <out>/metrics.jsonl, <out>/checkpoints/step_<NNNNNN>/ (newest keep_checkpoints),
//   <out>/model/ (final policy, + tokenizer.json when known)
//
// Single process for now: generation dominates GRPO and its groups are not split over ranks, so
// there is no data-parallel path (pretraining and SFT have one; see core/dist/communicator.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/models/model.h"
#include "core/text/tokenizer.h"
#include "optim/adamw.h"
#include "optim/schedule.h"
#include "rl/kit/optimizer.h"
#include "rl/reports/metrics.h"
#include "rl/trainers/grpo_math.h"
#include "rl/trainers/ppo.h"

namespace tiller::rl {

// A named reward function with its weight (TRL's reward_funcs + reward_weights). BatchReward
// (rl/trainers/ppo.h) is the form of C++ callables, verifiable scorers and reward models alike.
struct GrpoReward {
  std::string name;
  BatchReward function;
  float weight = 1.f;
};

// TRL's GRPOConfig / TrainingArguments optimizer defaults.
OptimizerConfig grpo_trainer_optimizer();

struct GrpoConfig {
  int64_t steps = 100;
  int64_t prompts_per_step = 4;
  int64_t num_generations = 8;   // TRL's default
  int64_t micro_batch_size = 8;  // completions per forward/backward
  int64_t num_iterations = 1;    // optimizer steps per generation batch (TRL's μ)
  int64_t max_completion_length = 64;
  float temperature = 1.f;  // TRL's default
  int32_t end_token = -1;   // required: ends a completion
  ScaleRewards scale_rewards = ScaleRewards::group;
  GrpoLossConfig loss;  // dapo, ε 0.2, β 0 (TRL's defaults)
  // TRL's defaults (grpo_trainer_optimizer()): lr 1e-6, linear decay, AdamW (0.9, 0.999), no
  // weight decay, max_grad_norm 1. schedule.total_steps 0 means steps * num_iterations.
  OptimizerConfig optimizer = grpo_trainer_optimizer();
  int64_t log_every = 1;
  int64_t checkpoint_every = 0;
  int64_t keep_checkpoints = 3;
  std::string output_dir;
  uint64_t seed = 0;
  Device device = Device::cpu();

  void validate() const;
};

struct GrpoStepReport {
  int64_t step = 0;  // 1-based
  Metrics metrics;   // TRL's names (see the header comment)
  double reward = 0;
};

class GrpoTrainer {
 public:
  GrpoTrainer(GrpoConfig config, Transformer policy, std::vector<GrpoReward> rewards,
              std::vector<std::vector<int32_t>> prompts,
              std::optional<Tokenizer> tokenizer = std::nullopt);
  ~GrpoTrainer();

  void resume(const std::filesystem::path& checkpoint_dir);
  GrpoStepReport train_step();
  std::vector<GrpoStepReport> train();  // until step() == config.steps, then <out>/model
  void save_checkpoint(const std::filesystem::path& dir);

  Transformer& policy() { return policy_; }
  bool has_reference_model() const { return reference_ != nullptr; }
  int64_t step() const { return step_; }

 private:
  std::vector<size_t> next_prompts();

  GrpoConfig config_;
  Transformer policy_;
  std::unique_ptr<Transformer> reference_;  // only when loss.beta > 0
  std::vector<GrpoReward> rewards_;
  std::vector<std::vector<int32_t>> prompts_;
  std::optional<Tokenizer> tokenizer_;
  std::unique_ptr<optim::AdamW> optimizer_;
  optim::LrSchedule schedule_;  // config_.optimizer.schedule resolved for this run
  int64_t step_ = 0, updates_ = 0, epoch_ = 0, cursor_ = 0;
  std::vector<int64_t> order_;
};

}  // namespace tiller::rl
