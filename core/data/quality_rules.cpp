// Gopher document rules and chat rules: see quality_rules.h.
#include "core/data/quality_rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "core/data/normalise.h"
#include "kernels/random.h"

namespace tiller::data {
namespace {

bool is_ascii_punctuation(unsigned char c) {
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
         (c >= 0x7B && c <= 0x7E);
}
bool is_space(unsigned char c) {
  return c == ' ' || (c >= 0x09 && c <= 0x0D);
}
// Bytes >= 0x80 count as letters: every non-ASCII UTF-8 byte belongs to a multi-byte character,
// and the non-ASCII characters of ordinary text are overwhelmingly letters.
bool is_alphabetic(unsigned char c) {
  return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c >= 0x80;
}

// Whitespace tokens with leading and trailing punctuation runs split off as tokens of their own.
std::vector<std::string_view> split_tokens(std::string_view text) {
  std::vector<std::string_view> tokens;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(static_cast<unsigned char>(text[i]))) ++i;
    size_t end = i;
    while (end < text.size() && !is_space(static_cast<unsigned char>(text[end]))) ++end;
    std::string_view token = text.substr(i, end - i);
    i = end;
    if (token.empty()) continue;
    size_t lead = 0, trail = token.size();
    while (lead < token.size() && is_ascii_punctuation(static_cast<unsigned char>(token[lead])))
      ++lead;
    if (lead == token.size()) {
      tokens.push_back(token);
      continue;
    }
    while (trail > lead && is_ascii_punctuation(static_cast<unsigned char>(token[trail - 1])))
      --trail;
    if (lead > 0) tokens.push_back(token.substr(0, lead));
    tokens.push_back(token.substr(lead, trail - lead));
    if (trail < token.size()) tokens.push_back(token.substr(trail));
  }
  return tokens;
}

bool has_non_punctuation(std::string_view token) {
  for (unsigned char c : token)
    if (!is_ascii_punctuation(c)) return true;
  return false;
}

size_t count_of(std::string_view text, std::string_view needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string_view::npos;
       at = text.find(needle, at + needle.size()))
    ++count;
  return count;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && is_space(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split_at(std::string_view text, bool paragraphs) {
  // Lines: split at runs of '\n'. Paragraphs: split at runs of two or more '\n'.
  std::vector<std::string_view> parts;
  size_t start = 0, i = 0;
  while (i < text.size()) {
    if (text[i] != '\n') {
      ++i;
      continue;
    }
    size_t run = i;
    while (run < text.size() && text[run] == '\n') ++run;
    if (!paragraphs || run - i >= 2) {
      parts.push_back(text.substr(start, i - start));
      start = run;
    }
    i = run;
  }
  parts.push_back(text.substr(start));
  return parts;
}

// datatrove's find_duplicates: (elements seen before, their total characters).
std::pair<size_t, size_t> duplicates(const std::vector<std::string_view>& parts) {
  std::unordered_set<std::string_view> seen;
  size_t count = 0, chars = 0;
  for (std::string_view part : parts) {
    if (!seen.insert(part).second) ++count, chars += part.size();
  }
  return {count, chars};
}

RuleVerdict fail_rule(std::string rule, std::string detail) {
  return {std::move(rule), std::move(detail)};
}

}  // namespace

