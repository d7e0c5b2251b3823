// The likelihood probe (see rl/reports/probe.h).
//
// Cost: a question's candidates differ only in a few tokens (the value and what follows it), so
// the cue and their common prefix are computed once and cached; the log-softmax of the few logit
// rows that matter is taken on the host in double.
#include "rl/reports/probe.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/ops/ops.h"
#include "core/tensor/autograd.h"
#include "core/text/special_tokens.h"
#include "kernels/error.h"

namespace tiller::rl {

namespace {

// log_softmax of one logits row (V values), in double.
std::vector<double> log_softmax_row(const float* logits, int64_t vocab) {
  double peak = logits[0];
  for (int64_t v = 1; v < vocab; ++v) peak = std::max<double>(peak, logits[v]);
  double total = 0.0;
  for (int64_t v = 0; v < vocab; ++v) total += std::exp(static_cast<double>(logits[v]) - peak);
  const double log_total = peak + std::log(total);
  std::vector<double> out(static_cast<size_t>(vocab));
  for (int64_t v = 0; v < vocab; ++v) out[v] = static_cast<double>(logits[v]) - log_total;
  return out;
}

}  // namespace

std::vector<double> candidate_loglikelihoods(Transformer& model, const std::vector<int32_t>& cue,
                                             const std::vector<std::vector<int32_t>>& candidates,
                                             int64_t batch_size) {
  TILLER_CHECK(!cue.empty(), "candidate_loglikelihoods: the cue is empty");
  TILLER_CHECK(batch_size > 0, "candidate_loglikelihoods: batch_size must be positive, got {}",
               batch_size);
  const int64_t vocab = model.config().vocab_size;
  const int64_t max_seq_len = model.config().max_seq_len;
  std::vector<double> scores(candidates.size(), 0.0);
  if (candidates.empty()) return scores;
  size_t common = candidates[0].size();
  for (const auto& candidate : candidates) {
    TILLER_CHECK(static_cast<int64_t>(cue.size() + candidate.size()) <= max_seq_len,
                 "candidate_loglikelihoods: cue ({} tokens) + a candidate ({} tokens) exceed the "
                 "model's max_seq_len {}",
                 cue.size(), candidate.size(), max_seq_len);
    size_t same = 0;
    while (same < common && same < candidate.size() && candidate[same] == candidates[0][same])
      ++same;
    common = same;
  }
  NoGradGuard no_grad;
  const Device device = model.device();
  const TensorOptions i32{.dtype = DType::i32, .device = device};

  // The shared part: cue ++ common prefix, batch 1. Its last `common + 1` logit rows predict the
  // common tokens and each candidate's first tail token.
  std::vector<int32_t> shared = cue;
  shared.insert(shared.end(), candidates[0].begin(), candidates[0].begin() + common);
  const auto S = static_cast<int64_t>(shared.size());
  KVCache cache = model.make_cache();
  ForwardOptions shared_options;
  shared_options.cache = &cache;
  const std::vector<float> shared_logits =
      slice(model.forward(Tensor::from_ints(shared, {1, S}, i32), shared_options), 1,
            S - static_cast<int64_t>(common) - 1, S)
          .to(Device::cpu())
          .to_vector();  // (common + 1) rows of V
  double common_score = 0.0;
  for (size_t j = 0; j < common; ++j)
    common_score += log_softmax_row(&shared_logits[j * vocab], vocab)[candidates[0][j]];
  const std::vector<double> next = log_softmax_row(&shared_logits[common * vocab], vocab);

  for (size_t first = 0; first < candidates.size(); first += static_cast<size_t>(batch_size)) {
    const size_t last = std::min(candidates.size(), first + static_cast<size_t>(batch_size));
    const auto B = static_cast<int64_t>(last - first);
    int64_t tail_inputs = 0;  // tail tokens fed to the model: every one but each row's last
    for (size_t i = first; i < last; ++i) {
      scores[i] = common_score;
      if (candidates[i].size() > common) scores[i] += next[candidates[i][common]];
      tail_inputs =
          std::max<int64_t>(tail_inputs, static_cast<int64_t>(candidates[i].size() - common) - 1);
    }
    if (tail_inputs == 0) continue;
    // Right-padded tails after a copy of the shared cache: causal attention keeps each real token
    // from seeing the padding after it, so no key mask is needed; positions follow the cache.
    std::vector<int32_t> ids(static_cast<size_t>(B * tail_inputs), 0);
    for (size_t i = first; i < last; ++i)
      for (int64_t t = 0; t + 1 < static_cast<int64_t>(candidates[i].size() - common); ++t)
        ids[(i - first) * tail_inputs + t] = candidates[i][common + t];
    KVCache batch_cache;
    for (const LayerKVCache& layer : cache.layers)
      batch_cache.layers.push_back({.k = concat(std::vector<Tensor>(B, layer.k), 0),
                                    .v = concat(std::vector<Tensor>(B, layer.v), 0)});
    ForwardOptions tail_options;
    tail_options.cache = &batch_cache;
    const std::vector<float> logits =
        model.forward(Tensor::from_ints(ids, {B, tail_inputs}, i32), tail_options)
            .to(Device::cpu())
            .to_vector();  // (B, tail_inputs, V)
    for (size_t i = first; i < last; ++i) {
      const auto& candidate = candidates[i];
      for (size_t t = common + 1; t < candidate.size(); ++t) {
        const size_t row = (i - first) * tail_inputs + (t - common - 1);
        scores[i] += log_softmax_row(&logits[row * vocab], vocab)[candidate[t]];
      }
    }
  }
  return scores;
}

std::vector<int32_t> probe_cue(const Tokenizer& tokenizer, const world::Question& question) {
  std::vector<int32_t> cue = {tokenizer.token_id(special_tokens::kEndOfText)};
  for (int32_t id : tokenizer.encode(question.text + "\n")) cue.push_back(id);
  return cue;
}

double ProbeTaskResult::accuracy() const {
  return questions == 0 ? std::nan("")
                        : static_cast<double>(correct) / static_cast<double>(questions);
}

std::string ProbeReport::summary() const {
  std::string line =
      fmt::format("probe {:.1f}% (creature attributes {:.1f}%, chance {:.1f}%, {} questions):",
                  100.0 * accuracy, 100.0 * creature_accuracy, 100.0 * chance, questions);
  for (const ProbeTaskResult& task : per_task) {
    if (task.questions > 0)
      line += fmt::format(" {} {}/{}", world::task_name(task.task), task.correct, task.questions);
  }
  return line;
}

ProbeReport probe_world(Transformer& model, const Tokenizer& tokenizer, const World& world,
                        const std::vector<world::EvalItem>& items, const ProbeConfig& config) {
  TILLER_CHECK(!items.empty(), "probe: no items given");
  TILLER_CHECK(config.batch_size > 0 && config.limit >= 0,
               "probe: batch_size {} must be positive and limit {} >= 0", config.batch_size,
               config.limit);
  const auto start = std::chrono::steady_clock::now();
  const auto count = config.limit > 0
                         ? std::min<int64_t>(config.limit, static_cast<int64_t>(items.size()))
                         : static_cast<int64_t>(items.size());

  // Per item: its candidates' scores, in admissible_values order.
  std::vector<std::vector<std::string>> values(static_cast<size_t>(count));
  std::vector<std::vector<double>> scores(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const world::Expected& expected = items[i].question.expected;
    values[i] = world.admissible_values(expected);
    TILLER_CHECK(std::count(values[i].begin(), values[i].end(), expected.value) == 1,
                 "probe: the admissible values of {} do not hold its answer '{}' exactly once",
                 expected.key, expected.value);
    std::vector<std::vector<int32_t>> sentences;
    for (const std::string& value : values[i])
      sentences.push_back(tokenizer.encode(expected.prefix + value + expected.suffix));
    scores[i] = candidate_loglikelihoods(model, probe_cue(tokenizer, items[i].question), sentences,
                                         config.batch_size);
  }

  ProbeReport report;
  for (int t = 0; t < world::kNumTaskTypes; ++t)
    report.per_task.push_back({.task = world::task_from_index(t)});
  int64_t creature_questions = 0, creature_correct = 0;
  for (int64_t i = 0; i < count; ++i) {
    const std::vector<double>& score = scores[i];
    const world::Expected& expected = items[i].question.expected;
    const auto candidates = static_cast<int64_t>(values[i].size());
    size_t best = 0, right = 0;
    for (size_t c = 0; c < values[i].size(); ++c) {
      if (score[c] > score[best]) best = c;
      if (values[i][c] == expected.value) right = c;
    }
    bool correct = true;  // strictly above every other candidate
    for (size_t c = 0; c < values[i].size(); ++c)
      correct = correct && (c == right || score[right] > score[c]);

    report.examples.push_back({.id = items[i].id,
                               .task = expected.task,
                               .expected = expected.value,
                               .best = values[i][best],
                               .candidates = candidates,
                               .correct = correct});
    ProbeTaskResult& task = report.per_task[static_cast<size_t>(expected.task)];
    ++task.questions;
    task.correct += correct ? 1 : 0;
    task.chance += 1.0 / static_cast<double>(candidates);
    report.chance += 1.0 / static_cast<double>(candidates);
    if (world::is_creature_attribute(expected.task)) {
      ++creature_questions;
      creature_correct += correct ? 1 : 0;
    }
  }
  report.questions = count;
  for (const ProbeTaskResult& task : report.per_task) report.correct += task.correct;
  for (ProbeTaskResult& task : report.per_task)
    if (task.questions > 0) task.chance /= static_cast<double>(task.questions);
  report.accuracy = static_cast<double>(report.correct) / static_cast<double>(count);
  report.chance /= static_cast<double>(count);
  report.creature_accuracy = creature_questions == 0 ? std::nan("")
                                                     : static_cast<double>(creature_correct) /
                                                           static_cast<double>(creature_questions);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace tiller::rl
