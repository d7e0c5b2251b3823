// The SFT loop, its token-normalised gradient accumulation, checkpoints and resume (rl/sft.h).
//
// Exact resume rests on the same facts as pretraining's: everything an update reads is in the
// checkpoint (weights, AdamW state, epoch + cursor, dropout generator) or a pure function of the
// step and seed (learning rate, row plan, epoch order), and evaluation draws no random numbers.
#include "rl/sft.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>

#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/ops.h"
#include "optim/clip.h"
#include "rl/train_checkpoint.h"

namespace tiller::rl {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

}  // namespace

void SftConfig::validate() const {
  TILLER_CHECK(epochs >= 0, "sft: epochs must be >= 0, got {}", epochs);
  TILLER_CHECK(batch_size > 0, "sft: batch_size must be positive, got {}", batch_size);
  TILLER_CHECK(grad_accumulation > 0, "sft: grad_accumulation must be positive, got {}",
               grad_accumulation);
  TILLER_CHECK(eval_every >= 0 && log_every >= 0 && checkpoint_every >= 0,
               "sft: eval_every {}, log_every {} and checkpoint_every {} must be >= 0", eval_every,
               log_every, checkpoint_every);
  TILLER_CHECK(clip_norm >= 0.f, "sft: clip_norm must be >= 0, got {}", clip_norm);
  TILLER_CHECK(device.is_cuda() || dtype == DType::f32,
               "sft: the CPU backend trains in f32; bf16 needs device cuda");
  TILLER_CHECK(dtype == DType::f32 || dtype == DType::bf16, "sft: dtype must be f32 or bf16");
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

  // Argmax hits on the host: one pass over the logits, outside the graph.
  const int64_t V = logits.size(-1);
  std::vector<float> values = logits.detach().to(DType::f32).to_vector();
  std::vector<int32_t> targets = batch.targets.to(Device::cpu()).to_int_vector();
  for (size_t position = 0; position < targets.size(); ++position) {
    if (targets[position] < 0) continue;
    const float* row = values.data() + position * static_cast<size_t>(V);
    out.correct += (std::max_element(row, row + V) - row) == targets[position] ? 1 : 0;
  }
  return out;
}

AccumulatedLoss accumulate_sft_gradients(Transformer& model, std::span<const SftBatch> batches,
                                         bool training) {
  AccumulatedLoss out;
  for (const SftBatch& batch : batches) {
    out.trainable_tokens += batch.trainable_tokens;
    out.input_tokens += batch.input_tokens;
  }
  TILLER_CHECK(out.trainable_tokens > 0, "sft: {} micro-batches hold no trainable token",
               batches.size());
  // The normaliser is known before the first backward, so each micro-batch's sum is scaled by the
  // same 1 / N and the accumulated gradient is that of the token mean over the whole step.
  const float inverse_tokens = 1.f / static_cast<float>(out.trainable_tokens);
  double loss_sum = 0.0;
  int64_t correct = 0;
  for (const SftBatch& batch : batches) {
    if (batch.trainable_tokens == 0) continue;
    TokenLossSum part = sft_token_losses(model, batch, training);
    loss_sum += part.loss_sum.item();
    correct += part.correct;
    scale(part.loss_sum, inverse_tokens).backward();
  }
  out.loss = static_cast<float>(loss_sum / static_cast<double>(out.trainable_tokens));
  out.accuracy =
      static_cast<float>(static_cast<double>(correct) / static_cast<double>(out.trainable_tokens));
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
  if (config_.schedule.total_steps == 0)
    config_.schedule.total_steps = std::max<int64_t>(total_steps(), config_.schedule.warmup_steps);
  config_.schedule.validate();
  if (model_.device() != config_.device) model_.to(config_.device);
  if (config_.dtype != DType::f32) model_.to(config_.dtype);
  model_.dropout_generator() = Generator(config_.seed);
  optimizer_ = std::make_unique<optim::AdamW>(
      optim::default_param_groups(model_.parameters(), config_.weight_decay),
      optim::AdamWOptions{.lr = config_.schedule.lr(0),
                          .beta1 = config_.beta1,
                          .beta2 = config_.beta2,
                          .eps = 1e-8f,
                          .weight_decay = config_.weight_decay,
                          .seed = config_.seed});
  order_ = epoch_order(rows(), config_.seed, epoch_);
}

