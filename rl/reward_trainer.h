// RewardTrainer: fits a RewardModel (rl/reward.h) to preference pairs.
//
// One step takes batch_size pairs (a seeded shuffle per epoch; the last batch of an epoch may be
// smaller), runs chosen and rejected rows as ONE forward pass of 2B sequences, and minimises
// preference_loss with AdamW under an LR schedule and global-norm clipping (the clip factor is
// folded into the AdamW step, optim/clip.h). A step whose loss or gradient norm is not finite
// throws tiller::Error naming the step: a reward model that diverged is worse than none.
//
// Metrics (names as in TRL's RewardTrainer): loss, accuracy (share of pairs with r_c > r_r; a tie
// counts as wrong), margin (mean r_c - r_r), reward/mean and reward/std over both responses, lr,
// grad_norm; held-out records carry the same names prefixed "eval/". Written to
// <output_dir>/metrics.jsonl as {"stage": "reward", "step": ...} lines.
//
// At the end the reward statistics (mean and std of the rewards of every training response,
// chosen and rejected, in eval mode) are stored in the model, so that the saved model
// (<output_dir>/model, RewardModel::save) lets PPO normalise scores.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "optim/schedule.h"
#include "rl/reward.h"
#include "rl/reward_data.h"

namespace tiller::rl {

struct RewardTrainConfig {
  int64_t epochs = 1;
  int64_t batch_size = 8;  // pairs per step
  int64_t max_length = 0;  // tokens per prompt + response; 0: the backbone's max_seq_len
  // total_steps 0 means epochs * steps per epoch.
  optim::LrSchedule schedule{
      .kind = optim::LrSchedule::Kind::linear, .peak_lr = 1e-5f, .min_lr = 0.f, .warmup_steps = 0};
  float weight_decay = 0.f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float clip_norm = 1.f;           // 0 disables clipping
  float center_coefficient = 0.f;  // λ of the centering term; TRL suggests 0.01
  int64_t eval_every = 0;          // steps between held-out evaluations; 0: after each epoch
  int64_t eval_batch_size = 32;
  int64_t log_every = 10;  // progress line and train record; 0: never print
  std::string output_dir;  // empty: write nothing
  uint64_t seed = 0;       // shuffle order
  bool dropout = false;    // train with the backbone's dropout (off: deterministic)

  void validate() const;  // throws naming the first bad field
};

struct RewardEvaluation {
  double loss = 0.0;      // Bradley-Terry with the pairs' margins, no centering term
  double accuracy = 0.0;  // share of pairs with r_c > r_r
  double margin = 0.0;    // mean r_c - r_r
  double reward_mean = 0.0;
  double reward_std = 0.0;  // population std over both responses
  int64_t pairs = 0;
};

struct RewardTrainSummary {
  int64_t steps = 0;
  RewardEvaluation initial_heldout;  // before the first step (pairs 0 when no held-out set)
  RewardEvaluation final_heldout;
  RewardEvaluation final_train;  // the training pairs after training, in eval mode
  RewardStatistics statistics;   // stored in the model
  int64_t truncated_sequences = 0;
  double seconds = 0.0;
  std::filesystem::path saved_model;  // empty when output_dir is empty
};

class RewardTrainer {
 public:
  // `model` is borrowed and must outlive the trainer. heldout may be empty.
  RewardTrainer(RewardModel& model, RewardTrainConfig config, std::vector<PreferenceExample> train,
                std::vector<PreferenceExample> heldout = {});

  RewardTrainSummary train();
  // Rewards of every pair in eval mode (no dropout, no autograd) and their statistics.
  RewardEvaluation evaluate(const std::vector<PreferenceExample>& pairs);

  int64_t steps_per_epoch() const;
  int64_t total_steps() const { return steps_per_epoch() * config_.epochs; }
  const RewardTrainConfig& config() const { return config_; }

 private:
  RewardModel& model_;
  RewardTrainConfig config_;
  std::vector<PreferenceExample> train_, heldout_;
};

// The statistics of a set of rewards: mean and population std (std 1 when fewer than 2 or all
// equal, so normalising never divides by zero).
RewardStatistics reward_statistics(const std::vector<float>& rewards);

}  // namespace tiller::rl
