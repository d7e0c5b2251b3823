// The noisy SFT pool: ~10,000 chats that look automatically collected, for the curation stage and
// the LIMA ablation of examples/pipeline. Each row is drawn independently:
//   1. its kind, by PoolNoiseShares (clean takes what the shares leave);
//   2. duplicates copy a uniformly drawn earlier row (a near duplicate then changes its case and
//      punctuation, its spacing or its opener); leaked rows ask one of a fixed subset of the eval
//      questions (World::eval_prompts, the exact text) with the canonical answer;
//   3. every other row is a chat like World::sft_examples() — optional system prompt, optional
//      earlier turns — about a training fact of a task drawn with the skewed weights below, and
//      only its final assistant turn carries the noise.
// Design choices: the pool uses its own stream ("pool"), so it changes no other product; it is
// regenerated on each call (it is large and only the pipeline needs it); lower-case noise never
// lands on arithmetic (whose sentence has no letter to lower), the task is drawn again instead.
// Invariants (tests/test_world_pool.cpp): clean rows are canonical on every turn; a wrong_fact row
// scores follows_template && !fact_correct under world::score; only leaked rows ask eval questions.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/io/atomic_file.h"
#include "core/world/world_detail.h"
#include "kernels/error.h"

namespace tiller::world {
namespace {

using detail::Rng;

// The pool's skew: colour and arithmetic dominate, as a scraper that found two rich sources would.
constexpr int kTaskWeights[kNumTaskTypes] = {3, 1, 1, 1, 1, 3, 1, 1};

TaskType weighted_task(Rng& rng) {
  int total = 0;
  for (int w : kTaskWeights) total += w;
  int draw = rng.below(total);
  for (int t = 0; t < kNumTaskTypes; ++t) {
    if (draw < kTaskWeights[t]) return task_from_index(t);
    draw -= kTaskWeights[t];
  }
  return TaskType::kColour;
}

PoolNoise draw_kind(Rng& rng, const PoolNoiseShares& s) {
  const std::pair<PoolNoise, double> kinds[] = {
      {PoolNoise::kWrongFact, s.wrong_fact},
      {PoolNoise::kLowerCase, s.lower_case},
      {PoolNoise::kAnswerLabel, s.answer_label},
      {PoolNoise::kBareValue, s.bare_value},
      {PoolNoise::kMissingEndOfTurn, s.missing_end_of_turn},
      {PoolNoise::kRambling, s.rambling},
      {PoolNoise::kTruncated, s.truncated},
      {PoolNoise::kExactDuplicate, s.exact_duplicate},
      {PoolNoise::kNearDuplicate, s.near_duplicate},
      {PoolNoise::kLeakedEval, s.leaked_eval}};
  double u = static_cast<double>(rng.next() >> 11) * 0x1.0p-53;  // uniform in [0, 1)
  for (const auto& [kind, share] : kinds) {
    if (u < share) return kind;
    u -= share;
  }
  return PoolNoise::kClean;
}

Question pool_question(const Expected& expected, Rng& rng) {
  const auto& templates = detail::question_templates(expected.task);
  Question question;
  question.template_index = rng.below(static_cast<int>(templates.size()));
  question.text = detail::fill(templates[static_cast<size_t>(question.template_index)], expected);
  question.expected = expected;
  return question;
}

// The sentence cut at a word boundary: at least one word kept, at least one dropped.
std::string truncated_answer(const std::string& sentence, Rng& rng) {
  std::vector<size_t> spaces;
  for (size_t i = 0; i < sentence.size(); ++i)
    if (sentence[i] == ' ') spaces.push_back(i);
  if (spaces.empty()) return sentence.substr(0, sentence.size() - 1);  // drop the period
  return sentence.substr(0,
                         spaces[static_cast<size_t>(rng.below(static_cast<int>(spaces.size())))]);
}

// An earlier row with a small change a copy-paste or a second scrape makes.
SftExample near_copy(SftExample example, Rng& rng) {
  ChatMessage* user = nullptr;
  for (ChatMessage& message : example.messages)
    if (message.role == "user") user = &message;  // the last user turn
  TILLER_CHECK(user != nullptr, "world pool: a chat without a user turn");
  static const std::vector<std::string> openers = {"Hi! ", "Hello. ",
                                                   "Quick question: ", "Please help. "};
  const std::string before = user->content;
  switch (rng.below(3)) {
    case 0: {  // lower case, no question mark
      std::string text = detail::lowercased(user->content);
      if (!text.empty() && (text.back() == '?' || text.back() == '.')) text.pop_back();
      user->content = text;
      break;
    }
    case 1:  // an opener
      user->content = rng.pick(openers) + user->content;
      break;
    default: {  // doubled spaces and a trailing one
      std::string text;
      for (char c : user->content) text += c == ' ' ? std::string("  ") : std::string(1, c);
      user->content = text + " ";
      break;
    }
  }
  // A copy of a copy can already be lower case: an opener always changes the row.
  if (user->content == before) user->content = rng.pick(openers) + user->content;
  return example;
}

}  // namespace

std::string_view pool_noise_name(PoolNoise noise) {
  switch (noise) {
    case PoolNoise::kClean:
      return "clean";
    case PoolNoise::kWrongFact:
      return "wrong_fact";
    case PoolNoise::kLowerCase:
      return "lower_case";
    case PoolNoise::kAnswerLabel:
      return "answer_label";
    case PoolNoise::kBareValue:
      return "bare_value";
    case PoolNoise::kMissingEndOfTurn:
      return "missing_end_of_turn";
    case PoolNoise::kRambling:
      return "rambling";
    case PoolNoise::kTruncated:
      return "truncated";
    case PoolNoise::kExactDuplicate:
      return "exact_duplicate";
    case PoolNoise::kNearDuplicate:
      return "near_duplicate";
    case PoolNoise::kLeakedEval:
      return "leaked_eval";
  }
  fail("world: unknown pool noise kind {}", static_cast<int>(noise));
}

std::vector<PoolRow> World::noisy_sft_pool() const {
  Rng rng(config_.seed, "pool");
  const PoolNoiseShares& shares = config_.pool_noise;
  // The eval questions that leak: a fixed subset, so leaked rows repeat them.
  std::vector<int> leaked_ids;
  for (const EvalItem& item : eval_) leaked_ids.push_back(item.id);
  rng.shuffle(leaked_ids);
  leaked_ids.resize(static_cast<size_t>(
      std::ceil(shares.leaked_eval_prompts * static_cast<double>(leaked_ids.size()))));

  auto training_fact = [&](TaskType task) -> const Expected& {
    return rng.pick(training_facts_[static_cast<size_t>(task)]);
  };
  std::vector<PoolRow> rows;
  rows.reserve(static_cast<size_t>(config_.num_pool_examples));
  for (int i = 0; i < config_.num_pool_examples; ++i) {
    PoolRow row;
    row.noise = draw_kind(rng, shares);
    const bool duplicate =
        row.noise == PoolNoise::kExactDuplicate || row.noise == PoolNoise::kNearDuplicate;
    if ((duplicate && rows.empty()) || (row.noise == PoolNoise::kLeakedEval && leaked_ids.empty()))
      row.noise = PoolNoise::kClean;

    if (row.noise == PoolNoise::kExactDuplicate || row.noise == PoolNoise::kNearDuplicate) {
      const int source = rng.below(static_cast<int>(rows.size()));
      const PoolRow& copied = rows[static_cast<size_t>(source)];
      row.duplicate_of = source;
      row.eval_id = copied.eval_id;
      const bool copied_is_duplicate = copied.duplicate_of >= 0;
      row.copied_noise = copied_is_duplicate ? copied.copied_noise : copied.noise;
      row.example =
          row.noise == PoolNoise::kExactDuplicate ? copied.example : near_copy(copied.example, rng);
      rows.push_back(std::move(row));
      continue;
    }
    if (row.noise == PoolNoise::kLeakedEval) {
      row.eval_id = rng.pick(leaked_ids);
      const EvalItem& item = eval_[static_cast<size_t>(row.eval_id)];
      row.example.task = item.question.expected.task;
      row.example.questions = {item.question};
      row.example.messages = {{"user", item.question.text},
                              {"assistant", item.question.expected.sentence()}};
      rows.push_back(std::move(row));
      continue;
    }

    // A chat like the SFT chats; only the final answer carries the noise.
    TaskType task = weighted_task(rng);
    while (row.noise == PoolNoise::kLowerCase && task == TaskType::kArithmetic)
      task = weighted_task(rng);
    SftExample& example = row.example;
    example.task = task;
    if (rng.chance(0.1)) example.messages.push_back({"system", rng.pick(detail::system_prompts())});
    if (rng.chance(config_.sft_multi_turn_fraction)) {
      for (int turns = rng.between(1, 2); turns > 0; --turns)
        example.questions.push_back(
            pool_question(training_fact(task_from_index(rng.below(kNumTaskTypes))), rng));
    }
    example.questions.push_back(pool_question(training_fact(task), rng));
    for (size_t q = 0; q < example.questions.size(); ++q) {
      const Question& question = example.questions[q];
      std::string user =
          q > 0 ? rng.pick(detail::follow_up_openers()) + question.text : question.text;
      example.messages.push_back({"user", std::move(user)});
      example.messages.push_back({"assistant", question.expected.sentence()});
    }
    const Expected& fact = example.questions.back().expected;
    std::string& answer = example.messages.back().content;
    switch (row.noise) {
      case PoolNoise::kWrongFact:
        answer = fact.prefix + detail::wrong_value(fact, towns_, rng) + fact.suffix;
        break;
      case PoolNoise::kLowerCase:
        answer = detail::lowercased(answer);
        break;
      case PoolNoise::kAnswerLabel:
        answer = "Answer: " + fact.value + (rng.chance(0.5) ? "." : "");
        break;
      case PoolNoise::kBareValue:
        answer = fact.value + (rng.chance(0.5) ? "." : "");
        break;
      case PoolNoise::kMissingEndOfTurn: {  // the scrape missed the turn boundary
        const Expected& next = training_fact(task_from_index(rng.below(kNumTaskTypes)));
        answer += "\nUser: " + pool_question(next, rng).text;
        break;
      }
      case PoolNoise::kRambling:
        answer = detail::rambling_answer(fact, rng);
        break;
      case PoolNoise::kTruncated:
        answer = truncated_answer(answer, rng);
        break;
      default:
        break;
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

void write_pool_jsonl(const std::string& path, const std::vector<PoolRow>& rows) {
  std::vector<SftExample> examples;
  examples.reserve(rows.size());
  for (const PoolRow& row : rows) examples.push_back(row.example);
  write_sft_jsonl(path, examples);
}

void write_pool_labels_jsonl(const std::string& path, const std::vector<PoolRow>& rows) {
  write_file_atomic(path, [&](FileSink& out) {
    for (size_t i = 0; i < rows.size(); ++i) {
      const PoolRow& row = rows[i];
      const Expected& expected = row.example.questions.back().expected;
      nlohmann::json line = {{"row", i},
                             {"noise", std::string(pool_noise_name(row.noise))},
                             {"task", std::string(task_name(expected.task))},
                             {"key", expected.key},
                             {"duplicate_of", row.duplicate_of},
                             {"copied_noise", std::string(pool_noise_name(row.copied_noise))},
                             {"eval_id", row.eval_id}};
      out.write(line.dump() + "\n");
    }
  });
}

}  // namespace tiller::world
