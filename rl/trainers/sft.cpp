// The SFT loop, its token-normalised gradient accumulation, checkpoints and resume (rl/sft.h).
//
// Exact resume rests on the same facts as pretraining's: everything an update reads is in the
// checkpoint (weights, AdamW state, epoch + cursor, dropout generator) or a pure function of the
// step and seed (learning rate, row plan, epoch order), and evaluation draws no random numbers.
#include "rl/trainers/sft.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>

#include "core/io/atomic_file.h"
#include "core/io/checkpoint.h"
#include "core/ops/ops.h"
#include "kernels/error.h"
#include "kernels/random.h"
#include "rl/kit/progress.h"
#include "rl/kit/rank_dropout.h"
#include "rl/kit/run_directory.h"
#include "rl/kit/train_checkpoint.h"

namespace tiller::rl {

namespace {

using Clock = std::chrono::steady_clock;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

}  // namespace

void SftConfig::validate() const {
  TILLER_CHECK(epochs >= 0, "sft: epochs must be >= 0, got {}", epochs);
  TILLER_CHECK(batch_size > 0, "sft: batch_size must be positive, got {}", batch_size);
  TILLER_CHECK(grad_accumulation > 0, "sft: grad_accumulation must be positive, got {}",
               grad_accumulation);
  TILLER_CHECK(eval_every >= 0 && log_every >= 0 && checkpoint_every >= 0 && keep_checkpoints >= 0,
               "sft: eval_every {}, log_every {}, checkpoint_every {} and keep_checkpoints {} must "
               "be >= 0",
               eval_every, log_every, checkpoint_every, keep_checkpoints);
  optimizer.validate("sft");
  TILLER_CHECK(device.is_cuda() || dtype == DType::f32,
               "sft: the CPU backend trains in f32; bf16 needs device cuda");
  TILLER_CHECK(dtype == DType::f32 || dtype == DType::bf16, "sft: dtype must be f32 or bf16");
  TILLER_CHECK(replay_rows >= 0 && replay_seq_len >= 0 && replay_coef >= 0.f &&
                   std::isfinite(replay_coef),
               "sft: replay_rows {}, replay_seq_len {} and replay_coef {} must be >= 0",
               replay_rows, replay_seq_len, replay_coef);
  TILLER_CHECK(replay_rows == 0 || !replay_shards.empty(),
               "sft: replay_rows {} needs replay shards (pretraining token shards)", replay_rows);
}

TokenLossSum sft_token_losses(Transformer& model, const SftBatch& batch, bool training) {
  ForwardOptions options{.positions = batch.positions,
                         .key_padding_mask = {},
                         .document_ids = batch.document_ids,
                         .training = training,
                         .cache = nullptr};
  Tensor logits = model.forward(batch.inputs, options);  // (B, T, V)
  TokenLossSum out;
  out.loss_sum = cross_entropy(logits, batch.targets, -100, Reduction::sum);
  out.tokens = batch.trainable_tokens;

  // Greedy hits counted on the logits' device: nothing the size of the logits leaves it.
  out.correct = sum(argmax_hits(logits.detach(), batch.targets, -100));
  return out;
}

AccumulatedLoss accumulate_sft_gradients(Transformer& model, std::span<const SftBatch> batches,
                                         bool training, dist::Communicator* communicator) {
  AccumulatedLoss out;
  for (const SftBatch& batch : batches) {
    out.trainable_tokens += batch.trainable_tokens;
    out.input_tokens += batch.input_tokens;
  }
  const int ranks = communicator ? communicator->world_size() : 1;
  if (ranks > 1) {  // exact as f32 up to 2^24 tokens per step
    out.trainable_tokens = static_cast<int64_t>(
        communicator->all_reduce_value(static_cast<double>(out.trainable_tokens),
                                       dist::ReduceOp::sum));
    out.input_tokens = static_cast<int64_t>(communicator->all_reduce_value(
        static_cast<double>(out.input_tokens), dist::ReduceOp::sum));
  }
  TILLER_CHECK(out.trainable_tokens > 0, "sft: {} micro-batches hold no trainable token",
               batches.size());
  // The normaliser is known before the first backward, so each micro-batch's sum is scaled by the
  // same 1 / N and the accumulated gradient is that of the token mean over the whole step
  // (times the number of ranks, which their average divides out again).
  const float inverse_tokens =
      static_cast<float>(ranks) / static_cast<float>(out.trainable_tokens);
  // The loss and hit sums stay on the model's device until the end: one host read per step.
  Tensor loss_sum, correct;
  for (const SftBatch& batch : batches) {
    if (batch.trainable_tokens == 0) continue;
    TokenLossSum part = sft_token_losses(model, batch, training);
    Tensor part_loss = part.loss_sum.detach();
    loss_sum = loss_sum.defined() ? add(loss_sum, part_loss) : part_loss;
    correct = correct.defined() ? add(correct, part.correct) : part.correct;
    scale(part.loss_sum, inverse_tokens).backward();
  }
  // A rank whose slice of this step holds no trainable token contributes zero sums.
  const std::vector<float> sums =
      loss_sum.defined()
          ? concat({loss_sum.reshape({1}), correct.reshape({1})}, 0).to_vector()
          : std::vector<float>{0.f, 0.f};
  out.loss = static_cast<float>(ranks * static_cast<double>(sums[0]) /
                                static_cast<double>(out.trainable_tokens));
  out.accuracy = static_cast<float>(ranks * static_cast<double>(sums[1]) /
                                    static_cast<double>(out.trainable_tokens));
  return out;
}

SftTrainer::SftTrainer(SftConfig config, Transformer model, SftDataset train,
                       std::optional<SftDataset> eval, std::optional<Tokenizer> tokenizer)
    : config_(std::move(config)),
      model_(std::move(model)),
      train_(std::move(train)),
      eval_(std::move(eval)),
      tokenizer_(std::move(tokenizer)) {
  config_.validate();
  if (!config_.communicator) config_.communicator = dist::single_process();
  TILLER_CHECK(config_.batch_size % config_.communicator->world_size() == 0,
               "sft: the batch of {} rows is the global batch and must divide evenly over {} "
               "ranks; use a multiple of {}",
               config_.batch_size, config_.communicator->world_size(),
               config_.communicator->world_size());
  if (!config_.communicator->is_leader()) config_.log_every = 0;  // rank 0 alone prints
  TILLER_CHECK(train_.max_length() <= model_.config().max_seq_len,
               "sft: the data's max_length {} exceeds the model's max_seq_len {}",
               train_.max_length(), model_.config().max_seq_len);
  if (tokenizer_) {
    TILLER_CHECK(tokenizer_->vocab_size() <= model_.config().vocab_size,
                 "sft: the tokenizer has {} ids but the model's vocab_size is {}",
                 tokenizer_->vocab_size(), model_.config().vocab_size);
  }
  rows_ = plan_rows(train_, config_.pack, config_.seed);
  steps_per_epoch_ =
      ceil_div(static_cast<int64_t>(rows_.size()), config_.batch_size * config_.grad_accumulation);
  schedule_ =
      resolve_schedule(config_.optimizer.schedule, total_steps(), "sft", config_.log_every == 0);
  if (model_.device() != config_.device) model_.to(config_.device);
  if (config_.dtype != DType::f32) model_.to(config_.dtype);
  model_.dropout_generator() = Generator(config_.seed);
  use_rank_dropout_stream(model_, *config_.communicator);
  optimizer_ = make_optimizer(model_.parameters(), config_.optimizer, config_.seed,
                              config_.communicator);
  order_ = random::epoch_order(rows(), config_.seed, epoch_);
  if (config_.replay_rows > 0) {
    const int ranks = config_.communicator->world_size();
    TILLER_CHECK(config_.replay_rows % ranks == 0,
                 "sft: the {} replay rows of each update must divide evenly over {} ranks",
                 config_.replay_rows, ranks);
    const int64_t seq_len =
        config_.replay_seq_len > 0 ? config_.replay_seq_len : model_.config().max_seq_len;
    TILLER_CHECK(seq_len <= model_.config().max_seq_len,
                 "sft: replay_seq_len {} exceeds the model's max_seq_len {}", seq_len,
                 model_.config().max_seq_len);
    replay_loader_.emplace(config_.replay_shards,
                           TokenLoaderOptions{.batch_size = config_.replay_rows / ranks,
                                              .seq_len = seq_len,
                                              .seed = config_.seed + 1,
                                              .rank = config_.communicator->rank(),
                                              .world_size = ranks});
  }
}

SftStepReport SftTrainer::train_step() {
  SftStepReport report;
  report.step = step_ + 1;
  if (cursor_ >= rows()) {
    ++epoch_;
    cursor_ = 0;
    order_ = random::epoch_order(rows(), config_.seed, epoch_);
  }
  report.epoch = epoch_;

  // Every rank walks the same rows; rank r keeps its slice of each micro-batch (maybe empty at
  // the end of an epoch).
  const int64_t ranks = config_.communicator->world_size();
  const int64_t slice = config_.batch_size / ranks, first = config_.communicator->rank() * slice;
  std::vector<SftBatch> micro_batches;
  for (int64_t micro = 0; micro < config_.grad_accumulation && cursor_ < rows(); ++micro) {
    std::vector<SftRow> selected;
    for (int64_t r = 0; r < config_.batch_size && cursor_ < rows(); ++r, ++cursor_)
      if (r >= first && r < first + slice) selected.push_back(rows_[order_[cursor_]]);
    if (!selected.empty()) micro_batches.push_back(collate(train_, selected, config_.device));
  }

  optimizer_->zero_grad();
  AccumulatedLoss loss =
      accumulate_sft_gradients(model_, micro_batches, /*training=*/model_.config().dropout > 0.f,
                               config_.communicator.get());
  report.accuracy = ranks > 1 ? static_cast<float>(config_.communicator->all_reduce_value(
                                    loss.accuracy, dist::ReduceOp::average))
                              : loss.accuracy;
  report.loss = loss.loss;
  report.trainable_tokens = loss.trainable_tokens;
  report.input_tokens = loss.input_tokens;
  if (replay_loader_) {
    // Each rank's mean over its windows; apply_update averages the ranks' gradients, which
    // gives the mean over all windows.
    TokenBatch replay = replay_loader_->next();
    Tensor replay_loss = model_.loss(replay.inputs.to(config_.device),
                                     replay.targets.to(config_.device), -100,
                                     {.training = model_.config().dropout > 0.f});
    report.replay_loss = replay_loss.detach();
    scale(replay_loss, config_.replay_coef).backward();
    report.input_tokens += replay.inputs.numel() * ranks;
  }
  UpdateResult update = apply_update(*optimizer_, model_.parameters(), config_.optimizer, schedule_,
                                     step_, report.loss, "sft");
  report.loss = update.loss;
  report.lr = update.lr;
  report.grad_norm = update.grad_norm;
  report.skipped = update.skipped;
  ++step_;
  return report;
}

SftEvalResult SftTrainer::evaluate() {
  SftEvalResult result;
  if (!eval_) {
    result.loss = result.accuracy = std::numeric_limits<float>::quiet_NaN();
    return result;
  }
  NoGradGuard no_grad;
  std::vector<SftRow> rows = plan_rows(*eval_, /*pack=*/false);
  double loss_sum = 0.0;
  int64_t correct = 0;
  for (size_t start = 0; start < rows.size(); start += static_cast<size_t>(config_.batch_size)) {
    const size_t count = std::min(rows.size() - start, static_cast<size_t>(config_.batch_size));
    SftBatch batch =
        collate(*eval_, std::span<const SftRow>(rows).subspan(start, count), config_.device);
    TokenLossSum part = sft_token_losses(model_, batch);
    loss_sum += part.loss_sum.item();
    correct += static_cast<int64_t>(part.correct.item());
    result.tokens += part.tokens;
  }
  result.loss = static_cast<float>(loss_sum / static_cast<double>(result.tokens));
  result.accuracy =
      static_cast<float>(static_cast<double>(correct) / static_cast<double>(result.tokens));
  return result;
}

void SftTrainer::save_checkpoint(const std::filesystem::path& dir) {
  nlohmann::json state = {{"stage", "sft"},
                          {"step", step_},
                          {"epoch", epoch_},
                          {"cursor", cursor_},
                          {"rows", rows()},
                          {"batch_size", config_.batch_size},
                          {"grad_accumulation", config_.grad_accumulation},
                          {"seed", config_.seed}};
  if (replay_loader_)
    state["replay_loader"] = loader_state_json<nlohmann::json>(replay_loader_->state());
  save_training_checkpoint(dir, model_, *optimizer_, state.dump(), tokenizer_);
}

void SftTrainer::resume(const std::filesystem::path& dir) {
  auto state = nlohmann::json::parse(
      load_training_checkpoint(dir, model_, *optimizer_, config_.device, "sft"));
  int64_t saved_rows = 0, saved_batch = 0, saved_accumulation = 0;
  int64_t saved_step = 0, saved_epoch = 0, saved_cursor = 0;
  uint64_t saved_seed = 0;
  TokenLoaderState replay;
  try {
    if (replay_loader_) {
      TILLER_CHECK(state.contains("replay_loader"),
                   "sft: {} was trained without replay; this run replays {} rows per update",
                   dir.string(), config_.replay_rows);
      replay = saved_loader_state(state, "replay_loader");
    }
    TILLER_CHECK(state.value("stage", "") == "sft", "sft: {} is not an SFT checkpoint",
                 dir.string());
    saved_rows = saved_integer<int64_t>(state, "rows");
    saved_batch = saved_integer<int64_t>(state, "batch_size");
    saved_accumulation = saved_integer<int64_t>(state, "grad_accumulation");
    saved_seed = saved_integer<uint64_t>(state, "seed");
    saved_step = saved_integer<int64_t>(state, "step");
    saved_epoch = saved_integer<int64_t>(state, "epoch");
    saved_cursor = saved_integer<int64_t>(state, "cursor");
  } catch (const nlohmann::json::exception& error) {
    fail("sft: {}: a field is missing or has the wrong type: {}",
         (dir / "trainer_state.json").string(), error.what());
  }
  TILLER_CHECK(saved_rows == rows() && saved_batch == config_.batch_size &&
                   saved_accumulation == config_.grad_accumulation && saved_seed == config_.seed,
               "sft: {} was trained on {} rows, batch {} x {} accumulation, seed {}; this run has "
               "{} rows, batch {} x {}, seed {}",
               dir.string(), saved_rows, saved_batch, saved_accumulation, saved_seed, rows(),
               config_.batch_size, config_.grad_accumulation, config_.seed);
  TILLER_CHECK(saved_step >= 0 && saved_step < kMaxSavedCount && saved_epoch >= 0 &&
                   saved_epoch < kMaxSavedCount && saved_cursor >= 0 && saved_cursor <= rows(),
               "sft: {}: step {}, epoch {}, cursor {} is not a position in {} rows",
               (dir / "trainer_state.json").string(), saved_step, saved_epoch, saved_cursor,
               rows());
  step_ = saved_step;
  epoch_ = saved_epoch;
  cursor_ = saved_cursor;
  order_ = random::epoch_order(rows(), config_.seed, epoch_);
  if (replay_loader_) replay_loader_->restore(replay);
  use_rank_dropout_stream(model_, *config_.communicator);
}

void SftTrainer::log_eval(MetricsLog& log, const SftEvalResult& result) {
  if (!eval_) return;
  Metrics metrics;
  metrics.add("eval_loss", result.loss).add("eval_accuracy", result.accuracy);
  log.write(step_, metrics);
  if (config_.log_every > 0) log.print(step_, total_steps(), metrics);
}

SftSummary SftTrainer::train() {
  RunDirectory run(config_.output_dir, config_.keep_checkpoints);
  const bool leader = config_.communicator->is_leader();
  std::unique_ptr<MetricsLog> log =
      RunDirectory(leader ? run.root() : "", 0).open_metrics("sft", step_, "eval_loss");

  SftSummary summary;
  summary.initial_eval = evaluate();
  log_eval(*log, summary.initial_eval);
  const auto start = Clock::now();
  ThroughputWindow window;
  while (step_ < total_steps()) {
    const auto step_start = Clock::now();
    SftStepReport report = train_step();
    const double step_seconds = seconds_since(step_start);
    window.add(static_cast<double>(report.input_tokens));
    summary.final_train_loss = report.loss;

    Metrics metrics;
    metrics.add("loss", report.loss)
        .add("accuracy", report.accuracy)
        .add("lr", report.lr)
        .add("grad_norm", report.grad_norm)
        .add("tokens_per_sec", static_cast<double>(report.input_tokens) / step_seconds)
        .add("trainable_tokens", static_cast<double>(report.trainable_tokens))
        .add("epoch", static_cast<double>(report.epoch));
    if (report.skipped) metrics.add("skipped", 1);
    const bool show = config_.log_every > 0 && (every(step_, config_.log_every) || step_ == 1);
    // The replay loss is read back only on progress-line steps (every 10th without progress
    // lines): the other steps leave it on the device.
    float replay_loss = std::numeric_limits<float>::quiet_NaN();
    if (report.replay_loss.defined() && (show || (config_.log_every == 0 && every(step_, 10)))) {
      replay_loss = report.replay_loss.item();
      metrics.add("replay_loss", replay_loss);
    }
    log->write(step_, metrics);
    if (show) {
      Metrics shown;
      shown.add("loss", report.loss).add("acc", report.accuracy);
      if (std::isfinite(replay_loss)) shown.add("replay_loss", replay_loss);
      shown.add("lr", report.lr)
          .add("tok/s", window.rate())
          .add("epoch", static_cast<double>(report.epoch));
      log->print(step_, total_steps(), shown);
      window.reset();
    }
    const bool last = step_ == total_steps();
    if (!last && every(step_, config_.eval_every)) log_eval(*log, evaluate());
    if (!last && run.enabled() && every(step_, config_.checkpoint_every)) {
      save_checkpoint(run.checkpoint_path(step_));
      if (leader) run.prune_checkpoints();
    }
  }
  summary.final_eval = evaluate();
  log_eval(*log, summary.final_eval);
  if (run.enabled()) {
    summary.final_checkpoint = run.final_path("model");
    save_checkpoint(summary.final_checkpoint);
  }
  summary.steps = step_;
  summary.seconds = seconds_since(start);
  return summary;
}

}  // namespace tiller::rl
