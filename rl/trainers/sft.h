// Supervised fine-tuning: imitation of chat responses, loss only on assistant tokens.
//
// One update (step s, 0-based) takes the next batch_size * grad_accumulation rows of the epoch's
// seeded order (the epoch's last update may take fewer) as grad_accumulation micro-batches and
//   loss = (sum over all micro-batches of every trainable token's cross entropy)
//          / (trainable tokens over all micro-batches),
// the mean over TOKENS, not the mean of micro-batch means: a micro-batch of short answers weighs
// what its tokens weigh, and k micro-batches give exactly the gradient of one batch holding all
// their rows (accumulate_sft_gradients). Then rl/kit/optimizer.h's apply_update: global grad norm,
// non-finite policy (stop with a tiller::Error naming the step, or skip), AdamW at
// lr = schedule.lr(s) with the clip factor folded in.
//
// Rows (rl/sft_data.h plan_rows) are planned once — packed rows keep their examples together
// across epochs — and each epoch visits them in random::epoch_order(rows, seed, epoch).
//
// Resume: a checkpoint is a Hugging Face model directory plus trainer_state.{json,safetensors}
// (AdamW state, step, epoch and cursor, dropout generator), written atomically through
// tiller::save_checkpoint. resume(dir) on a trainer built with the same config and data continues
// with the same updates (bit-identical on the CPU backend).
//
// Output directory layout (nothing is written when output_dir is empty):
//   <out>/metrics.jsonl               {"stage":"sft","step":..,"loss":..,"accuracy":..} and
//                                     {"eval_loss":..,"eval_accuracy":..} records
//   <out>/checkpoints/step_<NNNNNN>/  every checkpoint_every steps, the newest keep_checkpoints kept
//   <out>/model/                      the final checkpoint (with tokenizer.json when known)
//
// Replay (InstructGPT's "ptx" mix, here in SFT): with replay_rows > 0 every update also takes
// replay_rows windows of replay_seq_len tokens from replay_shards (pretraining token shards, e.g.
// <pretrain>/data/train.bin) and minimises
//   loss + replay_coef * (mean next-token cross entropy over the replay windows),
// so that the model keeps what pretraining taught while it learns the chat format. The windows
// come from a TokenLoader of their own (seed + 1) whose position is checkpointed; each rank reads
// replay_rows / N of them. The replay loss (metric "replay_loss", rank 0's windows) is read back
// only on progress-line steps, every 10th when there are none; the other steps leave it on the
// device.
//
// Data parallel (config.communicator with N ranks, e.g. under mpirun -np N): batch_size stays the
// GLOBAL rows per micro-batch. Every rank plans the same rows and order; rank r collates rows
// [r B/N, (r+1) B/N) of each micro-batch. The token normaliser is the trainable tokens over all
// ranks (one all-reduce before the backward), each rank scales its token-loss sum by N / that, and
// apply_update's average then gives exactly the single-process objective; loss and accuracy are
// reported over all ranks. Rank 0 alone prints and writes; the ranks share the step count, so
// they stop together at the end of the data.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
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
#include "rl/data/sft_data.h"

namespace tiller::rl {

struct SftConfig {
  int64_t epochs = 3;
  int64_t batch_size = 8;  // rows per micro-batch
  int64_t grad_accumulation = 1;
  bool pack = false;  // several examples per row (the data's max_length is the row length)
  // schedule.total_steps 0 means epochs * steps_per_epoch; a warmup longer than the run is
  // clamped (rl/kit/optimizer.h).
  OptimizerConfig optimizer;
  int64_t eval_every = 0;        // steps; 0: only at the start and the end
  int64_t log_every = 10;        // progress line; 0: never print (records are always written)
  int64_t checkpoint_every = 0;  // 0: only the final checkpoint
  int64_t keep_checkpoints = 3;  // periodic checkpoints kept; 0 keeps all
  std::string output_dir;        // empty: write nothing
  uint64_t seed = 0;             // row order, packing and dropout
  Device device = Device::cpu();
  DType dtype = DType::f32;  // bf16 on CUDA for mixed precision
  // Data-parallel ranks (core/dist/communicator.h); null: one process.
  std::shared_ptr<dist::Communicator> communicator;
  // Replay (see the header comment); replay_rows 0: none.
  std::vector<std::string> replay_shards;
  int64_t replay_rows = 0;       // global windows per update; a multiple of the ranks
  int64_t replay_seq_len = 0;    // tokens per window; 0: the model's max_seq_len
  float replay_coef = 1.f;       // weight of the replay loss

