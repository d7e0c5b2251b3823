// Pretraining: next-token prediction of a Transformer on token shards, with AdamW, an LR
// schedule, gradient clipping, periodic validation / samples / checkpoints, and exact resume.
//
// One update (step s, 0-based) is:
//   for each of grad_accumulation micro-batches: loss_i = model.loss(batch) / grad_accumulation,
//                                                backward (gradients accumulate);
//   norm = global grad norm; if loss or norm is NaN/Inf -> stop (tiller::Error naming the step)
//                                                         or skip the update (on_nonfinite);
//   AdamW step at lr = schedule.lr(s), with the clip factor folded into the step (no extra pass).
// A skipped update still consumes its batches and counts as a step, so the data order and the LR
// schedule do not shift.
//
// Continued pretraining (init_from, replay_shards) is described at the PretrainConfig fields.
//
// Resume: a checkpoint directory is a Hugging Face model directory (config.json +
// model.safetensors, Transformer::save_pretrained's layout) plus trainer_state.{json,safetensors}
// holding the AdamW moments and step, the trainer step, the dropout generator (seed, offset), the
// loader position and the tokens seen — everything the next update reads. It is written through
// tiller::save_checkpoint (temporary directory, fsync, atomic swap). resume(dir) on a Pretrainer
// built with the same config and shards therefore continues with bit-identical losses on the CPU
// backend (validation and samples run without dropout and use no generator, so they don't
// perturb it).
//
// Output directory layout (nothing is written when output_dir is empty):
//   <out>/metrics.jsonl               {"stage":"pretrain","step":..,"loss":..} and {"val_loss":..};
//                                     data parallel: also "comm_seconds" (rank 0 in collectives)
//   <out>/samples.txt                 greedy continuations, appended
//   <out>/checkpoints/step_<NNNNNN>/  every checkpoint_every steps, the newest keep_checkpoints
//   kept <out>/model/                      the final checkpoint (also resumable, never pruned)
// (rl/kit/run_directory.h). The update itself is rl/kit/optimizer.h's apply_update.
//
// Data parallel: with a communicator of N ranks (config.communicator, e.g.
// dist::communicator_from_environment under mpirun -np N), batch_size stays the GLOBAL batch:
// each rank reads its batch_size / N rows of it (TokenLoader's rank slices), gradients and the
// logged loss are averaged over the ranks in apply_update, so the run trains the same model as
// one process. Every rank evaluates the same validation batches; rank 0 alone prints and writes
// metrics, samples and checkpoints (every rank takes part in a checkpoint: ZeRO-1 gathers the
// optimizer state). The ranks take identical step counts by construction and the same
// non-finite decisions from the averaged values, so they stop together.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/data/loader.h"
#include "core/dist/communicator.h"
#include "core/models/model.h"
#include "core/text/tokenizer.h"
#include "optim/adamw.h"
#include "optim/schedule.h"
#include "rl/kit/optimizer.h"
#include "rl/kit/run_directory.h"
#include "rl/reports/metrics.h"

namespace tiller::rl {

struct PretrainConfig {
  ModelConfig model;
  int64_t batch_size = 8;  // B, sequences per micro-batch over all ranks
  int64_t seq_len = 128;   // T
  int64_t steps = 300;     // optimizer updates
  int64_t grad_accumulation = 1;
  // schedule.total_steps 0 means `steps`.
  OptimizerConfig optimizer{.schedule = {.kind = optim::LrSchedule::Kind::cosine,
                                         .peak_lr = 1e-3f,
                                         .min_lr = 1e-4f,
                                         .warmup_steps = 20},
                            .weight_decay = 0.1f};
  int64_t eval_every = 50;   // 0: only at the start and the end
  int64_t eval_batches = 8;  // validation batches of (B, T), always the same ones
  int64_t sample_every = 0;  // 0: no samples (they also need a tokenizer)
  int64_t sample_tokens = 48;
  std::string sample_prompt;     // empty: start from <|endoftext|>
  int64_t checkpoint_every = 0;  // 0: only the final checkpoint
  int64_t keep_checkpoints = 3;  // periodic checkpoints kept; 0 keeps all
  int64_t log_every = 10;        // progress line and train record; 0: never print
  std::string output_dir;        // empty: write nothing
  uint64_t seed = 0;             // weights, data order (loader) and dropout
  Device device = Device::cpu();
  DType dtype = DType::f32;  // bf16 on CUDA for mixed precision (AdamW keeps f32 masters)
  // Data-parallel ranks (core/dist/communicator.h); null: one process. Not part of the JSON.
  std::shared_ptr<dist::Communicator> communicator;
  // Accelerator peak FLOP/s for the MFU column on CUDA (default: H100/H200 SXM dense bf16).
  double peak_flops = 989e12;
  // Continued pretraining: start from the weights of this tiller or Hugging Face model directory
  // (config.json + model.safetensors) instead of a random init. `model` must describe the same
  // architecture (dropout may differ); a difference is a tiller::Error naming each field. The
  // schedule, warmup, steps and optimizer state are this run's own (AdamW starts fresh).
  std::string init_from;
  // Replay: round(replay_fraction * batch_size) rows of every micro-batch come from these shards
  // (e.g. the original corpus, to limit forgetting), the rest from the training shards; a loader
  // of its own (seed + 1) whose position is checkpointed. 0 = no replay.
  std::vector<std::string> replay_shards;
  double replay_fraction = 0.0;

