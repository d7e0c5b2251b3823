// RLHF with PPO: optimise a policy against a reward while a KL penalty keeps it close to a frozen
// reference copy. Semantics follow TRL's PPO trainer and "The N Implementation Details of RLHF
// with PPO"; the arithmetic lives in rl/ppo_math.h, generation in rl/generate.h.
//
// Four models: the policy (trained), the reference (a frozen deep copy of the policy taken at
// construction), the reward (a reward model wrapped as a BatchReward, or any C++ callable — a
// verifiable reward), and the value model (rl/value_model.h; trained alongside the policy with
// its own AdamW). Every forward runs with ForwardOptions::training = false: dropout is off
// everywhere, so the rollout's log-probs are exactly what the first PPO pass recomputes.
//
// One iteration:
//   1. rollout_batch_size prompts, drawn without replacement from a seeded shuffle (reshuffled
//      after each pass over the prompt set), are completed by rl::generate at `temperature`,
//      stopping after the first end token (or max_new_tokens);
//   2. the reward scores prompt + response (the end token included when emitted); a response that
//      never emitted the end token loses missing_end_penalty (TRL's missing_eos_penalty);
//      optionally the scores are whitened over the batch;
//   3. policy and reference log-probs (a forward over prompt + response with logits divided by the
//      temperature, the sampler's distribution) and the critic's values at each response token;
//   4. per-token KL (k1 or k3), shaped rewards -kl_coef * KL plus the score at the last response
//      token, optional reward whitening, GAE(gamma, lambda), advantages whitened over the batch;
//   5. ppo_epochs passes over the rollouts in shuffled minibatches; each minibatch is one
//      optimizer step of both models, its gradients accumulated over micro-batches:
//      loss = clipped policy loss + vf_coef * clipped value loss;
//   6. the adaptive KL controller (when kl_target > 0) sees the batch's mean sequence KL.
//
// Sequence layout inside the trainer (and rl::generate's): prompts LEFT-padded to the batch's
// longest prompt P, responses RIGHT-padded to the longest response R; the key-padding mask hides
// both paddings and positions count real tokens, so padding never changes a log-prob. Column
// P - 1 + t holds the logits (and the value) that predict response token t.
//
// Output directory (nothing is written when output_dir is empty; rl/kit/run_directory.h):
//   <out>/metrics.jsonl                   one {"stage":"ppo","step":iteration,...} per iteration
//   <out>/checkpoints/step_<NNNNNN>/      every checkpoint_every iterations, the newest
//                                         keep_checkpoints kept
//   <out>/policy/                         the final checkpoint
// Every checkpoint is the policy as a Hugging Face directory (+ tokenizer.json when known) plus
// trainer state: both optimizers, the critic, the frozen reference, the KL coefficient, the
// iteration and the prompt cursor, so resume() continues bit-exactly (rollout sampling seeds and
// shuffles are functions of the seed and the iteration).
//
// Single process for now: generation dominates PPO and its rollouts are not split over ranks, so
// there is no data-parallel path (pretraining and SFT have one; see core/dist/communicator.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/models/model.h"
#include "core/text/tokenizer.h"
#include "optim/adamw.h"
#include "rl/kit/optimizer.h"
#include "rl/kit/run_directory.h"
#include "rl/reports/metrics.h"
#include "rl/trainers/ppo_math.h"
#include "rl/heads/value_model.h"

namespace tiller::rl {

// A verifiable reward on one example: prompt tokens and response tokens (ending with the end
// token when the response ended) -> score.
using TokenReward =
    std::function<float(const std::vector<int32_t>& prompt, const std::vector<int32_t>& response)>;
// The same on text: the decoded prompt and the decoded response (special tokens included).
using TextReward = std::function<float(const std::string& prompt, const std::string& response)>;
// A batch scorer, the form a reward model takes: one score per (prompt, response) pair.
using BatchReward =
    std::function<std::vector<float>(const std::vector<std::vector<int32_t>>& prompts,
                                     const std::vector<std::vector<int32_t>>& responses)>;

BatchReward batch_reward(TokenReward reward);
BatchReward batch_reward(const Tokenizer& tokenizer, TextReward reward);  // copies the tokenizer

struct PpoConfig {
  int64_t iterations = 100;
  int64_t rollout_batch_size = 16;  // prompts completed per iteration
  int64_t minibatch_size = 8;       // rollouts per optimizer step; divides rollout_batch_size
  int64_t micro_batch_size = 4;     // rollouts per forward/backward; divides minibatch_size
  int64_t ppo_epochs = 4;

  // Rollouts.
  int64_t max_new_tokens = 32;
  float temperature = 0.7f;         // > 0; log-probs are taken at this temperature
  int32_t end_token = -1;           // required: ends a response (e.g. <|end|>)
  float missing_end_penalty = 1.f;  // subtracted from the score of a response that never ended

  // Rewards and advantages.
  KLEstimator kl_estimator = KLEstimator::k1;
  float kl_coef = 0.05f;
  float kl_target = 0.f;  // > 0: adaptive coefficient towards this mean sequence KL
  float kl_horizon = 10000.f;
  bool whiten_scores = false;   // standardise the scores over each rollout batch
  bool whiten_rewards = false;  // TRL's whiten_rewards: shaped rewards, mean kept
  float gamma = 1.f;
  float lambda = 0.95f;

