// The DPO trainer (see rl/trainers/dpo.h).
#include "rl/trainers/dpo.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "kernels/random.h"
#include "rl/heads/value_model.h"
#include "rl/kit/progress.h"
#include "rl/kit/run_directory.h"
#include "rl/kit/train_checkpoint.h"
#include "rl/trainers/completion_batch.h"

namespace tiller::rl {

namespace {

Tensor host_values(const std::vector<float>& all, const std::vector<int64_t>& indices,
                   Device device) {
  std::vector<float> picked;
  picked.reserve(indices.size());
  for (int64_t i : indices) picked.push_back(all[static_cast<size_t>(i)]);
  return Tensor::from_vector(picked, {static_cast<int64_t>(indices.size())}, {.device = device});
}

Metrics as_metrics(const DpoMetrics& m, const std::string& prefix) {
  Metrics out;
  out.add(prefix + "loss", m.loss)
      .add(prefix + "rewards/chosen", m.rewards_chosen)
      .add(prefix + "rewards/rejected", m.rewards_rejected)
      .add(prefix + "rewards/accuracies", m.rewards_accuracies)
      .add(prefix + "rewards/margins", m.rewards_margins)
      .add(prefix + "logps/chosen", m.logps_chosen)
      .add(prefix + "logps/rejected", m.logps_rejected);
  return out;
}

}  // namespace

bool truncate_preference(PreferenceExample& e, int64_t max_length) {
  if (max_length <= 0) return false;
  const auto longer = static_cast<int64_t>(std::max(e.chosen.size(), e.rejected.size()));
  const auto prompt = static_cast<int64_t>(e.prompt.size());
  if (prompt + longer <= max_length) return false;
  // Keep the prompt's end (the turn being answered), at least one token of it.
  const int64_t keep_prompt = std::clamp<int64_t>(max_length - longer, 1, prompt);
  e.prompt.erase(e.prompt.begin(), e.prompt.end() - keep_prompt);
  const int64_t room = max_length - keep_prompt;
  for (auto* completion : {&e.chosen, &e.rejected})
    if (static_cast<int64_t>(completion->size()) > room) completion->resize(room);
  return true;
}

OptimizerConfig dpo_trainer_optimizer() {
  OptimizerConfig c;
  c.schedule = {
      .kind = optim::LrSchedule::Kind::linear, .peak_lr = 1e-6f, .min_lr = 0.f, .warmup_steps = 0};
  c.weight_decay = 0.f;
  c.beta1 = 0.9f;
  c.beta2 = 0.999f;
  c.clip_norm = 1.f;
  return c;
}

void DpoConfig::validate() const {
  TILLER_CHECK(epochs > 0, "dpo: epochs must be > 0, got {}", epochs);
  TILLER_CHECK(batch_size > 0, "dpo: batch_size must be > 0, got {}", batch_size);
  TILLER_CHECK(grad_accumulation > 0, "dpo: grad_accumulation must be > 0, got {}",
               grad_accumulation);
  TILLER_CHECK(max_length >= 0, "dpo: max_length must be >= 0, got {}", max_length);
  optimizer.validate("dpo");
  TILLER_CHECK(keep_checkpoints >= 0, "dpo: keep_checkpoints must be >= 0, got {}",
               keep_checkpoints);
  rl::validate(loss);
}

DpoTrainer::DpoTrainer(DpoConfig config, Transformer policy,
                       std::vector<PreferenceExample> train, std::vector<PreferenceExample> eval,
                       std::optional<Tokenizer> tokenizer)
    : config_(std::move(config)),
      policy_(std::move(policy)),
      train_(std::move(train)),
      eval_(std::move(eval)),
      tokenizer_(std::move(tokenizer)) {
  config_.validate();
  if (!config_.communicator) config_.communicator = dist::single_process();
  TILLER_CHECK(config_.batch_size % config_.communicator->world_size() == 0,
               "dpo: the batch of {} pairs is the global batch and must divide evenly over {} "
               "ranks; use a multiple of {}",
               config_.batch_size, config_.communicator->world_size(),
               config_.communicator->world_size());
  if (!config_.communicator->is_leader()) config_.log_every = 0;  // rank 0 alone prints
  TILLER_CHECK(!train_.empty(), "dpo: no training pairs");
  const int64_t model_limit = policy_.config().max_seq_len;
  if (config_.max_length == 0) config_.max_length = model_limit;
  TILLER_CHECK(config_.max_length <= model_limit,
               "dpo: max_length {} exceeds the model's max_seq_len {}", config_.max_length,
               model_limit);
  for (auto* set : {&train_, &eval_}) {
    for (size_t i = 0; i < set->size(); ++i) {
      PreferenceExample& e = (*set)[i];
      TILLER_CHECK(!e.prompt.empty() && !e.chosen.empty() && !e.rejected.empty(),
                   "dpo: {} pair {} has an empty prompt, chosen or rejected",
                   set == &train_ ? "train" : "eval", i);
      if (truncate_preference(e, config_.max_length)) ++truncated_pairs_;
    }
  }
  const int64_t per_step = config_.batch_size * config_.grad_accumulation;
  steps_per_epoch_ = (static_cast<int64_t>(train_.size()) + per_step - 1) / per_step;
  schedule_ = resolve_schedule(config_.optimizer.schedule, config_.epochs * steps_per_epoch_, "dpo",
                               config_.log_every == 0);
  if (policy_.device() != config_.device) policy_.to(config_.device);

  if (config_.precompute_ref) {
    // The policy has not moved yet: it IS the reference. One pass, then no reference is kept.
    train_ref_ = precompute(train_);
    eval_ref_ = precompute(eval_);
  } else {
    reference_ = std::make_unique<Transformer>(copy_transformer(policy_));
    for (const auto& p : reference_->parameters()) Tensor(p.tensor).requires_grad_(false);
  }
  optimizer_ = make_optimizer(policy_.parameters(), config_.optimizer, config_.seed,
                              config_.communicator);
  order_ = random::epoch_order(static_cast<int64_t>(train_.size()), config_.seed, epoch_);
}

DpoTrainer::~DpoTrainer() = default;

DpoTrainer::RefLogps DpoTrainer::precompute(const std::vector<PreferenceExample>& examples) {
  NoGradGuard no_grad;
  RefLogps out;
  for (size_t start = 0; start < examples.size();
       start += static_cast<size_t>(config_.batch_size)) {
    std::vector<std::vector<int32_t>> prompts, completions;
    const size_t end = std::min(examples.size(), start + static_cast<size_t>(config_.batch_size));
    for (size_t i = start; i < end; ++i) prompts.push_back(examples[i].prompt);
    for (size_t i = start; i < end; ++i) prompts.push_back(examples[i].prompt);
    for (size_t i = start; i < end; ++i) completions.push_back(examples[i].chosen);
    for (size_t i = start; i < end; ++i) completions.push_back(examples[i].rejected);
    CompletionBatch batch =
        make_completion_batch(prompts, completions, config_.padding, config_.device);
    std::vector<float> sums =
        sequence_logps(completion_token_logps(policy_, batch), batch.mask).to_vector();
    const size_t b = end - start;
    out.chosen.insert(out.chosen.end(), sums.begin(), sums.begin() + b);
    out.rejected.insert(out.rejected.end(), sums.begin() + b, sums.end());
  }
  return out;
}

DpoMetrics DpoTrainer::run_batch(const std::vector<PreferenceExample>& examples,
                                 const std::vector<int64_t>& indices, const RefLogps* precomputed,
                                 double weight, bool backward, int64_t* tokens) {
  std::vector<std::vector<int32_t>> prompts, completions;
  for (int64_t i : indices) prompts.push_back(examples[i].prompt);
  for (int64_t i : indices) prompts.push_back(examples[i].prompt);
  for (int64_t i : indices) completions.push_back(examples[i].chosen);
  for (int64_t i : indices) completions.push_back(examples[i].rejected);
  CompletionBatch batch =
      make_completion_batch(prompts, completions, config_.padding, config_.device);
  if (tokens != nullptr)  // counted on the host: no device sync for a logged number
    for (size_t i = 0; i < prompts.size(); ++i)
      *tokens += static_cast<int64_t>(prompts[i].size() + completions[i].size());
  const auto b = static_cast<int64_t>(indices.size());
  DpoInputs in;
  {
    std::optional<NoGradGuard> no_grad;
    if (!backward) no_grad.emplace();
    Tensor sums = sequence_logps(completion_token_logps(policy_, batch), batch.mask);
    in.chosen_logps = slice(sums, 0, 0, b);
    in.rejected_logps = slice(sums, 0, b, 2 * b);
  }
  if (precomputed != nullptr) {
    in.ref_chosen_logps = host_values(precomputed->chosen, indices, config_.device);
    in.ref_rejected_logps = host_values(precomputed->rejected, indices, config_.device);
  } else {
    NoGradGuard no_grad;
    Tensor sums = sequence_logps(completion_token_logps(*reference_, batch), batch.mask);
    in.ref_chosen_logps = slice(sums, 0, 0, b);
    in.ref_rejected_logps = slice(sums, 0, b, 2 * b);
  }
  in.chosen_lengths = slice(batch.lengths, 0, 0, b);
  in.rejected_lengths = slice(batch.lengths, 0, b, 2 * b);
  std::optional<NoGradGuard> no_grad;
  if (!backward) no_grad.emplace();
  DpoLoss loss = dpo_loss(in, config_.loss);
  if (backward) scale(loss.loss, static_cast<float>(weight)).backward();
  return loss.metrics;
}

DpoStepReport DpoTrainer::train_step() {
  DpoStepReport report;
  report.step = step_ + 1;
  const auto pairs = static_cast<int64_t>(train_.size());
  if (cursor_ >= pairs) {
    ++epoch_;
    cursor_ = 0;
    order_ = random::epoch_order(pairs, config_.seed, epoch_);
  }
  report.epoch = epoch_;
  std::vector<std::vector<int64_t>> micro_batches;
  for (int64_t m = 0; m < config_.grad_accumulation && cursor_ < pairs; ++m) {
    std::vector<int64_t> indices;
    for (int64_t r = 0; r < config_.batch_size && cursor_ < pairs; ++r)
      indices.push_back(order_[cursor_++]);
    micro_batches.push_back(std::move(indices));
  }
  optimizer_->zero_grad();
  dist::Communicator& comm = *config_.communicator;
  if (comm.world_size() == 1) {
    report.metrics = accumulate_gradients(micro_batches, &report.tokens);
  } else {
    // This rank's slice of each micro-batch (empty at the end of an epoch on the last ranks).
    const int64_t slice = config_.batch_size / comm.world_size(), first = comm.rank() * slice;
    int64_t total_pairs = 0;
    std::vector<std::vector<int64_t>> mine;
    for (const auto& indices : micro_batches) {
      total_pairs += static_cast<int64_t>(indices.size());
      const auto size = static_cast<int64_t>(indices.size());
      mine.emplace_back(indices.begin() + std::min(first, size),
                        indices.begin() + std::min(first + slice, size));
    }
    report.metrics = accumulate_gradients(mine, &report.tokens, total_pairs);
    // Pair-weighted means over the ranks: one all-reduce of the weighted sums.
    DpoMetrics& m = report.metrics;
    const auto w = static_cast<double>(m.pairs);
    std::vector<float> sums = {static_cast<float>(m.rewards_chosen * w),
                               static_cast<float>(m.rewards_rejected * w),
                               static_cast<float>(m.rewards_accuracies * w),
                               static_cast<float>(m.rewards_margins * w),
                               static_cast<float>(m.logps_chosen * w),
                               static_cast<float>(m.logps_rejected * w),
                               static_cast<float>(m.loss * w),
                               static_cast<float>(m.pairs),
                               static_cast<float>(report.tokens)};
    Tensor box = Tensor::from_vector(sums, {static_cast<int64_t>(sums.size())}).to(comm.device());
    comm.all_reduce(box, dist::ReduceOp::sum);
    const std::vector<float> total = box.to_vector();
    const double pairs = total[7];
    m = {.rewards_chosen = total[0] / pairs,
         .rewards_rejected = total[1] / pairs,
         .rewards_accuracies = total[2] / pairs,
         .rewards_margins = total[3] / pairs,
         .logps_chosen = total[4] / pairs,
         .logps_rejected = total[5] / pairs,
         .loss = total[6] / pairs,
         .pairs = static_cast<int64_t>(pairs)};
    report.tokens = static_cast<int64_t>(total[8]);
  }
  UpdateResult update =
      apply_update(*optimizer_, policy_.parameters(), config_.optimizer, schedule_, step_,
                   static_cast<float>(report.metrics.loss), "dpo");
  report.lr = update.lr;
  report.grad_norm = update.grad_norm;
  report.skipped = update.skipped;
  ++step_;
  return report;
}

DpoMetrics DpoTrainer::accumulate_gradients(const std::vector<std::vector<int64_t>>& micro_batches,
                                            int64_t* tokens, int64_t total_pairs) {
  int64_t pairs = 0;
  for (const auto& indices : micro_batches) pairs += static_cast<int64_t>(indices.size());
  // Data parallel: the other ranks' pairs count too, and apply_update's average over the ranks
  // divides the factor `ranks` out again.
  const double ranks = total_pairs > 0 ? config_.communicator->world_size() : 1;
  if (total_pairs > 0) pairs = total_pairs;
  TILLER_CHECK(pairs > 0, "dpo: accumulate_gradients got no pairs");
  const RefLogps* precomputed = reference_ ? nullptr : &train_ref_;
  DpoMetrics total;
  for (const auto& indices : micro_batches) {
    // Each micro-batch's mean loss weighs its share of the update's pairs: the sum is the
    // update's mean over pairs, exactly as one batch would give.
    if (indices.empty()) continue;
    const double weight = static_cast<double>(indices.size()) * ranks / static_cast<double>(pairs);
    total = combine(total, run_batch(train_, indices, precomputed, weight, true, tokens));
  }
  return total;
}

DpoMetrics DpoTrainer::evaluate() {
  DpoMetrics total;
  const RefLogps* precomputed = reference_ ? nullptr : &eval_ref_;
  for (size_t start = 0; start < eval_.size(); start += static_cast<size_t>(config_.batch_size)) {
    std::vector<int64_t> indices;
    for (size_t i = start; i < std::min(eval_.size(), start + config_.batch_size); ++i)
      indices.push_back(static_cast<int64_t>(i));
    total = combine(total, run_batch(eval_, indices, precomputed, 1.0, false, nullptr));
  }
  return total;
}

void DpoTrainer::save_checkpoint(const std::filesystem::path& dir) {
  nlohmann::json state = {{"stage", "dpo"},
                          {"step", step_},
                          {"epoch", epoch_},
                          {"cursor", cursor_},
                          {"pairs", train_.size()},
                          {"batch_size", config_.batch_size},
                          {"grad_accumulation", config_.grad_accumulation},
                          {"seed", config_.seed}};
  save_training_checkpoint(dir, policy_, *optimizer_, state.dump(), tokenizer_);
}

void DpoTrainer::resume(const std::filesystem::path& dir) {
  auto state = nlohmann::json::parse(
      load_training_checkpoint(dir, policy_, *optimizer_, config_.device, "dpo"));
  int64_t saved_pairs = 0, saved_batch = 0, saved_accumulation = 0, step = 0, epoch = 0, cursor = 0;
  uint64_t saved_seed = 0;
  try {
    TILLER_CHECK(state.value("stage", "") == "dpo", "dpo: {} is not a DPO checkpoint",
                 dir.string());
    saved_pairs = saved_integer<int64_t>(state, "pairs");
    saved_batch = saved_integer<int64_t>(state, "batch_size");
    saved_accumulation = saved_integer<int64_t>(state, "grad_accumulation");
    saved_seed = saved_integer<uint64_t>(state, "seed");
    step = saved_integer<int64_t>(state, "step");
    epoch = saved_integer<int64_t>(state, "epoch");
    cursor = saved_integer<int64_t>(state, "cursor");
  } catch (const nlohmann::json::exception& error) {
    fail("dpo: {}: a field is missing or has the wrong type: {}",
         (dir / "trainer_state.json").string(), error.what());
  }
  const auto n = static_cast<int64_t>(train_.size());
  TILLER_CHECK(saved_pairs == n && saved_batch == config_.batch_size &&
                   saved_accumulation == config_.grad_accumulation && saved_seed == config_.seed,
               "dpo: {} was trained on {} pairs, batch {} x {} accumulation, seed {}; this run "
               "has {} pairs, batch {} x {}, seed {}",
               dir.string(), saved_pairs, saved_batch, saved_accumulation, saved_seed, n,
               config_.batch_size, config_.grad_accumulation, config_.seed);
  TILLER_CHECK(step >= 0 && step < kMaxSavedCount && epoch >= 0 && epoch < kMaxSavedCount &&
                   cursor >= 0 && cursor <= n,
               "dpo: {}: step {}, epoch {}, cursor {} is not a position in {} pairs",
               (dir / "trainer_state.json").string(), step, epoch, cursor, n);
  step_ = step;
  epoch_ = epoch;
  cursor_ = cursor;
  order_ = random::epoch_order(static_cast<int64_t>(train_.size()), config_.seed, epoch_);
}

DpoSummary DpoTrainer::train() {
  RunDirectory run(config_.output_dir, config_.keep_checkpoints);
  const bool leader = config_.communicator->is_leader();
  std::unique_ptr<MetricsLog> log_file =
      RunDirectory(leader ? run.root() : "", 0).open_metrics("dpo", step_, "eval_loss");
  MetricsLog& log = *log_file;
  auto log_eval = [&](const DpoMetrics& m) {
    if (m.pairs == 0) return;
    Metrics metrics = as_metrics(m, "eval_");
    log.write(step_, metrics);
    if (config_.log_every > 0)
      log.print(step_, total_steps(), metrics,
                {"eval_loss", "eval_rewards/accuracies", "eval_rewards/margins"});
  };
  if (truncated_pairs_ > 0 && config_.log_every > 0)
    fmt::print("[dpo] {} pairs cut to max_length {} (prompt start dropped)\n", truncated_pairs_,
               config_.max_length);

  DpoSummary summary;
  if (step_ == 0) {  // a resumed run has its step-0 eval in the metrics already
    summary.initial_eval = evaluate();
    log_eval(summary.initial_eval);
  }
  const auto start = std::chrono::steady_clock::now();
  ThroughputWindow window;
  while (step_ < total_steps()) {
    const auto step_start = std::chrono::steady_clock::now();
    DpoStepReport report = train_step();
    const double seconds = seconds_since(step_start);
    window.add(static_cast<double>(report.tokens));
    summary.final_train = report.metrics;
    Metrics metrics = as_metrics(report.metrics, "");
    metrics.add("lr", report.lr)
        .add("grad_norm", report.grad_norm)
        .add("tokens_per_sec", static_cast<double>(report.tokens) / seconds)
        .add("epoch", static_cast<double>(report.epoch));
    if (report.skipped) metrics.add("skipped", 1);
    log.write(step_, metrics);
    if (config_.log_every > 0 && (every(step_, config_.log_every) || step_ == 1)) {
      Metrics shown;
      shown.add("loss", report.metrics.loss)
          .add("acc", report.metrics.rewards_accuracies)
          .add("margin", report.metrics.rewards_margins)
          .add("lr", report.lr)
          .add("tok/s", window.rate());
      log.print(step_, total_steps(), shown);
      window.reset();
    }
    const bool last = step_ == total_steps();
    if (!last && every(step_, config_.eval_every)) log_eval(evaluate());
    if (!last && run.enabled() && every(step_, config_.checkpoint_every)) {
      save_checkpoint(run.checkpoint_path(step_));
      if (leader) run.prune_checkpoints();
    }
  }
  summary.final_eval = evaluate();
  log_eval(summary.final_eval);
  if (run.enabled()) {
    summary.final_model = run.final_path("model");
    save_checkpoint(summary.final_model);
  }
  summary.steps = step_;
  summary.seconds = seconds_since(start);
  return summary;
}

}  // namespace tiller::rl
