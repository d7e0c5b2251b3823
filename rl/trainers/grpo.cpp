// The GRPO trainer (see rl/trainers/grpo.h). Generation-batch bookkeeping (rewards, advantages,
// lengths) is host-side and batch-sized; the forwards run on the policy's device one micro-batch
// at a time.
#include "rl/trainers/grpo.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "kernels/random.h"
#include "rl/data/sft_data.h"
#include "rl/generation/generate.h"
#include "rl/heads/value_model.h"
#include "rl/kit/progress.h"
#include "rl/kit/run_directory.h"
#include "rl/kit/train_checkpoint.h"
#include "rl/trainers/completion_batch.h"

namespace tiller::rl {

namespace {

using Clock = std::chrono::steady_clock;

// Rows [first, last) of per-completion values as a (last - first) tensor.
Tensor rows_of(const std::vector<float>& values, size_t first, size_t last, Device device) {
  std::vector<float> part(values.begin() + first, values.begin() + last);
  return Tensor::from_vector(part, {static_cast<int64_t>(last - first)}, {.device = device});
}

template <typename T>
std::vector<T> slice_rows(const std::vector<T>& all, size_t first, size_t last) {
  return std::vector<T>(all.begin() + first, all.begin() + last);
}

}  // namespace

OptimizerConfig grpo_trainer_optimizer() {
  OptimizerConfig c;
  c.schedule = {.kind = optim::LrSchedule::Kind::linear, .peak_lr = 1e-6f, .min_lr = 0.f,
                .warmup_steps = 0};
  c.weight_decay = 0.f;
  c.beta1 = 0.9f;
  c.beta2 = 0.999f;
  c.clip_norm = 1.f;
  return c;
}

void GrpoConfig::validate() const {
  optimizer.validate("grpo");
  TILLER_CHECK(steps > 0, "grpo: steps must be > 0, got {}", steps);
  TILLER_CHECK(prompts_per_step > 0, "grpo: prompts_per_step must be > 0, got {}",
               prompts_per_step);
  TILLER_CHECK(num_generations >= 2, "grpo: num_generations must be >= 2, got {}", num_generations);
  TILLER_CHECK(micro_batch_size > 0, "grpo: micro_batch_size must be > 0, got {}",
               micro_batch_size);
  TILLER_CHECK(num_iterations > 0, "grpo: num_iterations must be > 0, got {}", num_iterations);
  TILLER_CHECK(max_completion_length > 0, "grpo: max_completion_length must be > 0, got {}",
               max_completion_length);
  TILLER_CHECK(temperature > 0.f, "grpo: temperature must be > 0, got {}", temperature);
  TILLER_CHECK(end_token >= 0, "grpo: end_token must be set (the token that ends a completion)");
  TILLER_CHECK(keep_checkpoints >= 0, "grpo: keep_checkpoints must be >= 0, got {}",
               keep_checkpoints);
  TILLER_CHECK(loss.max_completion_length == max_completion_length,
               "grpo: loss.max_completion_length ({}) must equal max_completion_length ({})",
               loss.max_completion_length, max_completion_length);
  rl::validate(loss);
}

GrpoTrainer::GrpoTrainer(GrpoConfig config, Transformer policy, std::vector<GrpoReward> rewards,
                         std::vector<std::vector<int32_t>> prompts,
                         std::optional<Tokenizer> tokenizer)
    : config_(std::move(config)),
      policy_(std::move(policy)),
      rewards_(std::move(rewards)),
      prompts_(std::move(prompts)),
      tokenizer_(std::move(tokenizer)) {
  config_.validate();
  const ModelConfig& mc = policy_.config();
  TILLER_CHECK(!rewards_.empty(), "grpo: no reward functions");
  for (size_t f = 0; f < rewards_.size(); ++f)
    TILLER_CHECK(static_cast<bool>(rewards_[f].function) && !rewards_[f].name.empty(),
                 "grpo: reward function {} is empty or unnamed", f);
  TILLER_CHECK(!prompts_.empty(), "grpo: no prompts given");
  TILLER_CHECK(config_.end_token < mc.vocab_size, "grpo: end_token {} is outside [0, {})",
               config_.end_token, mc.vocab_size);
  for (size_t i = 0; i < prompts_.size(); ++i) {
    const auto length = static_cast<int64_t>(prompts_[i].size());
    TILLER_CHECK(length > 0, "grpo: prompt {} is empty", i);
    TILLER_CHECK(length + config_.max_completion_length <= mc.max_seq_len,
                 "grpo: prompt {} has {} tokens; with max_completion_length {} that exceeds the "
                 "model's max_seq_len {}",
                 i, length, config_.max_completion_length, mc.max_seq_len);
  }
  schedule_ = resolve_schedule(config_.optimizer.schedule, config_.steps * config_.num_iterations,
                               "grpo", config_.log_every == 0);
  if (policy_.device() != config_.device) policy_.to(config_.device);
  if (config_.loss.beta > 0.f) {  // β = 0 (TRL's default) needs no reference model at all
    reference_ = std::make_unique<Transformer>(copy_transformer(policy_));
    for (const auto& p : reference_->parameters()) Tensor(p.tensor).requires_grad_(false);
  }
  optimizer_ = make_optimizer(policy_.parameters(), config_.optimizer, config_.seed);
  order_ = random::epoch_order(static_cast<int64_t>(prompts_.size()), config_.seed, epoch_);
}

GrpoTrainer::~GrpoTrainer() = default;

std::vector<size_t> GrpoTrainer::next_prompts() {
  std::vector<size_t> picked;
  const auto n = static_cast<int64_t>(prompts_.size());
  for (int64_t i = 0; i < config_.prompts_per_step; ++i) {
    if (cursor_ >= n) {
      ++epoch_;
      cursor_ = 0;
      order_ = random::epoch_order(n, config_.seed, epoch_);
    }
    picked.push_back(static_cast<size_t>(order_[cursor_++]));
  }
  return picked;
}

GrpoStepReport GrpoTrainer::train_step() {
  GrpoStepReport report;
  report.step = step_ + 1;
  const int64_t G = config_.num_generations;

  // 1. Generation: each prompt G times, consecutive (a group is G adjacent rows).
  const auto generation_start = Clock::now();
  std::vector<std::vector<int32_t>> prompts;
  for (size_t p : next_prompts())
    for (int64_t g = 0; g < G; ++g) prompts.push_back(prompts_[p]);
  GenerationConfig generation;
  generation.max_new_tokens = config_.max_completion_length;
  generation.sampling.temperature = config_.temperature;
  generation.stop_tokens = {config_.end_token};
  generation.seed = config_.seed * 1000003ull + static_cast<uint64_t>(step_);
  GenerationResult generated = generate(policy_, prompts, generation);
  const std::vector<std::vector<int32_t>>& completions = generated.tokens;
  const double generation_seconds = seconds_since(generation_start);

  // 2. Rewards and advantages.
  const auto training_start = Clock::now();
  std::vector<std::vector<float>> per_function;
  std::vector<float> weights;
  for (const GrpoReward& r : rewards_) {
    per_function.push_back(r.function(prompts, completions));
    weights.push_back(r.weight);
  }
  std::vector<float> rewards = weighted_rewards(per_function, weights);
  GroupAdvantages advantages = group_advantages(rewards, G, config_.scale_rewards);

  // 3. Fixed log-probs of this generation batch, micro-batch by micro-batch.
  const size_t N = prompts.size(), micro = static_cast<size_t>(config_.micro_batch_size);
  std::vector<CompletionBatch> batches;
  int64_t tokens_in_batch = 0;
  for (size_t first = 0; first < N; first += micro) {
    const size_t last = std::min(N, first + micro);
    batches.push_back(make_completion_batch(slice_rows(prompts, first, last),
                                            slice_rows(completions, first, last),
                                            PaddingSide::right, config_.device));
  }
  for (const auto& c : completions) tokens_in_batch += static_cast<int64_t>(c.size());
  std::vector<Tensor> old_logps(batches.size()), ref_logps(batches.size());
  {
    NoGradGuard no_grad;
    for (size_t i = 0; i < batches.size(); ++i) {
      if (config_.num_iterations > 1)
        old_logps[i] = completion_token_logps(policy_, batches[i], config_.temperature);
      if (reference_)
        ref_logps[i] = completion_token_logps(*reference_, batches[i], config_.temperature);
    }
  }

  // 4. num_iterations optimizer steps on the batch.
  double loss_sum = 0, entropy_sum = 0, kl_sum = 0, low = 0, high = 0, region = 0;
  int64_t counted_tokens = 0;
  float grad_norm = 0.f, lr = 0.f;
  int64_t skipped = 0;
  for (int64_t iteration = 0; iteration < config_.num_iterations; ++iteration) {
    optimizer_->zero_grad();
    loss_sum = entropy_sum = kl_sum = low = high = region = 0;
    counted_tokens = 0;
    for (size_t i = 0; i < batches.size(); ++i) {
      const size_t first = i * micro, last = std::min(N, first + micro);
      Tensor entropy;
      GrpoLossInputs in;
      in.logp = completion_token_logps(policy_, batches[i], config_.temperature, &entropy);
      in.old_logp = old_logps[i];
      in.ref_logp = ref_logps[i];
      in.advantages = rows_of(advantages.advantages, first, last, config_.device);
      in.mask = batches[i].mask;
      in.accumulation_steps = static_cast<int64_t>(batches.size());
      in.tokens_in_batch = tokens_in_batch;
      GrpoLoss loss = grpo_loss(in, config_.loss);
      loss.loss.backward();
      // Token-weighted means over the whole generation batch, as TRL's global_masked_mean.
      const auto t = static_cast<double>(loss.tokens);
      loss_sum += loss.loss.item();
      entropy_sum += sum(entropy).item();
      kl_sum += loss.kl * t;
      low += loss.clip_low * t;
      high += loss.clip_high * t;
      region += loss.clip_region * t;
      counted_tokens += loss.tokens;
    }
    UpdateResult update = apply_update(*optimizer_, policy_.parameters(), config_.optimizer,
                                       schedule_, updates_, static_cast<float>(loss_sum), "grpo");
    lr = update.lr;
    grad_norm = update.grad_norm;
    skipped += update.skipped ? 1 : 0;
    ++updates_;
  }
  const double training_seconds = seconds_since(training_start);
  const double tokens = std::max<double>(static_cast<double>(counted_tokens), 1.0);

  int64_t clipped = 0;
  for (bool stopped : generated.stopped) clipped += stopped ? 0 : 1;
  Metrics& m = report.metrics;
  m.add("loss", loss_sum).add("reward", advantages.reward).add("reward_std", advantages.reward_std);
  for (size_t f = 0; f < rewards_.size(); ++f) {
    m.add("rewards/" + rewards_[f].name + "/mean", mean_of(per_function[f]));
    m.add("rewards/" + rewards_[f].name + "/std", unbiased_std(per_function[f]));
  }
  m.add("frac_reward_zero_std", advantages.frac_reward_zero_std);
  if (reference_) m.add("kl", kl_sum / tokens);
  m.add("entropy", entropy_sum / tokens)
      .add("clip_ratio/low_mean", low / tokens)
      .add("clip_ratio/high_mean", high / tokens)
      .add("clip_ratio/region_mean", region / tokens)
      .add("completions/mean_length", static_cast<double>(tokens_in_batch) / static_cast<double>(N))
      .add("completions/clipped_ratio", static_cast<double>(clipped) / static_cast<double>(N))
      .add("lr", lr)
      .add("grad_norm", grad_norm)
      .add("generation_seconds", generation_seconds)
      .add("training_seconds", training_seconds);
  if (skipped > 0) m.add("skipped", static_cast<double>(skipped));
  report.reward = advantages.reward;
  ++step_;
  return report;
}

void GrpoTrainer::save_checkpoint(const std::filesystem::path& dir) {
  nlohmann::json state = {{"stage", "grpo"},
                          {"step", step_},
                          {"updates", updates_},
                          {"epoch", epoch_},
                          {"cursor", cursor_},
                          {"prompts", prompts_.size()},
                          {"num_generations", config_.num_generations},
                          {"prompts_per_step", config_.prompts_per_step},
                          {"seed", config_.seed}};
  save_training_checkpoint(dir, policy_, *optimizer_, state.dump(), tokenizer_);
}

void GrpoTrainer::resume(const std::filesystem::path& dir) {
  auto state = nlohmann::json::parse(
      load_training_checkpoint(dir, policy_, *optimizer_, config_.device, "grpo"));
  int64_t saved_prompts = 0, saved_generations = 0, saved_per_step = 0;
  int64_t step = 0, updates = 0, epoch = 0, cursor = 0;
  uint64_t saved_seed = 0;
  try {
    TILLER_CHECK(state.value("stage", "") == "grpo", "grpo: {} is not a GRPO checkpoint",
                 dir.string());
    saved_prompts = saved_integer<int64_t>(state, "prompts");
    saved_generations = saved_integer<int64_t>(state, "num_generations");
    saved_per_step = saved_integer<int64_t>(state, "prompts_per_step");
    saved_seed = saved_integer<uint64_t>(state, "seed");
    step = saved_integer<int64_t>(state, "step");
    updates = saved_integer<int64_t>(state, "updates");
    epoch = saved_integer<int64_t>(state, "epoch");
    cursor = saved_integer<int64_t>(state, "cursor");
  } catch (const nlohmann::json::exception& error) {
    fail("grpo: {}: a field is missing or has the wrong type: {}",
         (dir / "trainer_state.json").string(), error.what());
  }
  const auto n = static_cast<int64_t>(prompts_.size());
  TILLER_CHECK(saved_prompts == n && saved_generations == config_.num_generations &&
                   saved_per_step == config_.prompts_per_step && saved_seed == config_.seed,
               "grpo: {} was trained on {} prompts, {} per step x {} generations, seed {}; this "
               "run has {} prompts, {} x {}, seed {}",
               dir.string(), saved_prompts, saved_per_step, saved_generations, saved_seed, n,
               config_.prompts_per_step, config_.num_generations, config_.seed);
  TILLER_CHECK(step >= 0 && step < kMaxSavedCount && updates >= 0 && updates < kMaxSavedCount &&
                   epoch >= 0 && epoch < kMaxSavedCount && cursor >= 0 && cursor <= n,
               "grpo: {}: step {}, updates {}, epoch {}, cursor {} is not a position in {} prompts",
               (dir / "trainer_state.json").string(), step, updates, epoch, cursor, n);
  step_ = step;
  updates_ = updates;
  epoch_ = epoch;
  cursor_ = cursor;
  order_ = random::epoch_order(static_cast<int64_t>(prompts_.size()), config_.seed, epoch_);
}

std::vector<GrpoStepReport> GrpoTrainer::train() {
  RunDirectory run(config_.output_dir, config_.keep_checkpoints);
  std::unique_ptr<MetricsLog> log = run.open_metrics("grpo", step_, "eval_reward");
  std::vector<GrpoStepReport> reports;
  while (step_ < config_.steps) {
    GrpoStepReport report = train_step();
    log->write(step_, report.metrics);
    if (config_.log_every > 0 && (every(step_, config_.log_every) || step_ == 1)) {
      Metrics shown;
      shown.add("reward", report.metrics.get("reward"))
          .add("reward_std", report.metrics.get("reward_std"))
          .add("entropy", report.metrics.get("entropy"))
          .add("length", report.metrics.get("completions/mean_length"))
          .add("gen_s", report.metrics.get("generation_seconds"))
          .add("train_s", report.metrics.get("training_seconds"));
      if (reference_) shown.add("kl", report.metrics.get("kl"));
      log->print(step_, config_.steps, shown);
    }
    const bool last = step_ == config_.steps;
    if (!last && run.enabled() && every(step_, config_.checkpoint_every)) {
      save_checkpoint(run.checkpoint_path(step_));
      run.prune_checkpoints();
    }
    reports.push_back(std::move(report));
  }
  if (run.enabled()) save_checkpoint(run.final_path("model"));
  return reports;
}

}  // namespace tiller::rl