  void validate() const;  // throws tiller::Error naming the first bad field
};

// Sum of the cross entropies of the trainable tokens of one batch, and how many of those tokens
// the model's argmax already predicts.
struct TokenLossSum {
  Tensor loss_sum;  // () f32, differentiable
  int64_t tokens = 0;
  Tensor correct;  // () f32 on the model's device: trainable tokens the argmax hits (no gradient)
};
TokenLossSum sft_token_losses(Transformer& model, const SftBatch& batch, bool training = false);

struct AccumulatedLoss {
  float loss = 0.f;      // mean token loss over every micro-batch
  float accuracy = 0.f;  // argmax hits / trainable tokens
  int64_t trainable_tokens = 0;
  int64_t input_tokens = 0;
};
// Backward of sum(token losses) / sum(trainable tokens) over all micro-batches; gradients
// accumulate (+=) into the parameters as usual. Throws when no micro-batch has a trainable token.
// With a communicator of N ranks the sums run over every rank's micro-batches and each rank's
// gradient is N times its share, so the ranks' average is the whole objective's gradient; the
// returned loss and accuracy are then this rank's share times N (average them over the ranks).
AccumulatedLoss accumulate_sft_gradients(Transformer& model, std::span<const SftBatch> batches,
                                         bool training = false,
                                         dist::Communicator* communicator = nullptr);

struct SftStepReport {
  int64_t step = 0;   // 1-based number of the update just done
  int64_t epoch = 0;  // epoch the update's rows came from
  float loss = 0.f;
  float accuracy = 0.f;
  float lr = 0.f;
  float grad_norm = 0.f;
  bool skipped = false;  // non-finite loss or gradient under NonFinitePolicy::skip
  Tensor replay_loss;    // () this rank's replay loss, on the device; undefined without replay
  int64_t trainable_tokens = 0;
  int64_t input_tokens = 0;
};

struct SftEvalResult {
  float loss = 0.f;  // token-weighted mean over the held-out set (NaN without one)
  float accuracy = 0.f;
  int64_t tokens = 0;
};

struct SftSummary {
  int64_t steps = 0;
  SftEvalResult initial_eval;
  SftEvalResult final_eval;
  float final_train_loss = 0.f;
  double seconds = 0.0;
  std::filesystem::path final_checkpoint;  // empty when output_dir is empty
};

class SftTrainer {
 public:
  // Takes the model (moved to config.device / dtype here; build nothing over its parameters
  // before). `eval` may be empty (no eval loss). `tokenizer` is saved beside checkpoints.
  SftTrainer(SftConfig config, Transformer model, SftDataset train,
             std::optional<SftDataset> eval = std::nullopt,
             std::optional<Tokenizer> tokenizer = std::nullopt);

  // Loads weights, optimizer, step, data position and dropout generator. The model config, row
  // count and batch shape must match this trainer's (tiller::Error otherwise).
  void resume(const std::filesystem::path& checkpoint_dir);

  // Trains until step() == total_steps(), then a final eval and checkpoint (<out>/model).
  SftSummary train();
  SftStepReport train_step();
  SftEvalResult evaluate();
  void save_checkpoint(const std::filesystem::path& dir);

  Transformer& model() { return model_; }
  const SftConfig& config() const { return config_; }
  int64_t step() const { return step_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t total_steps() const { return config_.epochs * steps_per_epoch_; }
  int64_t rows() const { return static_cast<int64_t>(rows_.size()); }

 private:
  void log_eval(MetricsLog& log, const SftEvalResult& result);

  SftConfig config_;
  Transformer model_;
  SftDataset train_;
  std::optional<SftDataset> eval_;
  std::optional<Tokenizer> tokenizer_;
  std::vector<SftRow> rows_;
  int64_t steps_per_epoch_ = 0;
  optim::LrSchedule schedule_;  // config_.optimizer.schedule resolved for this run
  std::unique_ptr<optim::AdamW> optimizer_;
  int64_t step_ = 0;
  int64_t epoch_ = 0;
  int64_t cursor_ = 0;          // rows of epoch_ already consumed
  std::vector<int64_t> order_;  // random::epoch_order for epoch_
  std::optional<TokenLoader> replay_loader_;  // when config_.replay_rows > 0
};

}  // namespace tiller::rl