RuleVerdict check_document(const std::string& text, const GopherConfig& config) {
  const double text_chars = std::max<double>(1.0, static_cast<double>(text.size()));

  // Repetition (GopherRepetitionFilter), in datatrove's order.
  const std::string_view stripped = trim(text);
  const auto paragraphs = split_at(stripped, /*paragraphs=*/true);
  const auto [dup_paragraphs, dup_paragraph_chars] = duplicates(paragraphs);
  if (dup_paragraphs / static_cast<double>(paragraphs.size()) >
      config.max_duplicate_paragraph_fraction)
    return fail_rule("gopher_duplicate_paragraphs",
                     fmt::format("{} of {} paragraphs repeat", dup_paragraphs, paragraphs.size()));
  if (dup_paragraph_chars / text_chars > config.max_duplicate_paragraph_char_fraction)
    return fail_rule("gopher_duplicate_paragraphs",
                     fmt::format("{:.3f} of characters in repeated paragraphs > {}",
                                 dup_paragraph_chars / text_chars,
                                 config.max_duplicate_paragraph_char_fraction));
  const auto lines = split_at(text, /*paragraphs=*/false);
  const auto [dup_lines, dup_line_chars] = duplicates(lines);
  if (dup_lines / static_cast<double>(lines.size()) > config.max_duplicate_line_fraction)
    return fail_rule("gopher_duplicate_lines",
                     fmt::format("{} of {} lines repeat", dup_lines, lines.size()));
  if (dup_line_chars / text_chars > config.max_duplicate_line_char_fraction)
    return fail_rule(
        "gopher_duplicate_lines",
        fmt::format("{:.3f} of characters in repeated lines > {}", dup_line_chars / text_chars,
                    config.max_duplicate_line_char_fraction));

  // n-grams are keyed by a 64-bit hash of their token hashes (a collision would need two
  // different n-grams of one document to agree on 64 bits); their character length is datatrove's
  // (" ".join for the top n-gram, "".join for the duplicated ones).
  const std::vector<std::string_view> tokens = split_tokens(text);
  std::vector<uint64_t> token_hash(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) token_hash[i] = shingle_hash64(tokens[i]);
  const auto gram_hash = [&](size_t begin, int n) {
    uint64_t h = static_cast<uint64_t>(n);
    for (int k = 0; k < n; ++k)
      h = random::mix64(h ^ token_hash[begin + k]) + 0x9e3779b97f4a7c15ull;
    return h;
  };
  const auto gram_chars = [&](size_t begin, int n) {
    size_t chars = 0;
    for (int k = 0; k < n; ++k) chars += tokens[begin + k].size();
    return chars;
  };
  for (const auto& [n, limit] : config.top_ngram_char_fraction) {
    if (tokens.size() < static_cast<size_t>(n)) continue;
    std::unordered_map<uint64_t, std::pair<int64_t, size_t>> counts;  // hash -> (count, first)
    counts.reserve(tokens.size());
    for (size_t i = 0; i + n <= tokens.size(); ++i) {
      auto [it, inserted] = counts.try_emplace(gram_hash(i, n), 0, i);
      ++it->second.first;
    }
    int64_t top_count = 0;
    size_t top_first = 0;
    for (const auto& [hash, entry] : counts)  // the most common; ties to the earliest, as Counter
      if (entry.first > top_count || (entry.first == top_count && entry.second < top_first))
        top_count = entry.first, top_first = entry.second;
    const double fraction = top_count > 1 ? static_cast<double>(gram_chars(top_first, n) + n - 1) *
                                                top_count / text_chars
                                          : 0.0;
    if (fraction > limit)
      return fail_rule("gopher_top_ngram",
                       fmt::format("top {}-gram covers {:.3f} > {}", n, fraction, limit));
  }
  for (const auto& [n, limit] : config.duplicate_ngram_char_fraction) {
    std::unordered_set<uint64_t> seen;
    seen.reserve(tokens.size());
    size_t repeated_chars = 0, i = 0;
    while (i + n <= tokens.size()) {
      if (!seen.insert(gram_hash(i, n)).second) {
        repeated_chars += gram_chars(i, n);
        i += n;
      } else {
        ++i;
      }
    }
    const double fraction = repeated_chars / text_chars;
    if (fraction > limit)
      return fail_rule("gopher_duplicate_ngrams",
                       fmt::format("repeated {}-grams cover {:.3f} > {}", n, fraction, limit));
  }

  // Quality (GopherQualityFilter).
  std::vector<std::string_view> words;
  for (std::string_view token : tokens)
    if (has_non_punctuation(token)) words.push_back(token);
  const auto n_words = static_cast<int64_t>(words.size());
  if (n_words < config.min_words || n_words > config.max_words)
    return fail_rule("gopher_word_count", fmt::format("{} words, expected [{}, {}]", n_words,
                                                      config.min_words, config.max_words));
  double total_length = 0;
  for (std::string_view w : words) total_length += static_cast<double>(w.size());
  const double mean_length = total_length / static_cast<double>(n_words);
  if (mean_length < config.min_mean_word_length || mean_length > config.max_mean_word_length)
    return fail_rule("gopher_mean_word_length",
                     fmt::format("mean word length {:.2f}, expected [{}, {}]", mean_length,
                                 config.min_mean_word_length, config.max_mean_word_length));
  const double token_count = static_cast<double>(std::max<size_t>(1, tokens.size()));
  const double hash_ratio = static_cast<double>(count_of(text, "#")) / token_count;
  const double ellipsis_ratio =
      static_cast<double>(count_of(text, "...") + count_of(text, "…")) / token_count;
  if (hash_ratio > config.max_symbol_word_ratio || ellipsis_ratio > config.max_symbol_word_ratio)
    return fail_rule("gopher_symbol_ratio",
                     fmt::format("'#' {:.3f}, ellipsis {:.3f} per word > {}", hash_ratio,
                                 ellipsis_ratio, config.max_symbol_word_ratio));
  // Python's str.splitlines() (blank lines count), as GopherQualityFilter uses; the repetition
  // rules above split at runs of newlines instead, as GopherRepetitionFilter does.
  std::vector<std::string_view> all_lines;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    all_lines.push_back(std::string_view(text).substr(start, end - start));
    start = end + 1;
  }
  if (all_lines.empty()) all_lines.push_back({});
  size_t bullets = 0, ellipsis_lines = 0;
  for (std::string_view line : all_lines) {
    std::string_view t = trim(line);
    if (t.starts_with("\xE2\x80\xA2") || t.starts_with("-")) ++bullets;
    if (t.ends_with("...") || t.ends_with("\xE2\x80\xA6")) ++ellipsis_lines;
  }
  const double line_count = static_cast<double>(all_lines.size());
  if (bullets / line_count > config.max_bullet_lines_ratio)
    return fail_rule("gopher_bullet_lines",
                     fmt::format("{} of {} lines are bullets", bullets, all_lines.size()));
  if (ellipsis_lines / line_count > config.max_ellipsis_lines_ratio)
    return fail_rule("gopher_ellipsis_lines", fmt::format("{} of {} lines end with an ellipsis",
                                                          ellipsis_lines, all_lines.size()));
  size_t alphabetic = 0;
  for (std::string_view token : tokens)
    if (std::any_of(token.begin(), token.end(),
                    [](char c) { return is_alphabetic(static_cast<unsigned char>(c)); }))
      ++alphabetic;
  if (alphabetic / token_count < config.min_alphabetic_words_ratio)
    return fail_rule("gopher_alphabetic_words",
                     fmt::format("{:.3f} of words have a letter < {}", alphabetic / token_count,
                                 config.min_alphabetic_words_ratio));
  static const std::unordered_set<std::string_view> kStopWords = {"the", "be",   "to",   "of",
                                                                  "and", "that", "have", "with"};
  int64_t stop_words = 0;
  for (std::string_view w : words)
    if (kStopWords.contains(w)) ++stop_words;
  if (stop_words < config.min_stop_words)
    return fail_rule("gopher_stop_words",
                     fmt::format("{} stop words < {}", stop_words, config.min_stop_words));
  return {};
}

