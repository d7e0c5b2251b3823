// The exact scorer and verifiable reward of the task world, plus its file writers.
//
// Scoring rules (mirrored in examples/WORLD.md, keep both in step):
// - The answer is the completion before the first end-of-turn token, with surrounding whitespace
//   trimmed; anything after that token is ignored, because generation stops there.
// - single_sentence: non-empty, starts with an upper-case letter or a digit, contains exactly one
//   '.', '!' or '?' and that one is the last character, and has no line break.
// - follows_template: answer == prefix + value + suffix for a value of the task's kind (a
// lower-case
//   word for colours and foods, a capitalised word for towns, an integer for ages, legs and sums,
//   "Z-O-R" for spelling, "ZOR" for capitals). The value may be wrong; that is fact_correct's job.
// - rambling: longer than kMaxAnswerChars, or some run of words repeats back to back (a run of two
//   or more words twice, or one word three times), compared without case and punctuation.
// - reward: kRewardCorrect when exact and well-formed, kRewardFormatOnly when only well-formed.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "core/io/atomic_file.h"
#include "kernels/error.h"
#include "core/world/world_detail.h"

namespace tiller::world {
namespace {

bool is_upper(char c) {
  return c >= 'A' && c <= 'Z';
}
bool is_lower(char c) {
  return c >= 'a' && c <= 'z';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::string_view trim(std::string_view text) {
  auto is_space = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

bool all_of(std::string_view text, bool (*predicate)(char)) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!predicate(c)) return false;
  }
  return true;
}

bool is_integer(std::string_view text) {
  if (!text.empty() && text.front() == '-') text.remove_prefix(1);
  return text.size() <= 9 && all_of(text, is_digit);
}

bool is_spelled(std::string_view text) {  // "Z-O-R": upper-case letters joined by single dashes
  if (text.size() % 2 == 0) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i % 2 == 0 ? !is_upper(text[i]) : text[i] != '-') return false;
  }
  return true;
}

bool value_has_kind(TaskType task, std::string_view value) {
  switch (task) {
    case TaskType::kColour:
    case TaskType::kFavouriteFood:
      return all_of(value, is_lower);
    case TaskType::kHomeTown:
      return value.size() >= 2 && is_upper(value.front()) && all_of(value.substr(1), is_lower);
    case TaskType::kAge:
    case TaskType::kLegs:
    case TaskType::kArithmetic:
      return is_integer(value);
    case TaskType::kSpelling:
      return is_spelled(value);
    case TaskType::kCapitals:
      return all_of(value, is_upper);
  }
  return false;
}

bool is_single_sentence(std::string_view answer) {
  if (answer.empty() || !(is_upper(answer.front()) || is_digit(answer.front()))) return false;
  if (answer.back() != '.') return false;
  int terminators = 0;
  for (char c : answer) {
    if (c == '\n') return false;
    if (c == '.' || c == '!' || c == '?') ++terminators;
  }
  return terminators == 1;
}

std::vector<std::string> normalised_words(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\t') {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '\'') {
      word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

bool repeats_back_to_back(const std::vector<std::string>& words) {
  size_t n = words.size();
  for (size_t i = 0; i + 2 < n; ++i) {
    if (words[i] == words[i + 1] && words[i] == words[i + 2]) return true;
  }
  for (size_t run = 2; 2 * run <= n; ++run) {
    for (size_t i = 0; i + 2 * run <= n; ++i) {
      if (std::equal(words.begin() + static_cast<long>(i),
                     words.begin() + static_cast<long>(i + run),
                     words.begin() + static_cast<long>(i + run)))
        return true;
    }
  }
  return false;
}

std::string_view role_token(const std::string& role) {
  if (role == "system") return special_tokens::kSystem;
  if (role == "user") return special_tokens::kUser;
  if (role == "assistant") return special_tokens::kAssistant;
  fail("render_prompt: unknown role '{}' (expected system, user or assistant)", role);
}

nlohmann::json messages_json(const std::vector<ChatMessage>& messages) {
  nlohmann::json array = nlohmann::json::array();
  for (const auto& message : messages) {
    array.push_back({{"role", message.role}, {"content", message.content}});
  }
  return array;
}

}  // namespace

Score score(const Expected& expected, std::string_view response) {
  Score result;
  size_t end = response.find(special_tokens::kEndOfTurn);
  result.ends_turn = end != std::string_view::npos;
  std::string_view answer = trim(response.substr(0, end));
  result.answer = std::string(answer);
  result.single_sentence = is_single_sentence(answer);

  size_t frame = expected.prefix.size() + expected.suffix.size();
  if (answer.size() > frame && answer.starts_with(expected.prefix) &&
      answer.ends_with(expected.suffix)) {
    std::string_view value = answer.substr(expected.prefix.size(), answer.size() - frame);
    result.follows_template = value_has_kind(expected.task, value);
    result.fact_correct = result.follows_template && value == expected.value;
  }
  result.rambling = static_cast<int>(answer.size()) > kMaxAnswerChars ||
                    repeats_back_to_back(normalised_words(answer));
  result.format_ok =
      result.ends_turn && result.single_sentence && result.follows_template && !result.rambling;
  result.exact_match = answer == expected.sentence();
  result.reward = reward_for(result);
  return result;
}

Score score(const EvalItem& item, std::string_view response) {
  return score(item.question.expected, response);
}

double reward_for(const Score& score) {
  if (score.format_ok && score.exact_match) return kRewardCorrect;
  if (score.format_ok) return kRewardFormatOnly;
  return 0.0;
}

std::string render_prompt(const std::vector<ChatMessage>& messages) {
  std::string text;
  for (const auto& message : messages) {
    text += fmt::format("{}\n{}{}\n", role_token(message.role), message.content,
                        special_tokens::kEndOfTurn);
  }
  return fmt::format("{}{}\n", text, special_tokens::kAssistant);
}

std::string completion_for(const Expected& expected) {
  return expected.sentence() + std::string(special_tokens::kEndOfTurn);
}

void write_sft_jsonl(const std::string& path, const std::vector<SftExample>& examples) {
  write_file_atomic(path, [&](FileSink& out) {
    for (const auto& example : examples) {
      out.write(nlohmann::json{{"messages", messages_json(example.messages)}}.dump() + "\n");
    }
  });
}

void write_preferences_jsonl(const std::string& path, const std::vector<PreferencePair>& pairs) {
  write_file_atomic(path, [&](FileSink& out) {
    for (const auto& pair : pairs) {
      nlohmann::json line = {{"prompt", render_prompt(pair.prompt)},
                             {"chosen", pair.chosen},
                             {"rejected", pair.rejected}};
      out.write(line.dump() + "\n");
    }
  });
}

void write_eval_jsonl(const std::string& path, const std::vector<EvalItem>& items) {
  write_file_atomic(path, [&](FileSink& out) {
    for (const auto& item : items) {
      const Expected& expected = item.question.expected;
      nlohmann::json line = {{"id", item.id},
                             {"task", std::string(task_name(expected.task))},
                             {"key", expected.key},
                             {"messages", messages_json(item.prompt)},
                             {"prompt", render_prompt(item.prompt)},
                             {"answer", expected.sentence()},
                             {"prefix", expected.prefix},
                             {"value", expected.value},
                             {"suffix", expected.suffix}};
      out.write(line.dump() + "\n");
    }
  });
}

void write_text(const std::string& path, std::string_view text) {
  write_file_atomic(path, text);
}

}  // namespace tiller::world