  int64_t replay_rows() const;  // rows per micro-batch drawn from replay_shards

  int64_t tokens_per_step() const { return batch_size * seq_len * grad_accumulation; }
  void validate() const;  // throws tiller::Error naming the first bad field
};

struct StepReport {
  int64_t step = 0;  // 1-based number of the update just done
  float loss = 0.f;
  float lr = 0.f;
  float grad_norm = 0.f;
  bool skipped = false;  // non-finite loss or gradient, update not applied
};

struct PretrainSummary {
  int64_t steps = 0;             // trainer step at the end
  float initial_val_loss = 0.f;  // the first evaluation of this run (NaN when none ran)
  float final_val_loss = 0.f;
  float final_train_loss = 0.f;
  int64_t skipped_steps = 0;
  double seconds = 0.0;
  std::filesystem::path final_checkpoint;  // empty when output_dir is empty
};

class Pretrainer {
 public:
  // Builds the model (initialised from config.seed) on config.device/dtype, the optimizer and the
  // loaders. `tokenizer` is optional: samples need it. val_shards may be empty (no validation).
  Pretrainer(PretrainConfig config, std::vector<std::string> train_shards,
             std::vector<std::string> val_shards,
             std::optional<Tokenizer> tokenizer = std::nullopt);

  // Loads weights, optimizer, step, dropout generator and loader position from a checkpoint
  // written by save_checkpoint. The model config must match (tiller::Error otherwise).
  void resume(const std::filesystem::path& checkpoint_dir);

  // Trains until step() == config.steps: progress lines, metrics, validation, samples and
  // checkpoints as configured, then a final validation and checkpoint (<out>/model).
  PretrainSummary train();
  // One update (see the header comment). Throws on a non-finite value under stop.
  StepReport train_step();
  // Mean loss over the fixed validation batches, without dropout or autograd.
  float evaluate();
  // Greedy continuation of `prompt` (full forward per token, argmax); needs the tokenizer.
  std::string sample(const std::string& prompt, int64_t new_tokens);
  void save_checkpoint(const std::filesystem::path& dir);

  // Called after the backward of each step with the mean micro-batch loss, before the finiteness
  // checks: lets tests inject a NaN into the loss or a gradient and lets research code inspect
  // gradients.
  using AfterBackward = std::function<void(int64_t step, float& loss, Transformer& model)>;
  void set_after_backward(AfterBackward hook) { after_backward_ = std::move(hook); }

  Transformer& model() { return model_; }
  const PretrainConfig& config() const { return config_; }
  int64_t step() const { return step_; }
  int64_t tokens_seen() const { return tokens_seen_; }
  int64_t skipped_steps() const { return skipped_steps_; }

 private:
  void log_validation(MetricsLog& log, float val_loss);
  optim::LrSchedule schedule_;  // config_.optimizer.schedule resolved for this run
  void write_sample(int64_t step);

  PretrainConfig config_;
  std::vector<std::string> val_shards_;
  std::optional<Tokenizer> tokenizer_;
  Transformer model_;
  std::unique_ptr<optim::AdamW> optimizer_;
  TokenLoader train_loader_;
  std::optional<TokenLoader> replay_loader_;  // when replay_rows() > 0
  int64_t step_ = 0;
  int64_t tokens_seen_ = 0;
  int64_t skipped_steps_ = 0;
  AfterBackward after_backward_;
};

// The config as a JSON object (the model as its Hugging Face config.json object, dtype and device
// as text), and back: keys present in `json_text` override `base`, and an unknown key is an error
// naming it, so a typo never silently trains with a default. Implemented in rl/pretrain_config.cpp.
std::string pretrain_config_to_json(const PretrainConfig& config);
PretrainConfig pretrain_config_from_json(const std::string& json_text, PretrainConfig base = {});

// Model FLOPs per trained token (forward + backward): 6 N + 12 L C T, the PaLM MFU convention.
double flops_per_token(const ModelConfig& model, int64_t seq_len);

}  // namespace tiller::rl