std::vector<std::string> repetition_words(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (is_space(byte)) {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else if (std::isalnum(byte) || c == '-' || c == '\'' || byte >= 0x80) {
      word += static_cast<char>(std::tolower(byte));
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

bool repeats_back_to_back(const std::vector<std::string>& words) {
  const size_t n = words.size();
  for (size_t i = 0; i + 2 < n; ++i)  // one word three times
    if (words[i] == words[i + 1] && words[i] == words[i + 2]) return true;
  for (size_t length = 2; 2 * length <= n; ++length)
    for (size_t i = 0; i + 2 * length <= n; ++i)
      if (std::equal(words.begin() + i, words.begin() + i + length, words.begin() + i + length))
        return true;
  return false;
}

// "Answer: ..." and friends: the first whitespace token is one of the labels, with its colon.
bool opens_with_label(std::string_view answer) {
  static constexpr std::string_view kLabels[] = {
      "answer:", "a:", "response:", "output:", "assistant:", "bot:"};
  const size_t end = answer.find_first_of(" \t\n");
  std::string first(answer.substr(0, end));
  for (char& c : first) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return std::find(std::begin(kLabels), std::end(kLabels), first) != std::end(kLabels);
}

bool holds_turn_marker(std::string_view answer) {
  if (answer.find("<|") != std::string_view::npos) return true;
  static constexpr std::string_view kRoles[] = {"user:", "human:", "assistant:", "system:", "q:"};
  for (size_t start = 0; start < answer.size();) {
    size_t end = answer.find('\n', start);
    if (end == std::string_view::npos) end = answer.size();
    std::string line(trim(answer.substr(start, end - start)));
    for (char& c : line) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (std::string_view role : kRoles)
      if (line.starts_with(role)) return true;
    start = end + 1;
  }
  return false;
}

RuleVerdict check_chat(const Row& row, const ChatRulesConfig& config) {
  if (row.format == RowFormat::text) return {};
  if (config.require_assistant_turn && !row.has_assistant_turn())
    return fail_rule("no_assistant_turn", "the chat has no assistant message");
  std::vector<std::string_view> answers;
  if (row.format == RowFormat::chat) {
    for (const Message& m : row.messages)
      if (m.role == "assistant") answers.push_back(m.content);
  } else {
    answers.push_back(row.response);
  }
  const std::string question = normalise_text(row.prompt);
  for (size_t k = 0; k < answers.size(); ++k) {
    const std::string_view answer = trim(answers[k]);
    if (config.reject_empty_answer && answer.empty())
      return fail_rule("empty_answer", fmt::format("assistant answer {} is empty", k));
    if (answer.empty()) continue;
    if (config.max_answer_chars > 0 &&
        static_cast<int64_t>(answer.size()) > config.max_answer_chars)
      return fail_rule("answer_too_long",
                       fmt::format("{} characters > {}", answer.size(), config.max_answer_chars));
    if (config.reject_turn_marker && holds_turn_marker(answer))
      return fail_rule("turn_marker", fmt::format("assistant answer {} runs into another turn", k));
    if (config.reject_label_prefix && opens_with_label(answer))
      return fail_rule("label_prefix", fmt::format("assistant answer {} opens with a label", k));
    if (config.reject_lowercase_start && answer.front() >= 'a' && answer.front() <= 'z')
      return fail_rule("lowercase_start",
                       fmt::format("assistant answer {} starts in lower case", k));
    const std::string normalised = normalise_text(answer);
    const std::vector<std::string> words = repetition_words(answer);
    if (config.min_answer_words > 0 && static_cast<int64_t>(words.size()) < config.min_answer_words)
      return fail_rule("answer_too_short",
                       fmt::format("{} words < {}", words.size(), config.min_answer_words));
    if (config.reject_repeated_phrase && repeats_back_to_back(words))
      return fail_rule("repeated_phrase", "a run of words repeats back to back");
    if (config.reject_copied_question && !question.empty()) {
      if (normalised == question) return fail_rule("copies_question", "the answer is the question");
      const std::vector<uint64_t> answer_grams = word_shingles(normalised, 3);
      const std::vector<uint64_t> question_grams = word_shingles(question, 3);
      if (words.size() >= 3) {
        size_t found = 0;
        for (uint64_t g : answer_grams)
          if (std::binary_search(question_grams.begin(), question_grams.end(), g)) ++found;
        const double fraction =
            static_cast<double>(found) / static_cast<double>(answer_grams.size());
        if (fraction >= config.copy_ngram_fraction)
          return fail_rule(
              "copies_question",
              fmt::format("{:.2f} of the answer's 3-grams are in the question", fraction));
      }
    }
  }
  if (config.reject_truncated_answer) {
    const std::string_view last = trim(answers.back());
    static constexpr std::string_view kEnders[] = {
        ".",           "!", "?", "\"", "'", ")", "]", "`", "*", ":", "\xE2\x80\xA6", "\xE2\x80\x9D",
        "\xE2\x80\x99"};
    const bool ends = std::any_of(std::begin(kEnders), std::end(kEnders),
                                  [&](std::string_view e) { return last.ends_with(e); });
    if (!last.empty() && !ends)
      return fail_rule("truncated_answer", "the last answer does not end a sentence");
  }
  return {};
}

}  // namespace tiller::data
