// The pretraining loop, its checkpoints and its exact resume (see rl/pretrain.h).
//
// Bit-exact resume rests on three facts: every input of an update is either in the checkpoint
// (weights, AdamW moments and step, dropout generator, loader position) or a pure function of the
// step (the learning rate); validation and sampling draw no random numbers and record no graph;
// and the CPU kernels are deterministic for a fixed thread count. Keep it that way: anything new
// that an update reads must go into trainer_state.json or trainer_state.safetensors.
#include "rl/trainers/pretrain.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>

#include "core/io/atomic_file.h"
#include "core/io/checkpoint.h"
#include "core/ops/ops.h"
#include "core/text/special_tokens.h"
#include "kernels/error.h"
#include "rl/kit/progress.h"
#include "rl/kit/rank_dropout.h"
#include "rl/kit/train_checkpoint.h"

namespace tiller::rl {

namespace {

using Clock = std::chrono::steady_clock;

PretrainConfig checked(PretrainConfig config) {
  config.validate();
  if (!config.communicator) config.communicator = dist::single_process();
  const int64_t ranks = config.communicator->world_size();
  TILLER_CHECK(config.batch_size % ranks == 0,
               "pretrain: the batch of {} sequences is the global batch and must divide evenly "
               "over {} ranks; use a multiple of {}",
               config.batch_size, ranks, ranks);
  TILLER_CHECK(config.replay_rows() % ranks == 0,
               "pretrain: the {} replay rows of each batch must divide evenly over {} ranks; "
               "choose replay_fraction so that replay_fraction x batch_size is a multiple of {}",
               config.replay_rows(), ranks, ranks);
  if (!config.communicator->is_leader()) {  // rank 0 alone prints and writes samples
    config.log_every = 0;
    config.sample_every = 0;
  }
  return config;
}

int64_t argmax(const std::vector<float>& values) {
  return std::max_element(values.begin(), values.end()) - values.begin();
}

}  // namespace

void PretrainConfig::validate() const {
  model.validate();
  TILLER_CHECK(batch_size > 0, "pretrain: batch_size must be positive, got {}", batch_size);
  TILLER_CHECK(seq_len > 0 && seq_len <= model.max_seq_len,
               "pretrain: seq_len {} must be in [1, max_seq_len = {}]", seq_len, model.max_seq_len);
  TILLER_CHECK(steps >= 0, "pretrain: steps must be >= 0, got {}", steps);
  TILLER_CHECK(grad_accumulation > 0, "pretrain: grad_accumulation must be positive, got {}",
               grad_accumulation);
  TILLER_CHECK(eval_every >= 0 && eval_batches > 0,
               "pretrain: eval_every {} must be >= 0 and eval_batches {} positive", eval_every,
               eval_batches);
  TILLER_CHECK(
      sample_every >= 0 && checkpoint_every >= 0 && log_every >= 0 && keep_checkpoints >= 0,
      "pretrain: sample_every {}, checkpoint_every {}, keep_checkpoints {} and log_every "
      "{} must be >= 0",
      sample_every, checkpoint_every, keep_checkpoints, log_every);
  optimizer.validate("pretrain");
  TILLER_CHECK(replay_fraction >= 0.0 && replay_fraction < 1.0,
               "pretrain: replay_fraction must be in [0, 1), got {}", replay_fraction);
  TILLER_CHECK(replay_fraction == 0.0 || !replay_shards.empty(),
               "pretrain: replay_fraction {} needs replay shards", replay_fraction);
  TILLER_CHECK(replay_fraction == 0.0 || (replay_rows() > 0 && replay_rows() < batch_size),
               "pretrain: replay_fraction {} of a batch of {} rows gives {} replay rows; it must "
               "leave at least one row for each source",
               replay_fraction, batch_size, replay_rows());
  TILLER_CHECK(device.is_cpu() || dtype == DType::f32 || dtype == DType::bf16,
               "pretrain: dtype must be f32 or bf16");
  TILLER_CHECK(device.is_cuda() || dtype == DType::f32,
               "pretrain: the CPU backend trains in f32; bf16 needs device cuda");
}

int64_t PretrainConfig::replay_rows() const {
  return static_cast<int64_t>(std::llround(replay_fraction * static_cast<double>(batch_size)));
}

double flops_per_token(const ModelConfig& model, int64_t seq_len) {
  return 6.0 * static_cast<double>(model.num_parameters()) +
         12.0 * static_cast<double>(model.n_layer * model.n_embd * seq_len);
}

Pretrainer::Pretrainer(PretrainConfig config, std::vector<std::string> train_shards,
                       std::vector<std::string> val_shards, std::optional<Tokenizer> tokenizer)
    : config_(checked(std::move(config))),
      val_shards_(std::move(val_shards)),
      tokenizer_(std::move(tokenizer)),
      model_(config_.model, config_.seed),
      train_loader_(train_shards,
                    {.batch_size = (config_.batch_size - config_.replay_rows()) /
                                   config_.communicator->world_size(),
                     .seq_len = config_.seq_len,
                     .seed = config_.seed,
                     .rank = config_.communicator->rank(),
                     .world_size = config_.communicator->world_size()}) {
  // Each rank reads its slice of both sources: (batch - replay) / N new rows, replay / N old ones.
  if (config_.replay_rows() > 0) {
    replay_loader_.emplace(config_.replay_shards,
                           TokenLoaderOptions{.batch_size = config_.replay_rows() /
                                                            config_.communicator->world_size(),
                                              .seq_len = config_.seq_len,
                                              .seed = config_.seed + 1,
                                              .rank = config_.communicator->rank(),
                                              .world_size = config_.communicator->world_size()});
  }
  if (!config_.init_from.empty()) {
    Checkpoint initial = load_checkpoint(config_.init_from, Device::cpu());
    std::string differences =
        architecture_differences(ModelConfig::from_hf_json(initial.config_json), config_.model);
    TILLER_CHECK(differences.empty(),
                 "pretrain: init_from {} is a different architecture than this run's model "
                 "(checkpoint vs run: {})",
                 config_.init_from, differences);
    model_.load_hf_tensors(initial.tensors.all(), "init_from " + config_.init_from);
  }
  if (tokenizer_) {
    TILLER_CHECK(tokenizer_->vocab_size() <= config_.model.vocab_size,
                 "pretrain: the tokenizer has {} ids but the model's vocab_size is {}",
                 tokenizer_->vocab_size(), config_.model.vocab_size);
  }
  if (!config_.device.is_cpu()) model_.to(config_.device);
  if (config_.dtype != DType::f32) model_.to(config_.dtype);
  schedule_ = resolve_schedule(config_.optimizer.schedule, config_.steps, "pretrain",
                               config_.log_every == 0);
  optimizer_ = make_optimizer(model_.parameters(), config_.optimizer, config_.seed,
                              config_.communicator);
  use_rank_dropout_stream(model_, *config_.communicator);
}

StepReport Pretrainer::train_step() {
  StepReport report;
  report.step = step_ + 1;
  optimizer_->zero_grad();

  ForwardOptions forward;
  forward.training = config_.model.dropout > 0.f;
  double loss_sum = 0.0;
  for (int64_t micro = 0; micro < config_.grad_accumulation; ++micro) {
    TokenBatch batch = train_loader_.next();
    if (replay_loader_) {
      TokenBatch replay = replay_loader_->next();
      batch.inputs = concat({batch.inputs, replay.inputs}, 0);
      batch.targets = concat({batch.targets, replay.targets}, 0);
    }
    Tensor loss = model_.loss(batch.inputs.to(config_.device), batch.targets.to(config_.device),
                              -100, forward);
    loss_sum += loss.item();
    if (config_.grad_accumulation > 1)
      loss = scale(loss, 1.f / static_cast<float>(config_.grad_accumulation));
    loss.backward();
  }
  report.loss = static_cast<float>(loss_sum / static_cast<double>(config_.grad_accumulation));
  tokens_seen_ += config_.tokens_per_step();
  if (after_backward_) after_backward_(report.step, report.loss, model_);

  UpdateResult update = apply_update(*optimizer_, model_.parameters(), config_.optimizer, schedule_,
                                     step_, report.loss, "pretrain");
  report.loss = update.loss;
  report.lr = update.lr;
  report.grad_norm = update.grad_norm;
  report.skipped = update.skipped;
  if (update.skipped) ++skipped_steps_;
  ++step_;
  return report;
}

float Pretrainer::evaluate() {
  if (val_shards_.empty()) return std::numeric_limits<float>::quiet_NaN();
  NoGradGuard no_grad;
  // A fresh unshuffled loader: the same first eval_batches windows every time.
  TokenLoader loader(
      val_shards_,
      {.batch_size = config_.batch_size, .seq_len = config_.seq_len, .shuffle = false});
  TILLER_CHECK(loader.steps_per_epoch() > 0,
               "pretrain: the validation shards hold {} windows of {} tokens, fewer than one "
               "batch of {}",
               loader.windows_per_epoch(), config_.seq_len + 1, config_.batch_size);
  int64_t batches = std::min(config_.eval_batches, loader.steps_per_epoch());
  double total = 0.0;
  for (int64_t i = 0; i < batches; ++i) {
    TokenBatch batch = loader.next();
    total += model_.loss(batch.inputs.to(config_.device), batch.targets.to(config_.device)).item();
  }
  return static_cast<float>(total / static_cast<double>(batches));
}

std::string Pretrainer::sample(const std::string& prompt, int64_t new_tokens) {
  TILLER_CHECK(tokenizer_.has_value(), "pretrain: sample needs a tokenizer");
  NoGradGuard no_grad;
  const TokenId end_of_text = tokenizer_->token_id(special_tokens::kEndOfText);
  std::vector<TokenId> ids =
      prompt.empty() ? std::vector<TokenId>{end_of_text} : tokenizer_->encode(prompt, true);
  const size_t prompt_length = ids.size();
  for (int64_t i = 0; i < new_tokens; ++i) {
    const size_t context = std::min(ids.size(), static_cast<size_t>(config_.model.max_seq_len));
    std::vector<TokenId> window(ids.end() - static_cast<std::ptrdiff_t>(context), ids.end());
    const auto n = static_cast<int64_t>(context);
    Tensor logits = model_.forward(Tensor::from_ints(window, {1, n}).to(config_.device));
    Tensor last = slice(logits, 1, n - 1, n);  // (1, 1, V)
    auto next = static_cast<TokenId>(argmax(last.to(DType::f32).to_vector()));
    if (next == end_of_text) break;
    ids.push_back(next);
  }
  return tokenizer_->decode(std::span(ids).subspan(prompt_length));
}

void Pretrainer::save_checkpoint(const std::filesystem::path& dir) {
  nlohmann::json state = {
      {"step", step_},
      {"tokens_seen", tokens_seen_},
      {"skipped_steps", skipped_steps_},
      {"loader", loader_state_json<nlohmann::json>(train_loader_.state())},
      {"batch_size", config_.batch_size},
      {"seq_len", config_.seq_len}};
  if (replay_loader_)
    state["replay_loader"] = loader_state_json<nlohmann::json>(replay_loader_->state());
  save_training_checkpoint(dir, model_, *optimizer_, state.dump(), tokenizer_);
}

void Pretrainer::resume(const std::filesystem::path& dir) {
  auto state = nlohmann::json::parse(
      load_training_checkpoint(dir, model_, *optimizer_, config_.device, "pretrain"));
  int64_t saved_batch = 0, saved_seq_len = 0;
  TokenLoaderState loader, replay;
  try {
    if (replay_loader_) replay = saved_loader_state(state, "replay_loader");
    saved_batch = saved_integer<int64_t>(state, "batch_size");
    saved_seq_len = saved_integer<int64_t>(state, "seq_len");
    loader = saved_loader_state(state, "loader");
    step_ = saved_integer<int64_t>(state, "step");
    tokens_seen_ = saved_integer<int64_t>(state, "tokens_seen");
    skipped_steps_ = saved_integer<int64_t>(state, "skipped_steps");
  } catch (const nlohmann::json::exception& error) {
    fail("pretrain: {}: a field is missing or has the wrong type: {}",
         (dir / "trainer_state.json").string(), error.what());
  }
  TILLER_CHECK(saved_batch == config_.batch_size && saved_seq_len == config_.seq_len,
               "pretrain: {} was trained with batch {} x {} tokens but this run uses {} x {}",
               dir.string(), saved_batch, saved_seq_len, config_.batch_size, config_.seq_len);
  for (int64_t count : {step_, tokens_seen_, skipped_steps_, loader.epoch}) {
    TILLER_CHECK(count >= 0 && count < kMaxSavedCount,
                 "pretrain: {}: step {}, tokens_seen {}, skipped_steps {} and loader epoch {} must "
                 "be in [0, 2^53)",
                 (dir / "trainer_state.json").string(), step_, tokens_seen_, skipped_steps_,
                 loader.epoch);
  }
  train_loader_.restore(loader);
  if (replay_loader_) replay_loader_->restore(replay);
  use_rank_dropout_stream(model_, *config_.communicator);
}

void Pretrainer::log_validation(MetricsLog& log, float val_loss) {
  Metrics metrics;
  metrics.add("val_loss", val_loss);
  log.write(step_, metrics);
  if (config_.log_every > 0) log.print(step_, config_.steps, metrics);
}

void Pretrainer::write_sample(int64_t step) {
  // One line per sample: newlines in the text are shown as "\n".
  std::string shown;
  for (char c : config_.sample_prompt + sample(config_.sample_prompt, config_.sample_tokens))
    shown += c == '\n' ? std::string("\\n") : std::string(1, c);
  if (config_.log_every > 0)
    std::printf("[pretrain] sample @%lld: %s\n", static_cast<long long>(step), shown.c_str());
  if (config_.output_dir.empty()) return;
  std::ofstream out(std::filesystem::path(config_.output_dir) / "samples.txt", std::ios::app);
  out << "step " << step << ": " << shown << "\n";
}

PretrainSummary Pretrainer::train() {
  RunDirectory run(config_.output_dir, config_.keep_checkpoints);
  const bool leader = config_.communicator->is_leader();
  if (run.enabled() && leader) {
    std::filesystem::create_directories(run.root());
    write_file_atomic(run.root() / "pretrain_config.json", pretrain_config_to_json(config_) + "\n");
  }
  std::unique_ptr<MetricsLog> log =
      RunDirectory(leader ? run.root() : "", 0).open_metrics("pretrain", step_, "val_loss");

  PretrainSummary summary;
  summary.initial_val_loss = evaluate();
  if (!val_shards_.empty()) log_validation(*log, summary.initial_val_loss);

  const auto start = Clock::now();
  ThroughputWindow window;
  const double flops = flops_per_token(config_.model, config_.seq_len);
  while (step_ < config_.steps) {
    const auto step_start = Clock::now();
    const double comm_before = config_.communicator->collective_seconds();
    StepReport report = train_step();
    const double step_seconds = seconds_since(step_start);
    const double comm_seconds = config_.communicator->collective_seconds() - comm_before;
    window.add(static_cast<double>(config_.tokens_per_step()));
    summary.final_train_loss = report.loss;

    Metrics metrics;
    metrics.add("loss", report.loss)
        .add("lr", report.lr)
        .add("grad_norm", report.grad_norm)
        .add("tokens_per_sec", static_cast<double>(config_.tokens_per_step()) / step_seconds)
        .add("tokens", static_cast<double>(tokens_seen_));
    if (report.skipped) metrics.add("skipped", 1);
    if (config_.communicator->world_size() > 1) metrics.add("comm_seconds", comm_seconds);
    log->write(step_, metrics);

    if (config_.log_every > 0 && (every(step_, config_.log_every) || step_ == 1)) {
      Metrics shown;
      shown.add("loss", report.loss).add("lr", report.lr).add("gnorm", report.grad_norm);
      shown.add("tok/s", window.rate());
      if (config_.device.is_cuda() && config_.peak_flops > 0)
        shown.add("mfu%", 100.0 * flops * window.rate() / config_.peak_flops);
      if (skipped_steps_ > 0) shown.add("skipped", static_cast<double>(skipped_steps_));
      log->print(step_, config_.steps, shown);
      window.reset();
    }
    const bool last = step_ == config_.steps;
    if (!last && !val_shards_.empty() && every(step_, config_.eval_every))
      log_validation(*log, evaluate());
    if (tokenizer_ && every(step_, config_.sample_every)) write_sample(step_);
    if (!last && run.enabled() && every(step_, config_.checkpoint_every)) {
      save_checkpoint(run.checkpoint_path(step_));
      if (leader) run.prune_checkpoints();
    }
  }

  summary.final_val_loss = evaluate();
  if (!val_shards_.empty()) log_validation(*log, summary.final_val_loss);
  if (run.enabled()) {
    summary.final_checkpoint = run.final_path("model");
    save_checkpoint(summary.final_checkpoint);
  }
  summary.steps = step_;
  summary.skipped_steps = skipped_steps_;
  summary.seconds = seconds_since(start);
  return summary;
}

}  // namespace tiller::rl
