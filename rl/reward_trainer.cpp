// The reward-model training loop (see rl/reward_trainer.h).
//
// Evaluation scores chosen and rejected rows of many pairs in one padded batch each and computes
// every metric on the host from the two reward vectors, so train and held-out numbers are the
// same formulas applied to the same kind of data.
#include "rl/reward_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "rl/metrics.h"

namespace tiller::rl {

namespace {

struct PairRewards {
  std::vector<float> chosen, rejected, margins;
};

double log1p_exp(double x) {  // log(1 + e^x) without overflow: -log sigmoid(-x)
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

struct Moments {
  double mean = 0, std = 0;  // population std
};

Moments moments(const std::vector<float>& values) {
  Moments m;
  if (values.empty()) return m;
  m.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  double squares = 0;
  for (float v : values) squares += (v - m.mean) * (v - m.mean);
  m.std = std::sqrt(squares / static_cast<double>(values.size()));
  return m;
}

RewardEvaluation summarise(const PairRewards& r) {
  RewardEvaluation e;
  e.pairs = static_cast<int64_t>(r.chosen.size());
  if (e.pairs == 0) return e;
  std::vector<float> all(r.chosen);
  all.insert(all.end(), r.rejected.begin(), r.rejected.end());
  double loss = 0, correct = 0, margin = 0;
  for (size_t i = 0; i < r.chosen.size(); ++i) {
    double gap = static_cast<double>(r.chosen[i]) - r.rejected[i];
    loss += log1p_exp(-(gap - r.margins[i]));
    correct += gap > 0 ? 1 : 0;
    margin += gap;
  }
  const double n = static_cast<double>(e.pairs);
  e.loss = loss / n;
  e.accuracy = correct / n;
  e.margin = margin / n;
  Moments m = moments(all);
  e.reward_mean = m.mean;
  e.reward_std = m.std;
  return e;
}

// Rewards of every pair in eval mode (no dropout, no autograd).
PairRewards score_pairs(RewardModel& model, const std::vector<PreferenceExample>& pairs,
                        int64_t batch_size, int64_t max_length) {
  NoGradGuard no_grad;
  PairRewards rewards;
  for (size_t begin = 0; begin < pairs.size(); begin += static_cast<size_t>(batch_size)) {
    size_t end = std::min(pairs.size(), begin + static_cast<size_t>(batch_size));
    std::vector<size_t> indices(end - begin);
    std::iota(indices.begin(), indices.end(), begin);
    PreferenceBatch batch = make_preference_batch(pairs, indices, max_length, model.device());
    std::vector<float> r =
        model.forward(batch.sequences.ids, batch.sequences.attention_mask).to_vector();
    const auto B = static_cast<std::ptrdiff_t>(batch.pairs);
    rewards.chosen.insert(rewards.chosen.end(), r.begin(), r.begin() + B);
    rewards.rejected.insert(rewards.rejected.end(), r.begin() + B, r.end());
    for (size_t i : indices) rewards.margins.push_back(pairs[i].margin);
  }
  return rewards;
}

void add_evaluation(Metrics& metrics, const std::string& prefix, const RewardEvaluation& e) {
  metrics.add(prefix + "loss", e.loss)
      .add(prefix + "accuracy", e.accuracy)
      .add(prefix + "margin", e.margin)
      .add(prefix + "reward/mean", e.reward_mean)
      .add(prefix + "reward/std", e.reward_std);
}

}  // namespace

RewardStatistics reward_statistics(const std::vector<float>& rewards) {
  Moments m = moments(rewards);
  RewardStatistics s;
  s.mean = static_cast<float>(m.mean);
  s.std = rewards.size() >= 2 && m.std > 0 ? static_cast<float>(m.std) : 1.f;
  return s;
}

void RewardTrainConfig::validate() const {
  TILLER_CHECK(epochs > 0, "RewardTrainConfig: epochs must be positive, got {}", epochs);
  TILLER_CHECK(batch_size > 0, "RewardTrainConfig: batch_size must be positive, got {}",
               batch_size);
  TILLER_CHECK(max_length >= 0, "RewardTrainConfig: max_length must be >= 0, got {}", max_length);
  TILLER_CHECK(clip_norm >= 0.f, "RewardTrainConfig: clip_norm must be >= 0, got {}", clip_norm);
  TILLER_CHECK(center_coefficient >= 0.f,
               "RewardTrainConfig: center_coefficient must be >= 0, got {}", center_coefficient);
  TILLER_CHECK(eval_every >= 0 && log_every >= 0 && eval_batch_size > 0,
               "RewardTrainConfig: eval_every {} and log_every {} must be >= 0 and "
               "eval_batch_size {} positive",
               eval_every, log_every, eval_batch_size);
}

RewardTrainer::RewardTrainer(RewardModel& model, RewardTrainConfig config,
                             std::vector<PreferenceExample> train,
                             std::vector<PreferenceExample> heldout)
    : model_(model),
      config_(std::move(config)),
      train_(std::move(train)),
      heldout_(std::move(heldout)) {
  config_.validate();
  TILLER_CHECK(!train_.empty(), "RewardTrainer: no training pairs");
  if (config_.max_length == 0) config_.max_length = model_.backbone().config().max_seq_len;
  TILLER_CHECK(config_.max_length <= model_.backbone().config().max_seq_len,
               "RewardTrainConfig: max_length {} exceeds the backbone's max_seq_len {}",
               config_.max_length, model_.backbone().config().max_seq_len);
}

int64_t RewardTrainer::steps_per_epoch() const {
  const auto n = static_cast<int64_t>(train_.size());
  return (n + config_.batch_size - 1) / config_.batch_size;
}

RewardEvaluation RewardTrainer::evaluate(const std::vector<PreferenceExample>& pairs) {
  return summarise(score_pairs(model_, pairs, config_.eval_batch_size, config_.max_length));
}

RewardTrainSummary RewardTrainer::train() {
  const auto start = std::chrono::steady_clock::now();
  RewardTrainSummary summary;
  std::string metrics_path;
  if (!config_.output_dir.empty()) {
    std::filesystem::create_directories(config_.output_dir);
    metrics_path = (std::filesystem::path(config_.output_dir) / "metrics.jsonl").string();
  }
  MetricsLog log("reward", metrics_path);

  const int64_t total = total_steps();
  optim::LrSchedule schedule = config_.schedule;
  if (schedule.total_steps == 0) schedule.total_steps = total;
  schedule.validate();
  ParameterList params = model_.parameters();
  optim::AdamW optimizer(optim::default_param_groups(params, config_.weight_decay),
                         {.lr = schedule.lr(0),
                          .beta1 = config_.beta1,
                          .beta2 = config_.beta2,
                          .eps = 1e-8f,
                          .weight_decay = config_.weight_decay,
                          .seed = config_.seed});

  auto run_heldout = [&](int64_t step) {
    if (heldout_.empty()) return RewardEvaluation{};
    RewardEvaluation e = evaluate(heldout_);
    Metrics m;
    add_evaluation(m, "eval/", e);
    log.write(step, m);
    if (config_.log_every > 0) log.print(step, total, m);
    return e;
  };
  summary.initial_heldout = run_heldout(0);

  std::vector<size_t> order(train_.size());
  std::iota(order.begin(), order.end(), 0);
  Generator shuffle_gen(config_.seed);
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < config_.epochs; ++epoch) {
    // Fisher-Yates from uniform draws of the counter-based generator: the order depends only
    // on (seed, epoch), never on the standard library.
    std::vector<float> draws =
        Tensor::rand({static_cast<int64_t>(order.size())}, shuffle_gen).to_vector();
    for (size_t i = order.size(); i-- > 1;) {
      auto j = std::min(i, static_cast<size_t>(draws[i] * static_cast<float>(i + 1)));
      std::swap(order[i], order[j]);
    }
    for (size_t begin = 0; begin < order.size(); begin += static_cast<size_t>(config_.batch_size)) {
      size_t end = std::min(order.size(), begin + static_cast<size_t>(config_.batch_size));
      std::vector<size_t> indices(order.begin() + static_cast<std::ptrdiff_t>(begin),
                                  order.begin() + static_cast<std::ptrdiff_t>(end));
      PreferenceBatch batch =
          make_preference_batch(train_, indices, config_.max_length, model_.device());
      summary.truncated_sequences += batch.truncated;

      const float lr = schedule.lr(step);
      optimizer.set_lr(lr);
      optimizer.zero_grad();
      Tensor rewards =
          model_.forward(batch.sequences.ids, batch.sequences.attention_mask, config_.dropout);
      Tensor chosen = slice(rewards, 0, 0, batch.pairs);
      Tensor rejected = slice(rewards, 0, batch.pairs, 2 * batch.pairs);
      PreferenceLoss loss =
          preference_loss(chosen, rejected, batch.margins, config_.center_coefficient);
      loss.total.backward();
      const float loss_value = loss.total.item();
      const float norm = optim::global_grad_norm(params);
      TILLER_CHECK(std::isfinite(loss_value) && std::isfinite(norm),
                   "RewardTrainer: step {} has loss {} and gradient norm {}; lower the learning "
                   "rate or check the data",
                   step + 1, loss_value, norm);
      optimizer.step(config_.clip_norm > 0.f ? optim::clip_factor(norm, config_.clip_norm) : 1.f);
      ++step;

      if (config_.log_every > 0 && (step % config_.log_every == 0 || step == total)) {
        PairRewards pr{chosen.to_vector(), rejected.to_vector(), batch.margins.to_vector()};
        RewardEvaluation e = summarise(pr);
        Metrics m;
        m.add("epoch", static_cast<double>(epoch) + static_cast<double>(end) / order.size())
            .add("loss", loss_value)
            .add("accuracy", e.accuracy)
            .add("margin", e.margin)
            .add("reward/mean", e.reward_mean)
            .add("reward/std", e.reward_std)
            .add("lr", lr)
            .add("grad_norm", norm);
        log.write(step, m);
        log.print(step, total, m, {"loss", "accuracy", "margin", "lr"});
      }
      if (config_.eval_every > 0 && step % config_.eval_every == 0 && step != total)
        run_heldout(step);
    }
    if (config_.eval_every == 0 && epoch + 1 < config_.epochs) run_heldout(step);
  }
  summary.steps = step;
  summary.final_heldout = run_heldout(step);

  // Statistics over every training response, chosen and rejected, for PPO's normalisation.
  PairRewards train_rewards =
      score_pairs(model_, train_, config_.eval_batch_size, config_.max_length);
  std::vector<float> all(train_rewards.chosen);
  all.insert(all.end(), train_rewards.rejected.begin(), train_rewards.rejected.end());
  summary.statistics = reward_statistics(all);
  model_.set_statistics(summary.statistics);
  summary.final_train = summarise(train_rewards);
  Metrics final_metrics;
  add_evaluation(final_metrics, "train_final/", summary.final_train);
  final_metrics.add("statistics/mean", summary.statistics.mean)
      .add("statistics/std", summary.statistics.std);
  log.write(step, final_metrics);

  if (!config_.output_dir.empty()) {
    summary.saved_model = std::filesystem::path(config_.output_dir) / "model";
    model_.save(summary.saved_model);
  }
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace tiller::rl
