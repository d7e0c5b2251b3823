// Direct Preference Optimization: the policy learns from (prompt, chosen, rejected) pairs directly,
// with no reward model and no rollouts, against a frozen reference (the starting policy).
// The arithmetic is rl/trainers/dpo_loss.h; semantics, defaults and metric names follow TRL's
// DpoTrainer (1.16), differences are listed there and below.
//
// One update (step s, 0-based) takes the next batch_size * grad_accumulation pairs of the epoch's
// seeded order as grad_accumulation micro-batches. Each micro-batch is ONE forward over 2b rows
// (prompt + chosen, then prompt + rejected; left or right padded, equal results) and contributes
// loss_mean * b / (pairs in the update), so k micro-batches give exactly the gradient of one batch
// holding all their pairs (tested). Then global grad norm, non-finite check, lr = schedule(s),
// clip factor, AdamW.
//
// Reference log-probs come from a frozen deep copy of the starting policy (forward per batch,
// no grad) or, with precompute_ref, from one pass over the train and eval pairs at construction
// after which no reference model is kept (TRL's precompute_ref_log_probs). Both give the same
// losses (tested).
//
// Truncation (TRL 1.16 keeps the START of prompt + completion and cuts the completion's end;
// tiller keeps what matters for a chat policy): when prompt + the longer completion exceeds
// max_length, tokens are dropped from the START of the prompt (at least one prompt token stays);
// a completion still too long is cut at its end. Cut pairs are counted (truncated_pairs()).
//
// Resume: trainer_state holds AdamW, step, epoch and cursor (rl/kit/train_checkpoint.h); the
// reference is rebuilt from the starting policy given to the constructor, so resume with the
// same starting model and data. N straight steps equal k + save + resume + N - k bit-exactly on
// the CPU (tested).
//
// Output directory (nothing is written when output_dir is empty):
//   <out>/metrics.jsonl               {"stage":"dpo","step":..,"loss":..,"rewards/chosen":..,...}
//                                     and eval records with eval_-prefixed names
//   <out>/checkpoints/step_<NNNNNN>/  every checkpoint_every steps (the newest keep_checkpoints)
//   <out>/model/                      the final policy (+ tokenizer.json when known)
//
// Data parallel (config.communicator with N ranks, e.g. under mpirun -np N): batch_size stays the
// GLOBAL pairs per micro-batch; every rank walks the same order and keeps pairs
// [r B/N, (r+1) B/N) of each micro-batch, weighting its mean loss by its share of the update's
// pairs over all ranks (times N, which apply_update's average divides out), so the update is the
// single-process one; the metrics are pair-weighted over the ranks. Rank 0 alone prints and writes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dist/communicator.h"
#include "core/models/model.h"
#include "core/text/tokenizer.h"
#include "optim/adamw.h"
#include "optim/schedule.h"
#include "rl/data/reward_data.h"
#include "rl/kit/optimizer.h"
#include "rl/reports/metrics.h"
#include "rl/trainers/dpo_loss.h"

namespace tiller::rl {

// TRL's DPOConfig / TrainingArguments optimizer defaults.
OptimizerConfig dpo_trainer_optimizer();

struct DpoConfig {
  int64_t epochs = 1;
  int64_t batch_size = 4;  // pairs per micro-batch
  int64_t grad_accumulation = 1;
  int64_t max_length = 0;  // prompt + completion tokens; 0: the model's max_seq_len
  DpoLossConfig loss;      // loss_type sigmoid, beta 0.1 (TRL's defaults)
  bool precompute_ref = false;
  PaddingSide padding = PaddingSide::right;
  // TRL's defaults (dpo_trainer_optimizer()): lr 1e-6, linear decay, no warmup, AdamW
  // (0.9, 0.999), no weight decay, max_grad_norm 1. schedule.total_steps 0 means
  // epochs * steps_per_epoch; a warmup longer than the run is clamped (rl/kit/optimizer.h).
  OptimizerConfig optimizer = dpo_trainer_optimizer();
  int64_t eval_every = 0;        // steps; 0: only at the start and the end
  int64_t log_every = 10;        // progress line; 0: never print (records are always written)
  int64_t checkpoint_every = 0;  // 0: only the final model
  int64_t keep_checkpoints =
      3;                   // newest step_* folders kept; 0: all (the final model never pruned)
  std::string output_dir;  // empty: write nothing
  uint64_t seed = 0;       // pair order
  Device device = Device::cpu();
  // Data-parallel ranks (core/dist/communicator.h); null: one process.
  std::shared_ptr<dist::Communicator> communicator;