SftStepReport SftTrainer::train_step() {
  SftStepReport report;
  report.step = step_ + 1;
  report.lr = config_.schedule.lr(step_);
  if (cursor_ >= rows()) {
    ++epoch_;
    cursor_ = 0;
    order_ = epoch_order(rows(), config_.seed, epoch_);
  }
  report.epoch = epoch_;

  std::vector<SftBatch> micro_batches;
  for (int64_t micro = 0; micro < config_.grad_accumulation && cursor_ < rows(); ++micro) {
    std::vector<SftRow> selected;
    for (int64_t r = 0; r < config_.batch_size && cursor_ < rows(); ++r)
      selected.push_back(rows_[order_[cursor_++]]);
    micro_batches.push_back(collate(train_, selected, config_.device));
  }

  optimizer_->zero_grad();
  AccumulatedLoss loss =
      accumulate_sft_gradients(model_, micro_batches, /*training=*/model_.config().dropout > 0.f);
  report.loss = loss.loss;
  report.accuracy = loss.accuracy;
  report.trainable_tokens = loss.trainable_tokens;
  report.input_tokens = loss.input_tokens;
  report.grad_norm = optim::global_grad_norm(model_.parameters());
  TILLER_CHECK(std::isfinite(report.loss) && std::isfinite(report.grad_norm),
               "sft: non-finite {} at step {} (loss {}, grad norm {})",
               std::isfinite(report.loss) ? "gradient norm" : "loss", report.step, report.loss,
               report.grad_norm);
  optimizer_->set_lr(report.lr);
  const float factor =
      config_.clip_norm > 0.f ? optim::clip_factor(report.grad_norm, config_.clip_norm) : 1.f;
  optimizer_->step(factor);
  optimizer_->zero_grad();  // frees the gradients before the next forward
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
    correct += part.correct;
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
  save_training_checkpoint(dir, model_, *optimizer_, state.dump(), tokenizer_);
}

void SftTrainer::resume(const std::filesystem::path& dir) {
  auto state = nlohmann::json::parse(
      load_training_checkpoint(dir, model_, *optimizer_, config_.device, "sft"));
  int64_t saved_rows = 0, saved_batch = 0, saved_accumulation = 0;
  int64_t saved_step = 0, saved_epoch = 0, saved_cursor = 0;
  uint64_t saved_seed = 0;
  try {
    TILLER_CHECK(state.value("stage", "") == "sft", "sft: {} is not an SFT checkpoint",
                 dir.string());
    saved_rows = state.at("rows").get<int64_t>();
    saved_batch = state.at("batch_size").get<int64_t>();
    saved_accumulation = state.at("grad_accumulation").get<int64_t>();
    saved_seed = state.at("seed").get<uint64_t>();
    saved_step = state.at("step").get<int64_t>();
    saved_epoch = state.at("epoch").get<int64_t>();
    saved_cursor = state.at("cursor").get<int64_t>();
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
  order_ = epoch_order(rows(), config_.seed, epoch_);
}

void SftTrainer::log_eval(MetricsLog& log, const SftEvalResult& result) {
  if (!eval_) return;
  Metrics metrics;
  metrics.add("eval_loss", result.loss).add("eval_accuracy", result.accuracy);
  log.write(step_, metrics);
  if (config_.log_every > 0) log.print(step_, total_steps(), metrics);
}

SftSummary SftTrainer::train() {
  const std::filesystem::path out = config_.output_dir;
  std::string metrics_path;
  if (!out.empty()) {
    std::filesystem::create_directories(out);
    metrics_path = (out / "metrics.jsonl").string();
    if (step_ > 0) truncate_metrics_for_resume(metrics_path, step_, "eval_loss");
  }
  MetricsLog log("sft", metrics_path, /*append=*/step_ > 0);

  SftSummary summary;
  summary.initial_eval = evaluate();
  log_eval(log, summary.initial_eval);
  const auto start = Clock::now();
  auto window_start = start;
  int64_t window_tokens = 0;
  while (step_ < total_steps()) {
    const auto step_start = Clock::now();
    SftStepReport report = train_step();
    const double step_seconds = seconds_since(step_start);
    window_tokens += report.input_tokens;
    summary.final_train_loss = report.loss;

    Metrics metrics;
    metrics.add("loss", report.loss)
        .add("accuracy", report.accuracy)
        .add("lr", report.lr)
        .add("grad_norm", report.grad_norm)
        .add("tokens_per_sec", static_cast<double>(report.input_tokens) / step_seconds)
        .add("trainable_tokens", static_cast<double>(report.trainable_tokens))
        .add("epoch", static_cast<double>(report.epoch));
    log.write(step_, metrics);
    if (config_.log_every > 0 && (step_ % config_.log_every == 0 || step_ == 1)) {
      // tokens/s over the steps since the last line, so one slow step does not dominate.
      Metrics shown;
      shown.add("loss", report.loss)
          .add("acc", report.accuracy)
          .add("lr", report.lr)
          .add("tok/s", static_cast<double>(window_tokens) / seconds_since(window_start))
          .add("epoch", static_cast<double>(report.epoch));
      log.print(step_, total_steps(), shown);
      window_start = Clock::now();
      window_tokens = 0;
    }
    const bool last = step_ == total_steps();
    if (!last && config_.eval_every > 0 && step_ % config_.eval_every == 0)
      log_eval(log, evaluate());
    if (!last && !out.empty() && config_.checkpoint_every > 0 &&
        step_ % config_.checkpoint_every == 0)
      save_checkpoint(out / "checkpoints" / fmt::format("step_{:06d}", step_));
  }
  summary.final_eval = evaluate();
  log_eval(log, summary.final_eval);
  if (!out.empty()) {
    summary.final_checkpoint = out / "model";
    save_checkpoint(summary.final_checkpoint);
  }
  summary.steps = step_;
  summary.seconds = seconds_since(start);
  return summary;
}

}  // namespace tiller::rl
