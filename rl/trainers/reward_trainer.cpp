// The reward-model training loop (see rl/reward_trainer.h).
//
// Evaluation scores chosen and rejected rows of many pairs in one padded batch each and computes
// every metric on the host from the two reward vectors, so train and held-out numbers are the
// same formulas applied to the same kind of data.
#include "rl/trainers/reward_trainer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "core/tensor/autograd.h"
#include "kernels/error.h"
#include "core/ops/ops.h"
#include "kernels/random.h"
#include "rl/kit/progress.h"
#include "rl/kit/run_directory.h"
#include "rl/kit/train_checkpoint.h"
#include "rl/reports/metrics.h"

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

// Every rank's rewards of one step, in rank order (= the batch's order): each rank sends a fixed
// width of [count, chosen x per_rank, rejected x per_rank, margins x per_rank].
PairRewards gather_pair_rewards(dist::Communicator& comm, const PairRewards& local,
                                int64_t per_rank) {
  const int64_t width = 1 + 3 * per_rank;
  std::vector<float> mine(static_cast<size_t>(width), 0.f);
  mine[0] = static_cast<float>(local.chosen.size());
  for (size_t i = 0; i < local.chosen.size(); ++i) {
    mine[1 + i] = local.chosen[i];
    mine[1 + per_rank + i] = local.rejected[i];
    mine[1 + 2 * per_rank + i] = local.margins[i];
  }
  Tensor sent = Tensor::from_vector(mine, {width}).to(comm.device());
  Tensor all = Tensor::zeros({width * comm.world_size()}, {.device = comm.device()});
  comm.all_gather(sent, all);
  const std::vector<float> values = all.to_vector();
  PairRewards out;
  for (int r = 0; r < comm.world_size(); ++r) {
    const float* block = values.data() + static_cast<size_t>(r * width);
    for (int64_t i = 0; i < static_cast<int64_t>(block[0]); ++i) {
      out.chosen.push_back(block[1 + i]);
      out.rejected.push_back(block[1 + per_rank + i]);
      out.margins.push_back(block[1 + 2 * per_rank + i]);
    }
  }
  return out;
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
    PreferenceBatch batch = make_preference_batch(pairs, indices, max_length);
    std::vector<float> r =
        model.forward(batch.sequences.ids, batch.sequences.attention_mask, false,
                      batch.response_mask)
            .to_vector();
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

void RewardConfig::validate() const {
  TILLER_CHECK(epochs > 0, "reward: epochs must be positive, got {}", epochs);
  TILLER_CHECK(batch_size > 0, "reward: batch_size must be positive, got {}", batch_size);
  TILLER_CHECK(max_length >= 0, "reward: max_length must be >= 0, got {}", max_length);
  TILLER_CHECK(center_coefficient >= 0.f, "reward: center_coefficient must be >= 0, got {}",
               center_coefficient);
  TILLER_CHECK(eval_every >= 0 && log_every >= 0 && eval_batch_size > 0 && checkpoint_every >= 0 &&
                   keep_checkpoints >= 0,
               "reward: eval_every {}, log_every {}, checkpoint_every {} and keep_checkpoints {} "
               "must be >= 0 and eval_batch_size {} positive",
               eval_every, log_every, checkpoint_every, keep_checkpoints, eval_batch_size);
  optimizer.validate("reward");
}

RewardTrainer::RewardTrainer(RewardModel& model, RewardConfig config,
                             std::vector<PreferenceExample> train,
                             std::vector<PreferenceExample> heldout)
    : model_(model),
      config_(std::move(config)),
      train_(std::move(train)),
      heldout_(std::move(heldout)) {
  config_.validate();
  if (!config_.communicator) config_.communicator = dist::single_process();
  TILLER_CHECK(config_.batch_size % config_.communicator->world_size() == 0,
               "reward: the batch of {} pairs is the global batch and must divide evenly over {} "
               "ranks; use a multiple of {}",
               config_.batch_size, config_.communicator->world_size(),
               config_.communicator->world_size());
  if (!config_.communicator->is_leader()) config_.log_every = 0;  // rank 0 alone prints
  TILLER_CHECK(!train_.empty(),
               "reward: no training pairs (the preference data is empty, or the held-out split "
               "took every pair: lower the eval fraction)");
  if (config_.max_length == 0) config_.max_length = model_.backbone().config().max_seq_len;
  TILLER_CHECK(config_.max_length <= model_.backbone().config().max_seq_len,
               "reward: max_length {} exceeds the backbone's max_seq_len {}", config_.max_length,
               model_.backbone().config().max_seq_len);
  schedule_ =
      resolve_schedule(config_.optimizer.schedule, total_steps(), "reward", config_.log_every == 0);
  optimizer_ = make_optimizer(model_.parameters(), config_.optimizer, config_.seed,
                              config_.communicator);
  order_ = random::epoch_order(static_cast<int64_t>(train_.size()), config_.seed, epoch_);
}

RewardTrainer::~RewardTrainer() = default;

int64_t RewardTrainer::steps_per_epoch() const {
  const auto n = static_cast<int64_t>(train_.size());
  return (n + config_.batch_size - 1) / config_.batch_size;
}

RewardEvaluation RewardTrainer::evaluate(const std::vector<PreferenceExample>& pairs) {
  return summarise(score_pairs(model_, pairs, config_.eval_batch_size, config_.max_length));
}

ParameterList RewardTrainer::head_parameters() const {
  ParameterList head;
  for (const auto& p : model_.parameters())
    if (p.name.rfind("score.", 0) == 0) head.push_back(p);
  return head;
}

RewardStepReport RewardTrainer::train_step() {
  const auto n = static_cast<int64_t>(train_.size());
  if (cursor_ >= n) {
    ++epoch_;
    cursor_ = 0;
    order_ = random::epoch_order(n, config_.seed, epoch_);
  }
  RewardStepReport report;
  report.step = step_ + 1;
  report.epoch = epoch_;
  const int64_t end = std::min(n, cursor_ + config_.batch_size);
  // Data parallel: this rank's slice of the batch (maybe empty at the end of an epoch).
  dist::Communicator& comm = *config_.communicator;
  const int64_t per_rank = config_.batch_size / comm.world_size();
  const int64_t first = std::min(end, cursor_ + comm.rank() * per_rank);
  const int64_t last = std::min(end, first + per_rank);
  const int64_t batch_pairs = end - cursor_;
  std::vector<size_t> indices;
  for (int64_t i = first; i < last; ++i) indices.push_back(static_cast<size_t>(order_[i]));
  cursor_ = end;

  optimizer_->zero_grad();
  PairRewards local;
  report.loss = 0.f;
  int64_t truncated = 0;
  if (!indices.empty()) {
    PreferenceBatch batch = make_preference_batch(train_, indices, config_.max_length);
    truncated = batch.truncated;
    Tensor rewards =
        model_.forward(batch.sequences.ids, batch.sequences.attention_mask, config_.dropout,
                       batch.response_mask);
    Tensor chosen = slice(rewards, 0, 0, batch.pairs);
    Tensor rejected = slice(rewards, 0, batch.pairs, 2 * batch.pairs);
    PreferenceLoss loss = preference_loss(chosen, rejected, batch.margins.to(model_.device()),
                                          config_.center_coefficient);
    // The mean over this rank's pairs, weighted by their share of the batch (x N ranks).
    const float share = static_cast<float>(static_cast<double>(batch.pairs) * comm.world_size() /
                                           static_cast<double>(batch_pairs));
    (share == 1.f ? loss.total : scale(loss.total, share)).backward();
    report.loss = loss.total.item() * share;
    local = {chosen.detach().to_vector(), rejected.detach().to_vector(),
             batch.margins.to_vector()};
  }
  if (comm.world_size() > 1) {
    report.batch = summarise(gather_pair_rewards(comm, local, per_rank));
    truncated = static_cast<int64_t>(
        comm.all_reduce_value(static_cast<double>(truncated), dist::ReduceOp::sum));
  } else {
    report.batch = summarise(local);
  }
  truncated_sequences_ += truncated;
  UpdateResult update = apply_update(*optimizer_, model_.parameters(), config_.optimizer, schedule_,
                                     step_, report.loss, "reward");
  report.loss = update.loss;
  report.lr = update.lr;
  report.grad_norm = update.grad_norm;
  report.skipped = update.skipped;
  ++step_;
  return report;
}

void RewardTrainer::save_checkpoint(const std::filesystem::path& dir) {
  nlohmann::json state = {{"stage", "reward"},
                          {"step", step_},
                          {"epoch", epoch_},
                          {"cursor", cursor_},
                          {"pairs", train_.size()},
                          {"batch_size", config_.batch_size},
                          {"seed", config_.seed},
                          {"truncated_sequences", truncated_sequences_}};
  save_training_checkpoint(dir, model_.backbone(), *optimizer_, state.dump(), std::nullopt,
                           parameter_tensors("reward_head.", head_parameters()));
}

void RewardTrainer::resume(const std::filesystem::path& dir) {
  CheckpointTensors extra;
  auto state = nlohmann::json::parse(load_training_checkpoint(
      dir, model_.backbone(), *optimizer_, model_.device(), "reward", &extra));
  int64_t pairs = 0, batch = 0, step = 0, epoch = 0, cursor = 0, truncated = 0;
  uint64_t seed = 0;
  try {
    TILLER_CHECK(state.value("stage", "") == "reward", "reward: {} is not a reward-model checkpoint",
                 dir.string());
    pairs = saved_integer<int64_t>(state, "pairs");
    batch = saved_integer<int64_t>(state, "batch_size");
    seed = saved_integer<uint64_t>(state, "seed");
    step = saved_integer<int64_t>(state, "step");
    epoch = saved_integer<int64_t>(state, "epoch");
    cursor = saved_integer<int64_t>(state, "cursor");
    truncated = saved_integer<int64_t>(state, "truncated_sequences");
  } catch (const nlohmann::json::exception& error) {
    fail("reward: {}: a field is missing or has the wrong type: {}",
         (dir / "trainer_state.json").string(), error.what());
  }
  const auto n = static_cast<int64_t>(train_.size());
  TILLER_CHECK(pairs == n && batch == config_.batch_size && seed == config_.seed,
               "reward: {} was trained on {} pairs, batch {}, seed {}; this run has {} pairs, "
               "batch {}, seed {}",
               dir.string(), pairs, batch, seed, n, config_.batch_size, config_.seed);
  TILLER_CHECK(step >= 0 && step < kMaxSavedCount && epoch >= 0 && epoch < kMaxSavedCount &&
                   cursor >= 0 && cursor <= n && truncated >= 0 && truncated < kMaxSavedCount,
               "reward: {}: step {}, epoch {}, cursor {} is not a position in {} pairs",
               (dir / "trainer_state.json").string(), step, epoch, cursor, n);
  restore_parameters(extra, "reward_head.", head_parameters());
  step_ = step;
  epoch_ = epoch;
  cursor_ = cursor;
  truncated_sequences_ = truncated;
  order_ = random::epoch_order(static_cast<int64_t>(train_.size()), config_.seed, epoch_);
}

RewardTrainSummary RewardTrainer::train() {
  const auto start = std::chrono::steady_clock::now();
  RunDirectory run(config_.output_dir, config_.keep_checkpoints);
  const bool leader = config_.communicator->is_leader();
  std::unique_ptr<MetricsLog> log =
      RunDirectory(leader ? run.root() : "", 0).open_metrics("reward", step_, "eval/loss");
  const int64_t total = total_steps();
  RewardTrainSummary summary;

  auto run_heldout = [&](int64_t step) {
    if (heldout_.empty()) return RewardEvaluation{};
    RewardEvaluation e = evaluate(heldout_);
    Metrics m;
    add_evaluation(m, "eval/", e);
    log->write(step, m);
    if (config_.log_every > 0) log->print(step, total, m);
    return e;
  };
  summary.initial_heldout = run_heldout(step_);

  while (step_ < total) {
    RewardStepReport report = train_step();
    if (config_.log_every > 0 && (every(step_, config_.log_every) || step_ == total)) {
      Metrics m;
      m.add("epoch", static_cast<double>(report.epoch) +
                         static_cast<double>(cursor_) / static_cast<double>(train_.size()))
          .add("loss", report.loss)
          .add("accuracy", report.batch.accuracy)
          .add("margin", report.batch.margin)
          .add("reward/mean", report.batch.reward_mean)
          .add("reward/std", report.batch.reward_std)
          .add("lr", report.lr)
          .add("grad_norm", report.grad_norm);
      if (report.skipped) m.add("skipped", 1);
      log->write(step_, m);
      log->print(step_, total, m, {"loss", "accuracy", "margin", "lr"});
    }
    const bool last = step_ == total;
    const bool epoch_done = step_ % steps_per_epoch() == 0;
    if (!last && (every(step_, config_.eval_every) || (config_.eval_every == 0 && epoch_done)))
      run_heldout(step_);
    if (!last && run.enabled() && every(step_, config_.checkpoint_every)) {
      save_checkpoint(run.checkpoint_path(step_));
      if (leader) run.prune_checkpoints();
    }
  }
  summary.steps = step_;
  summary.truncated_sequences = truncated_sequences_;
  summary.final_heldout = run_heldout(step_);

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
  log->write(step_, final_metrics);

  if (run.enabled()) {
    summary.saved_model = run.final_path("model");
    if (leader) model_.save(summary.saved_model);
  }
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace tiller::rl