  // Losses and optimisation.
  float clip_range = 0.2f;
  float value_clip_range = 0.2f;
  float vf_coef = 0.1f;
  // One optimizer per model, each with its own clipping; the schedule counts optimizer updates
  // (iterations * ppo_epochs * rollout_batch_size / minibatch_size of them; total_steps 0 means
  // all of them). A non-finite loss or norm stops the run, or skips the update of that model.
  OptimizerConfig policy_optimizer{.schedule = {.kind = optim::LrSchedule::Kind::constant,
                                                .peak_lr = 1e-5f},
                                   .beta1 = 0.9f,
                                   .beta2 = 0.999f};
  OptimizerConfig value_optimizer{.schedule = {.kind = optim::LrSchedule::Kind::constant,
                                               .peak_lr = 1e-5f},
                                  .beta1 = 0.9f,
                                  .beta2 = 0.999f};

  int64_t log_every = 1;         // progress line; 0: never print
  int64_t checkpoint_every = 0;  // iterations; 0: only the final policy
  int64_t keep_checkpoints = 3;  // periodic checkpoints kept; 0 keeps all
  std::string output_dir = {};   // empty: write nothing
  uint64_t seed = 0;             // prompt order, sampling and the optimizers' rounding

  int64_t updates_per_iteration() const {
    return ppo_epochs * (rollout_batch_size / minibatch_size);
  }

  void validate() const;  // throws tiller::Error naming the first bad field
};

// One batch of experience. (N, R) tensors live on the CPU; mask is 1 on response tokens (the end
// token included) and 0 on right padding. Log-probs and KL are 0 on padding.
struct Rollout {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<int32_t>> responses;
  std::vector<bool> ended;        // the response emitted the end token
  std::vector<float> raw_scores;  // the reward's output
  std::vector<float> scores;      // after the missing-end penalty and optional whitening
  int64_t prompt_columns = 0;     // P
  int64_t response_columns = 0;   // R
  Tensor mask;
  Tensor sampler_logprobs;  // as reported by rl::generate
  Tensor logprobs;          // recomputed by a forward pass of the policy
  Tensor ref_logprobs;
  Tensor values;
  Tensor kl;
  Tensor rewards;  // shaped
  Tensor advantages;
  Tensor returns;
  int64_t generated_tokens = 0;
  double generation_seconds = 0.0;
};

class PpoTrainer {
 public:
  // The reference is a deep copy of `policy`. `prompts` are token sequences ready for sampling
  // (e.g. chat generation prompts). The value model is trained in place.
  PpoTrainer(PpoConfig config, Transformer policy, ValueModel value, BatchReward reward,
             std::vector<std::vector<int32_t>> prompts);
  // A critic initialised from the policy's backbone with a fresh head.
  PpoTrainer(PpoConfig config, Transformer policy, BatchReward reward,
             std::vector<std::vector<int32_t>> prompts);
  ~PpoTrainer();

  // Written next to every saved policy so the checkpoint is usable on its own.
  void set_tokenizer(Tokenizer tokenizer) { tokenizer_ = std::move(tokenizer); }

  // Runs config.iterations iterations with logging and checkpoints; returns the last metrics.
  Metrics train();
  // One iteration (steps 1-6 above); returns its metrics.
  Metrics train_iteration();
  // Steps 1-4 only, without touching any weight: the experience the next iteration would use.
  Rollout collect_rollout();

  // The policy as a Hugging Face directory (+ tokenizer.json when set).
  void save_policy(const std::filesystem::path& dir) const;
  // A resumable checkpoint (see the header comment) and its loader.
  void save_checkpoint(const std::filesystem::path& dir);
  void resume(const std::filesystem::path& dir);

  Transformer& policy() { return policy_; }
  Transformer& reference() { return reference_; }
  ValueModel& value_model() { return value_; }
  const PpoConfig& config() const { return config_; }
  float kl_coef() const { return kl_controller_.value(); }
  int64_t iteration() const { return iteration_; }

 private:
  struct TrainingStats;
  std::vector<size_t> next_prompt_indices();
  void compute_advantages(Rollout& rollout) const;
  void optimise(const Rollout& rollout, TrainingStats& stats);

  PpoConfig config_;
  Transformer policy_;
  Transformer reference_;
  ValueModel value_;
  BatchReward reward_;
  std::vector<std::vector<int32_t>> prompts_;
  std::optional<Tokenizer> tokenizer_;
  std::unique_ptr<optim::AdamW> policy_optimizer_;
  std::unique_ptr<optim::AdamW> value_optimizer_;
  optim::LrSchedule policy_schedule_, value_schedule_;  // resolved for this run
  KLController kl_controller_;
  std::vector<int64_t> prompt_order_;  // random::epoch_order(prompts, seed, prompt_pass_)
  int64_t prompt_pass_ = 0;
  int64_t prompt_cursor_ = 0;
  int64_t iteration_ = 0;
  int64_t updates_ = 0;  // optimizer updates so far: the schedules' step
};

}  // namespace tiller::rl
