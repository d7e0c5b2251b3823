// RewardTrainer: fits a RewardModel (rl/reward.h) to preference pairs.
//
// One step takes batch_size pairs (a seeded shuffle per epoch; the last batch of an epoch may be
// smaller), runs chosen and rejected rows as ONE forward pass of 2B sequences, and minimises
// preference_loss through the kit's apply_update (rl/kit/optimizer.h: LR schedule, global-norm
// clipping folded into AdamW, and the non-finite policy — stop by default: a reward model that
// diverged is worse than none). Periodic checkpoints resume bit-exactly (resume()).
//
// Metrics (names as in TRL's RewardTrainer): loss, accuracy (share of pairs with r_c > r_r; a tie
// counts as wrong), margin (mean r_c - r_r), reward/mean and reward/std over both responses, lr,
// grad_norm; held-out records carry the same names prefixed "eval/". Written to
// <output_dir>/metrics.jsonl as {"stage": "reward", "step": ...} lines.
//
// At the end the reward statistics (mean and std of the rewards of every training response,
// chosen and rejected, in eval mode) are stored in the model, so that the saved model
// (<output_dir>/model, RewardModel::save) lets PPO normalise scores.
//
// Data parallel (config.communicator with N ranks, e.g. under mpirun -np N): batch_size stays the
// GLOBAL pairs per step; every rank walks the same order and scores pairs [r B/N, (r+1) B/N) of
// each batch, weighting its mean loss by its share of the batch's pairs (times N, which
// apply_update's average divides out), so the update is the single-process one; the batch's
// rewards are gathered so its metrics are those of the whole batch. Rank 0 alone prints and
// writes (metrics, checkpoints, the model); every rank computes the final statistics.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/dist/communicator.h"
#include "optim/adamw.h"
#include "optim/schedule.h"
#include "rl/kit/optimizer.h"
#include "rl/kit/run_directory.h"
#include "rl/heads/reward.h"
#include "rl/data/reward_data.h"

namespace tiller::rl {

struct RewardConfig {
  int64_t epochs = 1;
  int64_t batch_size = 8;  // pairs per step
  int64_t max_length = 0;  // tokens per prompt + response; 0: the backbone's max_seq_len
  // schedule.total_steps 0 means epochs * steps per epoch.
  OptimizerConfig optimizer{.schedule = {.kind = optim::LrSchedule::Kind::linear,
                                         .peak_lr = 1e-5f,
                                         .min_lr = 0.f,
                                         .warmup_steps = 0},
                            .weight_decay = 0.f,
                            .beta1 = 0.9f,
                            .beta2 = 0.999f};
  float center_coefficient = 0.f;  // λ of the centering term; TRL suggests 0.01
  int64_t eval_every = 0;          // steps between held-out evaluations; 0: after each epoch
  int64_t eval_batch_size = 32;
  int64_t log_every = 10;         // progress line and train record; 0: never print
  int64_t checkpoint_every = 0;   // 0: no periodic checkpoints
  int64_t keep_checkpoints = 3;   // periodic checkpoints kept; 0 keeps all
  std::string output_dir;         // empty: write nothing
  uint64_t seed = 0;              // shuffle order
  bool dropout = false;           // train with the backbone's dropout (off: deterministic)
  // Data-parallel ranks (core/dist/communicator.h); null: one process.
  std::shared_ptr<dist::Communicator> communicator;

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

struct RewardStepReport {
  int64_t step = 0;  // 1-based number of the update just done
  int64_t epoch = 0;
  float loss = 0.f;
  float lr = 0.f;
  float grad_norm = 0.f;
  bool skipped = false;
  RewardEvaluation batch;  // the step's pairs, from the training forward (dropout as configured)
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
  RewardTrainer(RewardModel& model, RewardConfig config, std::vector<PreferenceExample> train,
                std::vector<PreferenceExample> heldout = {});
  ~RewardTrainer();

  // Trains until step() == total_steps(), then computes the reward statistics, stores them in
  // the model and saves it to <out>/model.
  RewardTrainSummary train();
  // One update on the next batch_size pairs of the epoch's seeded order.
  RewardStepReport train_step();
  // Rewards of every pair in eval mode (no dropout, no autograd) and their statistics.
  RewardEvaluation evaluate(const std::vector<PreferenceExample>& pairs);

  // A resumable checkpoint: the backbone as a Hugging Face directory, the head, AdamW state,
  // step, epoch and cursor (rl/kit/train_checkpoint.h). resume() continues bit-exactly.
  void save_checkpoint(const std::filesystem::path& dir);
  void resume(const std::filesystem::path& dir);

  int64_t step() const { return step_; }
  int64_t steps_per_epoch() const;
  int64_t total_steps() const { return steps_per_epoch() * config_.epochs; }
  const RewardConfig& config() const { return config_; }

 private:
  ParameterList head_parameters() const;

  RewardModel& model_;
  RewardConfig config_;
  std::vector<PreferenceExample> train_, heldout_;
  optim::LrSchedule schedule_;
  std::unique_ptr<optim::AdamW> optimizer_;
  int64_t step_ = 0;
  int64_t epoch_ = 0;
  int64_t cursor_ = 0;          // pairs of epoch_ already consumed
  std::vector<int64_t> order_;  // random::epoch_order for epoch_
  int64_t truncated_sequences_ = 0;
};

// The statistics of a set of rewards: mean and population std (std 1 when fewer than 2 or all
// equal, so normalising never divides by zero).
RewardStatistics reward_statistics(const std::vector<float>& rewards);

}  // namespace tiller::rl
