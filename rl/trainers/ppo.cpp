// The PPO trainer (see rl/ppo.h). Rollout-sized bookkeeping (scores, masks, advantages) is done
// on the host in (N, R) CPU tensors; the models' forwards run on their device with the rows of one
// micro-batch gathered from those tensors.
#include "rl/trainers/ppo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include <nlohmann/json.hpp>

#include "kernels/random.h"
#include "rl/generation/generate.h"
#include "rl/kit/progress.h"
#include "rl/kit/run_directory.h"
#include "rl/kit/train_checkpoint.h"

namespace tiller::rl {

namespace {

// Rollout rows as model inputs: left-padded prompts then right-padded responses, (n, P + R) i32.
struct SequenceBatch {
  Tensor ids;
  ForwardOptions options;
  Tensor
      targets;  // (n, R) response tokens, 0 on padding (any valid id: those positions are masked)
};

SequenceBatch make_batch(const Rollout& rollout, const std::vector<size_t>& rows, Device device) {
  const auto n = static_cast<int64_t>(rows.size());
  const int64_t P = rollout.prompt_columns, R = rollout.response_columns, L = P + R;
  std::vector<int32_t> ids(n * L, 0), mask(n * L, 0), positions(n * L, 0), targets(n * R, 0);
  for (int64_t i = 0; i < n; ++i) {
    const auto& prompt = rollout.prompts[rows[i]];
    const auto& response = rollout.responses[rows[i]];
    const auto pad = P - static_cast<int64_t>(prompt.size());
    for (size_t t = 0; t < prompt.size(); ++t) {
      ids[i * L + pad + t] = prompt[t];
      mask[i * L + pad + t] = 1;
      positions[i * L + pad + t] = static_cast<int32_t>(t);
    }
    for (int64_t t = 0; t < R; ++t) {
      // Right padding continues the position count; it is masked and causally after every real
      // token, so its value is irrelevant as long as it stays inside the position table.
      positions[i * L + P + t] = static_cast<int32_t>(prompt.size() + t);
      if (t >= static_cast<int64_t>(response.size())) continue;
      ids[i * L + P + t] = response[t];
      mask[i * L + P + t] = 1;
      targets[i * R + t] = response[t];
    }
  }
  TensorOptions i32{.dtype = DType::i32, .device = device};
  SequenceBatch batch;
  batch.ids = Tensor::from_ints(ids, {n, L}, i32);
  batch.options.positions = Tensor::from_ints(positions, {n, L}, i32);
  batch.options.key_padding_mask = Tensor::from_ints(mask, {n, L}, i32);
  batch.targets = Tensor::from_ints(targets, {n, R}, i32);
  return batch;
}

// Rows of an (N, R) CPU tensor, on `device`.
Tensor gather_rows(const Tensor& table, const std::vector<size_t>& rows, Device device) {
  const int64_t R = table.size(1);
  std::vector<float> all = table.to_vector(), out;
  out.reserve(rows.size() * R);
  for (size_t row : rows) out.insert(out.end(), all.begin() + row * R, all.begin() + (row + 1) * R);
  return Tensor::from_vector(out, {static_cast<int64_t>(rows.size()), R}, {.device = device});
}

// Logits that predict the response tokens, at the sampling temperature: (n, R, V).
Tensor response_logits(Transformer& model, const SequenceBatch& batch, int64_t P, int64_t R,
                       float temperature) {
  Tensor logits = model.forward(batch.ids, batch.options);
  return scale(slice(logits, 1, P - 1, P - 1 + R), 1.f / temperature);
}

Tensor response_values(ValueModel& model, const SequenceBatch& batch, int64_t P, int64_t R) {
  return slice(model.values(batch.ids, batch.options), 1, P - 1, P - 1 + R);
}

// Per-sequence sums of a masked (N, R) CPU tensor.
std::vector<double> row_sums(const Tensor& x, const Tensor& mask) {
  const int64_t N = x.size(0), R = x.size(1);
  std::vector<float> xv = x.to_vector(), mv = mask.to_vector();
  std::vector<double> sums(N, 0.0);
  for (int64_t b = 0; b < N; ++b)
    for (int64_t t = 0; t < R; ++t) sums[b] += xv[b * R + t] * mv[b * R + t];
  return sums;
}

double average(const std::vector<double>& values) {
  if (values.empty()) return 0.0;
  return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

}  // namespace

BatchReward batch_reward(TokenReward reward) {
  TILLER_CHECK(static_cast<bool>(reward), "batch_reward: the reward function is empty");
  return [reward = std::move(reward)](const std::vector<std::vector<int32_t>>& prompts,
                                      const std::vector<std::vector<int32_t>>& responses) {
    std::vector<float> scores(prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) scores[i] = reward(prompts[i], responses[i]);
    return scores;
  };
}

BatchReward batch_reward(const Tokenizer& tokenizer, TextReward reward) {
  TILLER_CHECK(static_cast<bool>(reward), "batch_reward: the reward function is empty");
  return batch_reward(
      TokenReward([tokenizer, reward = std::move(reward)](const std::vector<int32_t>& prompt,
                                                          const std::vector<int32_t>& response) {
        return reward(tokenizer.decode(prompt), tokenizer.decode(response));
      }));
}

void PpoConfig::validate() const {
  TILLER_CHECK(iterations >= 0, "ppo: iterations must be >= 0, got {}", iterations);
  TILLER_CHECK(rollout_batch_size >= 2,
               "ppo: rollout_batch_size must be >= 2 (advantages are "
               "whitened over the batch), got {}",
               rollout_batch_size);
  TILLER_CHECK(minibatch_size >= 1 && rollout_batch_size % minibatch_size == 0,
               "ppo: minibatch_size {} must divide rollout_batch_size {}", minibatch_size,
               rollout_batch_size);
  TILLER_CHECK(micro_batch_size >= 1 && minibatch_size % micro_batch_size == 0,
               "ppo: micro_batch_size {} must divide minibatch_size {}", micro_batch_size,
               minibatch_size);
  TILLER_CHECK(ppo_epochs >= 1, "ppo: ppo_epochs must be >= 1, got {}", ppo_epochs);
  TILLER_CHECK(max_new_tokens >= 1, "ppo: max_new_tokens must be >= 1, got {}", max_new_tokens);
  TILLER_CHECK(temperature > 0.f,
               "ppo: temperature must be > 0 (log-probs are taken at the "
               "sampling temperature), got {}",
               temperature);
  TILLER_CHECK(end_token >= 0,
               "ppo: end_token must be set (the token that ends a response), "
               "got {}",
               end_token);
  TILLER_CHECK(missing_end_penalty >= 0.f, "ppo: missing_end_penalty must be >= 0, got {}",
               missing_end_penalty);
  TILLER_CHECK(kl_coef >= 0.f, "ppo: kl_coef must be >= 0, got {}", kl_coef);
  TILLER_CHECK(kl_target >= 0.f, "ppo: kl_target must be >= 0 (0 = fixed coefficient), got {}",
               kl_target);
  TILLER_CHECK(gamma >= 0.f && gamma <= 1.f, "ppo: gamma must be in [0, 1], got {}", gamma);
  TILLER_CHECK(lambda >= 0.f && lambda <= 1.f, "ppo: lambda must be in [0, 1], got {}", lambda);
  TILLER_CHECK(clip_range > 0.f, "ppo: clip_range must be > 0, got {}", clip_range);
  TILLER_CHECK(value_clip_range > 0.f, "ppo: value_clip_range must be > 0, got {}",
               value_clip_range);
  TILLER_CHECK(vf_coef >= 0.f, "ppo: vf_coef must be >= 0, got {}", vf_coef);
  TILLER_CHECK(log_every >= 0 && checkpoint_every >= 0 && keep_checkpoints >= 0,
               "ppo: log_every {}, checkpoint_every {} and keep_checkpoints {} must be >= 0",
               log_every, checkpoint_every, keep_checkpoints);
  policy_optimizer.validate("ppo (policy optimizer)");
  value_optimizer.validate("ppo (value optimizer)");
}

PpoTrainer::PpoTrainer(PpoConfig config, Transformer policy, BatchReward reward,
                       std::vector<std::vector<int32_t>> prompts)
    // `policy` is passed on as a handle copy (shared weights): moving it would race with the
    // deep copy the critic takes from it, as argument evaluation order is unspecified.
    : PpoTrainer(std::move(config), policy, ValueModel::from_backbone(policy), std::move(reward),
                 std::move(prompts)) {}

PpoTrainer::PpoTrainer(PpoConfig config, Transformer policy, ValueModel value, BatchReward reward,
                       std::vector<std::vector<int32_t>> prompts)
    : config_(std::move(config)),
      policy_(std::move(policy)),
      reference_(copy_transformer(policy_)),
      value_(std::move(value)),
      reward_(std::move(reward)),
      prompts_(std::move(prompts)),
      kl_controller_(config_.kl_coef, config_.kl_target, config_.kl_horizon) {
  config_.validate();
  const ModelConfig& mc = policy_.config();
  TILLER_CHECK(static_cast<bool>(reward_), "ppo: the reward function is empty");
  TILLER_CHECK(!prompts_.empty(), "ppo: no prompts given");
  TILLER_CHECK(config_.end_token < mc.vocab_size,
               "ppo: end_token {} is outside the vocabulary "
               "[0, {})",
               config_.end_token, mc.vocab_size);
  TILLER_CHECK(value_.device() == policy_.device(),
               "ppo: the value model is on {} but the policy is on {}", value_.device().str(),
               policy_.device().str());
  for (size_t i = 0; i < prompts_.size(); ++i) {
    const auto length = static_cast<int64_t>(prompts_[i].size());
    TILLER_CHECK(length > 0, "ppo: prompt {} is empty", i);
    TILLER_CHECK(length + config_.max_new_tokens <= mc.max_seq_len,
                 "ppo: prompt {} has {} tokens; with max_new_tokens {} that exceeds the model's "
                 "max_seq_len {}",
                 i, length, config_.max_new_tokens, mc.max_seq_len);
  }
  for (const auto& p : reference_.parameters()) Tensor(p.tensor).requires_grad_(false);
  const int64_t updates = config_.iterations * config_.updates_per_iteration();
  const bool quiet = config_.log_every == 0;
  policy_schedule_ = resolve_schedule(config_.policy_optimizer.schedule, updates, "ppo", quiet);
  value_schedule_ = resolve_schedule(config_.value_optimizer.schedule, updates, "ppo", quiet);
  policy_optimizer_ = make_optimizer(policy_.parameters(), config_.policy_optimizer, config_.seed);
  value_optimizer_ = make_optimizer(value_.parameters(), config_.value_optimizer, config_.seed);
  prompt_order_ = random::epoch_order(static_cast<int64_t>(prompts_.size()), config_.seed, 0);
}

PpoTrainer::~PpoTrainer() = default;

std::vector<size_t> PpoTrainer::next_prompt_indices() {
  std::vector<size_t> indices;
  for (int64_t i = 0; i < config_.rollout_batch_size; ++i) {
    if (prompt_cursor_ == static_cast<int64_t>(prompt_order_.size())) {
      prompt_order_ =
          random::epoch_order(static_cast<int64_t>(prompts_.size()), config_.seed, ++prompt_pass_);
      prompt_cursor_ = 0;
    }
    indices.push_back(static_cast<size_t>(prompt_order_[prompt_cursor_++]));
  }
  return indices;
}

Rollout PpoTrainer::collect_rollout() {
  Rollout rollout;
  for (size_t index : next_prompt_indices()) rollout.prompts.push_back(prompts_[index]);
  const auto N = static_cast<int64_t>(rollout.prompts.size());

  GenerationConfig generation{.max_new_tokens = config_.max_new_tokens,
                              .sampling = {.temperature = config_.temperature},
                              .stop_tokens = {config_.end_token},
                              .seed = random::derive(random::derive(config_.seed, "ppo rollouts"),
                                                     static_cast<uint64_t>(iteration_))};
  auto start = std::chrono::steady_clock::now();
  GenerationResult generated = generate(policy_, rollout.prompts, generation);
  rollout.generation_seconds = seconds_since(start);
  rollout.generated_tokens = generated.generated_tokens;
  rollout.responses = std::move(generated.tokens);
  rollout.ended = generated.stopped;

  rollout.raw_scores = reward_(rollout.prompts, rollout.responses);
  TILLER_CHECK(static_cast<int64_t>(rollout.raw_scores.size()) == N,
               "ppo: the reward returned {} scores for {} responses", rollout.raw_scores.size(), N);
  rollout.scores = rollout.raw_scores;
  for (int64_t b = 0; b < N; ++b) {
    TILLER_CHECK(std::isfinite(rollout.raw_scores[b]), "ppo: the reward of response {} is {}", b,
                 rollout.raw_scores[b]);
    if (!rollout.ended[b]) rollout.scores[b] -= config_.missing_end_penalty;
  }
  if (config_.whiten_scores) {
    Tensor scores = Tensor::from_vector(rollout.scores, {1, N});
    rollout.scores = masked_whiten(scores, Tensor::ones({1, N})).to_vector();
  }

  for (int64_t b = 0; b < N; ++b) {
    rollout.prompt_columns =
        std::max<int64_t>(rollout.prompt_columns, static_cast<int64_t>(rollout.prompts[b].size()));
    rollout.response_columns = std::max<int64_t>(rollout.response_columns,
                                                 static_cast<int64_t>(rollout.responses[b].size()));
  }
  const int64_t P = rollout.prompt_columns, R = rollout.response_columns;
  std::vector<float> mask(N * R, 0.f), sampler(N * R, 0.f);
  for (int64_t b = 0; b < N; ++b)
    for (size_t t = 0; t < rollout.responses[b].size(); ++t) {
      mask[b * R + t] = 1.f;
      sampler[b * R + t] = generated.logprobs[b][t];
    }
  rollout.mask = Tensor::from_vector(mask, {N, R});
  rollout.sampler_logprobs = Tensor::from_vector(sampler, {N, R});

  // Policy and reference log-probs and values, micro-batch by micro-batch.
  NoGradGuard no_grad;
  std::vector<float> logprobs, ref_logprobs, values;
  for (int64_t first = 0; first < N; first += config_.micro_batch_size) {
    std::vector<size_t> rows;
    for (int64_t b = first; b < std::min(N, first + config_.micro_batch_size); ++b)
      rows.push_back(static_cast<size_t>(b));
    SequenceBatch batch = make_batch(rollout, rows, policy_.device());
    Tensor micro_mask = gather_rows(rollout.mask, rows, policy_.device());
    auto append = [&](std::vector<float>& out, const Tensor& x) {
      std::vector<float> v = mul(x, micro_mask).to_vector();
      out.insert(out.end(), v.begin(), v.end());
    };
    append(logprobs, token_logprobs(response_logits(policy_, batch, P, R, config_.temperature),
                                    batch.targets));
    append(ref_logprobs,
           token_logprobs(response_logits(reference_, batch, P, R, config_.temperature),
                          batch.targets));
    append(values, response_values(value_, batch, P, R));
  }
  rollout.logprobs = Tensor::from_vector(logprobs, {N, R});
  rollout.ref_logprobs = Tensor::from_vector(ref_logprobs, {N, R});
  rollout.values = Tensor::from_vector(values, {N, R});
  compute_advantages(rollout);
  return rollout;
}

void PpoTrainer::compute_advantages(Rollout& rollout) const {
  NoGradGuard no_grad;
  const auto N = static_cast<int64_t>(rollout.scores.size());
  rollout.kl =
      mul(kl_estimate(rollout.logprobs, rollout.ref_logprobs, config_.kl_estimator), rollout.mask);
  rollout.rewards = shape_rewards(Tensor::from_vector(rollout.scores, {N}), rollout.kl,
                                  rollout.mask, kl_controller_.value());
  if (config_.whiten_rewards)
    rollout.rewards = masked_whiten(rollout.rewards, rollout.mask, /*shift_mean=*/false);
  Advantages advantages =
      gae(rollout.rewards, rollout.values, rollout.mask, config_.gamma, config_.lambda);
  rollout.advantages = masked_whiten(advantages.advantages, rollout.mask);
  rollout.returns = advantages.returns;
}

// Sums over the micro-batches of one iteration, averaged for the metrics.
struct PpoTrainer::TrainingStats {
  double policy_loss = 0, value_loss = 0, clipfrac = 0, approxkl = 0, ratio = 0, value_clipfrac = 0,
         entropy = 0;
  int64_t micro_batches = 0;
  int64_t skipped = 0;     // model updates skipped for a non-finite loss or norm
  double last_loss = 0;    // the current minibatch's loss, summed over its micro-batches
  int64_t tokens = 0;  // real prompt + response tokens through forward and backward
  double seconds = 0;
};

void PpoTrainer::optimise(const Rollout& rollout, TrainingStats& stats) {
  const auto N = static_cast<int64_t>(rollout.prompts.size());
  const int64_t P = rollout.prompt_columns, R = rollout.response_columns;
  const int64_t accumulation = config_.minibatch_size / config_.micro_batch_size;
  const Device device = policy_.device();
  auto start = std::chrono::steady_clock::now();
  const uint64_t minibatch_seed = random::derive(
      random::derive(config_.seed, "ppo minibatches"), static_cast<uint64_t>(iteration_));
  for (int64_t epoch = 0; epoch < config_.ppo_epochs; ++epoch) {
    std::vector<size_t> order;
    for (int64_t row : random::epoch_order(N, minibatch_seed, epoch))
      order.push_back(static_cast<size_t>(row));
    for (int64_t first = 0; first < N; first += config_.minibatch_size) {
      policy_optimizer_->zero_grad();
      value_optimizer_->zero_grad();
      for (int64_t micro = 0; micro < accumulation; ++micro) {
        const int64_t begin = first + micro * config_.micro_batch_size;
        std::vector<size_t> rows(order.begin() + begin,
                                 order.begin() + begin + config_.micro_batch_size);
        SequenceBatch batch = make_batch(rollout, rows, device);
        Tensor mask = gather_rows(rollout.mask, rows, device);
        Tensor logits = response_logits(policy_, batch, P, R, config_.temperature);
        PolicyLoss policy_loss = clipped_policy_loss(
            token_logprobs(logits, batch.targets), gather_rows(rollout.logprobs, rows, device),
            gather_rows(rollout.advantages, rows, device), mask, config_.clip_range);
        ValueLoss value_loss = clipped_value_loss(
            response_values(value_, batch, P, R), gather_rows(rollout.values, rows, device),
            gather_rows(rollout.returns, rows, device), mask, config_.value_clip_range);
        Tensor loss = scale(add(policy_loss.loss, scale(value_loss.loss, config_.vf_coef)),
                            1.f / static_cast<float>(accumulation));
        loss.backward();

        NoGradGuard no_grad;
        stats.last_loss = micro == 0 ? loss.item() : stats.last_loss + loss.item();
        stats.policy_loss += policy_loss.loss.item();
        stats.value_loss += value_loss.loss.item();
        stats.clipfrac += policy_loss.clipfrac;
        stats.approxkl += policy_loss.approxkl;
        stats.ratio += policy_loss.ratio_mean;
        stats.value_clipfrac += value_loss.clipfrac;
        stats.entropy += masked_mean(entropy(logits.detach()), mask).item();
        stats.tokens +=
            static_cast<int64_t>(sum(batch.options.key_padding_mask.to(DType::f32)).item());
        ++stats.micro_batches;
      }
      // Each model's own norm, clip and schedule; one loss (its finiteness checked for both).
      const float loss_value = static_cast<float>(stats.last_loss);
      stats.skipped += apply_update(*policy_optimizer_, policy_.parameters(),
                                    config_.policy_optimizer, policy_schedule_, updates_,
                                    loss_value, "ppo (policy)")
                           .skipped;
      stats.skipped += apply_update(*value_optimizer_, value_.parameters(),
                                    config_.value_optimizer, value_schedule_, updates_, loss_value,
                                    "ppo (value)")
                           .skipped;
      ++updates_;
    }
  }
  stats.seconds = seconds_since(start);
}

Metrics PpoTrainer::train_iteration() {
  Rollout rollout = collect_rollout();
  TrainingStats stats;
  optimise(rollout, stats);

  const double kl_coef = kl_controller_.value();
  const std::vector<double> sequence_kl = row_sums(rollout.kl, rollout.mask);
  const std::vector<double> sequence_logprob = row_sums(rollout.logprobs, rollout.mask);
  const std::vector<double> lengths = row_sums(rollout.mask, rollout.mask);
  std::vector<double> scores(rollout.scores.begin(), rollout.scores.end());
  std::vector<double> raw_scores(rollout.raw_scores.begin(), rollout.raw_scores.end());
  double ended = 0;
  for (bool e : rollout.ended) ended += e ? 1 : 0;
  const double mean_kl = average(sequence_kl);
  const double micro = static_cast<double>(std::max<int64_t>(stats.micro_batches, 1));

  Metrics metrics;
  metrics.add("objective/kl", mean_kl)
      .add("objective/entropy", -average(sequence_logprob))
      .add("objective/non_score_reward", -kl_coef * mean_kl)
      .add("objective/rlhf_reward", average(scores) - kl_coef * mean_kl)
      .add("objective/scores", average(scores))
      .add("objective/raw_scores", average(raw_scores))
      .add("objective/kl_coef", kl_coef)
      .add("policy/approxkl", stats.approxkl / micro)
      .add("policy/clipfrac", stats.clipfrac / micro)
      .add("policy/entropy", stats.entropy / micro)
      .add("loss/policy", stats.policy_loss / micro)
      .add("loss/value", stats.value_loss / micro)
      .add("val/clipfrac", stats.value_clipfrac / micro)
      .add("val/ratio", stats.ratio / micro)
      .add("val/mean", masked_mean(rollout.values, rollout.mask).item())
      .add("response/length", average(lengths))
      .add("response/ended_fraction", ended / static_cast<double>(lengths.size()))
      .add("tokens_per_s/rollout", static_cast<double>(rollout.generated_tokens) /
                                       std::max(rollout.generation_seconds, 1e-9))
      .add("tokens_per_s/train", static_cast<double>(stats.tokens) / std::max(stats.seconds, 1e-9))
      .add("lr", policy_schedule_.lr(std::max<int64_t>(updates_ - 1, 0)));
  if (stats.skipped > 0) metrics.add("skipped_updates", static_cast<double>(stats.skipped));

  kl_controller_.update(static_cast<float>(mean_kl), config_.rollout_batch_size);
  ++iteration_;
  return metrics;
}

Metrics PpoTrainer::train() {
  RunDirectory run(config_.output_dir, config_.keep_checkpoints);
  std::unique_ptr<MetricsLog> log = run.open_metrics("ppo", iteration_, "");
  Metrics last;
  while (iteration_ < config_.iterations) {
    last = train_iteration();
    log->write(iteration_, last);
    if (config_.log_every > 0 &&
        (every(iteration_, config_.log_every) || iteration_ == config_.iterations))
      log->print(iteration_, config_.iterations, last,
                 {"objective/scores", "objective/kl", "objective/rlhf_reward", "policy/clipfrac",
                  "loss/value", "response/length", "tokens_per_s/rollout"});
    if (iteration_ < config_.iterations && run.enabled() &&
        every(iteration_, config_.checkpoint_every)) {
      save_checkpoint(run.checkpoint_path(iteration_));
      run.prune_checkpoints();
    }
  }
  if (run.enabled()) save_checkpoint(run.final_path("policy"));
  return last;
}

void PpoTrainer::save_policy(const std::filesystem::path& dir) const {
  policy_.save_pretrained(dir);
  if (tokenizer_) tokenizer_->save_tokenizer_json((dir / "tokenizer.json").string());
}

void PpoTrainer::save_checkpoint(const std::filesystem::path& dir) {
  nlohmann::json state = {{"stage", "ppo"},
                          {"step", iteration_},
                          {"updates", updates_},
                          {"kl_coef", kl_controller_.value()},
                          {"prompt_pass", prompt_pass_},
                          {"prompt_cursor", prompt_cursor_},
                          {"prompts", prompts_.size()},
                          {"seed", config_.seed},
                          {"value_optimizer_step", value_optimizer_->step_count()}};
  safetensors::NamedTensors extra = parameter_tensors("value.", value_.parameters());
  for (auto& entry : optimizer_tensors("value_optimizer.", *value_optimizer_))
    extra.push_back(std::move(entry));
  for (auto& entry : parameter_tensors("reference.", reference_.parameters()))
    extra.push_back(std::move(entry));
  save_training_checkpoint(dir, policy_, *policy_optimizer_, state.dump(), tokenizer_, extra);
}

void PpoTrainer::resume(const std::filesystem::path& dir) {
  CheckpointTensors extra;
  auto state = nlohmann::json::parse(load_training_checkpoint(
      dir, policy_, *policy_optimizer_, policy_.device(), "ppo", &extra));
  int64_t prompts = 0, iteration = 0, updates = 0, pass = 0, cursor = 0, value_step = 0;
  uint64_t seed = 0;
  float kl_coef = 0.f;
  try {
    TILLER_CHECK(state.value("stage", "") == "ppo", "ppo: {} is not a PPO checkpoint",
                 dir.string());
    prompts = saved_integer<int64_t>(state, "prompts");
    seed = saved_integer<uint64_t>(state, "seed");
    iteration = saved_integer<int64_t>(state, "step");
    updates = saved_integer<int64_t>(state, "updates");
    pass = saved_integer<int64_t>(state, "prompt_pass");
    cursor = saved_integer<int64_t>(state, "prompt_cursor");
    value_step = saved_integer<int64_t>(state, "value_optimizer_step");
    kl_coef = state.at("kl_coef").get<float>();
  } catch (const nlohmann::json::exception& error) {
    fail("ppo: {}: a field is missing or has the wrong type: {}",
         (dir / "trainer_state.json").string(), error.what());
  }
  const auto n = static_cast<int64_t>(prompts_.size());
  TILLER_CHECK(prompts == n && seed == config_.seed,
               "ppo: {} was trained on {} prompts with seed {}; this run has {} prompts, seed {}",
               dir.string(), prompts, seed, n, config_.seed);
  TILLER_CHECK(iteration >= 0 && iteration < kMaxSavedCount && updates >= 0 &&
                   updates < kMaxSavedCount && pass >= 0 && pass < kMaxSavedCount &&
                   cursor >= 0 && cursor <= n && value_step >= 0 &&
                   value_step < kMaxSavedCount && std::isfinite(kl_coef) && kl_coef >= 0.f,
               "ppo: {}: iteration {}, updates {}, prompt pass {}, cursor {}, KL coefficient {} "
               "is not a state of a run over {} prompts",
               (dir / "trainer_state.json").string(), iteration, updates, pass, cursor, kl_coef, n);
  restore_parameters(extra, "value.", value_.parameters());
  restore_optimizer(extra, "value_optimizer.", value_step, *value_optimizer_, value_.device());
  restore_parameters(extra, "reference.", reference_.parameters());
  iteration_ = iteration;
  updates_ = updates;
  kl_controller_.restore(kl_coef);
  prompt_pass_ = pass;
  prompt_cursor_ = cursor;
  prompt_order_ =
      random::epoch_order(static_cast<int64_t>(prompts_.size()), config_.seed, prompt_pass_);
}

}  // namespace tiller::rl