  void validate() const;  // throws tiller::Error naming the first bad field
};

struct DpoStepReport {
  int64_t step = 0;  // 1-based number of the update just done
  int64_t epoch = 0;
  DpoMetrics metrics;
  float lr = 0.f;
  float grad_norm = 0.f;
  bool skipped = false;  // non-finite loss or gradient under NonFinitePolicy::skip
  int64_t tokens = 0;    // real tokens in the update's forwards
};

struct DpoSummary {
  int64_t steps = 0;
  DpoMetrics initial_eval, final_eval;  // pairs == 0 without an eval set (initial: or resumed)
  DpoMetrics final_train;
  double seconds = 0.0;
  std::filesystem::path final_model;  // empty when output_dir is empty
};

class DpoTrainer {
 public:
  // Takes the starting policy (moved to config.device; the reference is a deep copy of it, or its
  // precomputed log-probs). `eval` may be empty. `tokenizer` is saved beside checkpoints.
  DpoTrainer(DpoConfig config, Transformer policy, std::vector<PreferenceExample> train,
             std::vector<PreferenceExample> eval = {},
             std::optional<Tokenizer> tokenizer = std::nullopt);
  ~DpoTrainer();

  void resume(const std::filesystem::path& checkpoint_dir);
  DpoSummary train();
  DpoStepReport train_step();
  DpoMetrics evaluate();  // over the eval pairs; pairs == 0 when there are none
  // Backward of the mean loss over all the pairs of `micro_batches` (training-pair indices), one
  // forward per micro-batch; gradients accumulate (+=) into the policy. train_step's core.
  // Data parallel: `total_pairs` is the update's pair count over all ranks (0: these pairs).
  DpoMetrics accumulate_gradients(const std::vector<std::vector<int64_t>>& micro_batches,
                                  int64_t* tokens = nullptr, int64_t total_pairs = 0);
  void save_checkpoint(const std::filesystem::path& dir);

  Transformer& policy() { return policy_; }
  bool has_reference_model() const { return reference_ != nullptr; }
  int64_t step() const { return step_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t total_steps() const { return schedule_.total_steps; }
  int64_t truncated_pairs() const { return truncated_pairs_; }

 private:
  struct RefLogps {
    std::vector<float> chosen, rejected;
  };
  struct PairSet;  // examples + their precomputed reference log-probs
  DpoMetrics run_batch(const std::vector<PreferenceExample>& examples,
                       const std::vector<int64_t>& indices, const RefLogps* precomputed,
                       double weight, bool backward, int64_t* tokens);
  RefLogps precompute(const std::vector<PreferenceExample>& examples);

  DpoConfig config_;
  Transformer policy_;
  std::unique_ptr<Transformer> reference_;  // null with precompute_ref
  std::vector<PreferenceExample> train_, eval_;
  RefLogps train_ref_, eval_ref_;
  std::optional<Tokenizer> tokenizer_;
  std::unique_ptr<optim::AdamW> optimizer_;
  optim::LrSchedule schedule_;  // config_.optimizer.schedule resolved for this run
  int64_t steps_per_epoch_ = 0;
  int64_t truncated_pairs_ = 0;
  int64_t step_ = 0, epoch_ = 0, cursor_ = 0;
  std::vector<int64_t> order_;
};

// Cuts a pair to max_length tokens (see the header comment); returns true when anything was cut.
bool truncate_preference(PreferenceExample& example, int64_t max_length);

}  // namespace tiller::rl
