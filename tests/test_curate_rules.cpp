// Quality rules: each Gopher document rule and each chat rule on hand-made rows.
#include <catch2/catch.hpp>

#include "core/data/curate.h"
#include "core/data/quality_rules.h"
#include "kernels/random.h"

using namespace tiller::data;

namespace {

// `words` ordinary words drawn at random (seeded), in sentences of ten, with stop words among
// them: passes every Gopher rule. Each breaking case below starts from one of these.
std::string sentences(int words, uint64_t seed, const std::string& line_start = "",
                      const std::string& line_end = ".\n") {
  static const std::vector<std::string> kWords = {
      "the",    "farmer",  "walked", "market",   "with",    "apples",   "and",    "pears",  "to",
      "of",     "river",   "bright", "morning",  "sold",    "baskets",  "green",  "golden", "that",
      "have",   "people",  "town",   "square",   "quiet",   "evening",  "bread",  "cheese", "honey",
      "water",  "stone",   "bridge", "children", "laughed", "singing",  "songs",  "wooden", "cart",
      "horses", "field",   "barley", "wheat",    "harvest", "autumn",   "winter", "garden", "roses",
      "window", "kitchen", "table",  "lantern",  "village", "mountain", "forest", "birds",  "nest"};
  std::string text;
  for (int i = 0; i < words; ++i) {
    if (i % 10 == 0) text += line_start;
    text += kWords[tiller::random::bits(seed, static_cast<uint64_t>(i)) % kWords.size()];
    text += (i % 10 == 9) ? line_end : " ";
  }
  return text;
}

std::string rule_of(const std::string& text) {
  const RuleVerdict verdict = check_document(text);
  INFO(verdict.detail);
  return verdict.rule;
}

Row chat(const std::string& question, const std::string& answer) {
  Row row;
  row.format = RowFormat::chat;
  row.messages = {{"user", question}, {"assistant", answer}};
  row.prompt = question;
  row.response = answer;
  return row;
}

}  // namespace

TEST_CASE("a clean document passes every Gopher rule", "[curate]") {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const RuleVerdict verdict = check_document(sentences(200, seed));
    INFO(verdict.rule << ": " << verdict.detail);
    CHECK(verdict.passed());
  }
}

TEST_CASE("each Gopher rule rejects the document built to break it", "[curate]") {
  CHECK(rule_of(sentences(40, 1)) == "gopher_word_count");
  std::string short_words;
  for (uint64_t i = 0; i < 80; ++i)
    short_words += std::string(1, char('a' + tiller::random::bits(11, 2 * i) % 26)) +
                   char('a' + tiller::random::bits(11, 2 * i + 1) % 26) + " the ";
  CHECK(rule_of(short_words) == "gopher_mean_word_length");
  std::string long_words = "the and of ";
  for (int i = 0; i < 60; ++i) long_words += "extraordinarily" + std::to_string(i * 7919) + "x ";
  CHECK(rule_of(long_words) == "gopher_mean_word_length");
  std::string hashes = sentences(200, 2);
  for (int i = 0; i < 30; ++i) hashes += " #" + std::to_string(i * 37);
  CHECK(rule_of(hashes) == "gopher_symbol_ratio");
  CHECK(rule_of(sentences(200, 3, "- ")) == "gopher_bullet_lines");
  // One line in two ends with "..." (over 30%) while "..." stays under 0.1 per word.
  std::string ellipses = sentences(200, 4, "", ".\n");
  std::string mixed;
  int line = 0;
  for (size_t start = 0; start < ellipses.size();) {
    size_t end = ellipses.find('\n', start);
    mixed += ellipses.substr(start, end - start - 1) + (line++ % 2 ? "..." : ".") + "\n";
    start = end + 1;
  }
  CHECK(rule_of(mixed) == "gopher_ellipsis_lines");
  std::string numbers = sentences(100, 5);
  for (int i = 0; i < 60; ++i) numbers.append(" ").append(std::to_string(1000 + i * 13));
  CHECK(rule_of(numbers) == "gopher_alphabetic_words");
  std::string no_stop;
  for (int i = 0; i < 80; ++i) no_stop += "farmer" + std::to_string(i * 31) + " ";
  CHECK(rule_of(no_stop) == "gopher_stop_words");
  const std::string lines = sentences(200, 6);
  const std::string first_line = lines.substr(0, lines.find('\n') + 1);
  std::string repeated_lines = lines;
  for (int i = 0; i < 10; ++i) repeated_lines += first_line;  // 10 of 30 lines repeat
  CHECK(rule_of(repeated_lines) == "gopher_duplicate_lines");
  const std::string paragraph = sentences(30, 7, "", ". ");
  CHECK(rule_of(sentences(200, 8) + "\n\n" + paragraph + "\n\n" + paragraph + "\n\n" + paragraph +
                "\n\n" + paragraph) == "gopher_duplicate_paragraphs");
  std::string top_bigram = sentences(200, 9);
  for (int i = 0; i < 50; ++i) top_bigram += " golden apples " + std::to_string(i * 101);
  CHECK(rule_of(top_bigram) == "gopher_top_ngram");
  const std::string base = sentences(300, 10, "", ". ");
  CHECK(rule_of(base + " " + base.substr(0, 500)) == "gopher_duplicate_ngrams");
}

TEST_CASE("each chat rule names its reason; a good chat passes", "[curate]") {
  CHECK(check_chat(chat("What is Zorvik's colour?", "Zorvik's colour is blue.")).passed());
  CHECK(check_chat(chat("How do you spell Zorvik?", "Zorvik is spelled Z-O-R-V-I-K.")).passed());
  Row no_answer = chat("Hello?", "");
  no_answer.messages.pop_back();
  CHECK(check_chat(no_answer).rule == "no_assistant_turn");
  CHECK(check_chat(chat("Hello?", "  \n ")).rule == "empty_answer");
  CHECK(check_chat(chat("What is Zorvik's colour?", "Zorvik's colour is")).rule ==
        "truncated_answer");
  CHECK(check_chat(chat("What is Zorvik's colour?", "blue")).rule == "truncated_answer");
  CHECK(check_chat(chat("Colour?", "It is blue is blue.")).rule == "repeated_phrase");
  CHECK(check_chat(chat("Colour?", "Blue blue blue.")).rule == "repeated_phrase");
  CHECK(check_chat(chat("What is Zorvik's colour?", "What is Zorvik's colour?")).rule ==
        "copies_question");
  CHECK(check_chat(chat("Tell me what the colour of Zorvik is", "The colour of Zorvik is.")).rule ==
        "copies_question");
  ChatRulesConfig limit;
  limit.max_answer_chars = 10;
  CHECK(check_chat(chat("Colour?", "It is a lovely shade of blue."), limit).rule ==
        "answer_too_long");
}

TEST_CASE("the opt-in sentence rules catch scraped answer layouts and pass canonical answers",
          "[curate]") {
  ChatRulesConfig strict;
  strict.reject_lowercase_start = strict.reject_label_prefix = strict.reject_turn_marker = true;
  strict.min_answer_words = 3;
  const auto rule = [&](const std::string& answer) {
    return check_chat(chat("Where does Zorvik live?", answer), strict).rule;
  };
  CHECK(rule("Zorvik lives in Pelmora.").empty());
  CHECK(rule("7 plus 5 is 12.").empty());
  CHECK(rule("ZORVIK in capital letters is ZORVIK.").empty());
  CHECK(rule("zorvik lives in pelmora.") == "lowercase_start");
  CHECK(rule("Answer: Pelmora.") == "label_prefix");
  CHECK(rule("answer: Pelmora") == "label_prefix");
  CHECK(rule("A: Zorvik lives in Pelmora.") == "label_prefix");
  CHECK(rule("Zorvik lives in Pelmora.\nUser: What colour is Brakou?") == "turn_marker");
  CHECK(rule("Zorvik lives in Pelmora.<|user|>Hi") == "turn_marker");
  CHECK(rule("Pelmora.") == "answer_too_short");
  CHECK(rule("Z-O-R-V-I-K.") == "answer_too_short");
  // "Answers:" is not a label and "Q:" only counts at a line start: these are sentences.
  CHECK(rule("Answers: there are three of them.").empty());
  CHECK(rule("Zorvik asked Q: where is home.").empty());
  // Off by default: the same answers pass the default rules (bar the ones that break them too).
  CHECK(check_chat(chat("Where?", "zorvik lives in pelmora.")).passed());
  CHECK(check_chat(chat("Where?", "Pelmora.")).passed());
  CHECK(check_chat(chat("Where?", "Zorvik lives in Pelmora.\nUser: Next?")).passed());
}

TEST_CASE("the curate config reads and writes the opt-in sentence rules", "[curate]") {
  const CurateConfig config = CurateConfig::from_json_text(
      R"({"chat_rules": {"reject_lowercase_start": true, "reject_label_prefix": true,
          "reject_turn_marker": true, "min_answer_words": 3}})",
      "test");
  CHECK(config.chat_rules.reject_lowercase_start);
  CHECK(config.chat_rules.reject_label_prefix);
  CHECK(config.chat_rules.reject_turn_marker);
  CHECK(config.chat_rules.min_answer_words == 3);
  CHECK(config.to_json().find("\"min_answer_words\": 3") != std::string::npos);
  CHECK_THROWS_WITH(CurateConfig::from_json_text(R"({"chat_rules": {"min_words": 3}})", "test"),
                    Catch::Contains("chat_rules.min_words"));
}

TEST_CASE("the repetition rule is the world's: two words twice or one word three times",
          "[curate]") {
  CHECK(repeats_back_to_back({"is", "blue", "is", "blue"}));
  CHECK(repeats_back_to_back({"very", "very", "very"}));
  CHECK_FALSE(repeats_back_to_back({"very", "very", "good"}));
  CHECK(repetition_words("Zorvik is spelled Z-O-R!") ==
        std::vector<std::string>{"zorvik", "is", "spelled", "z-o-r"});
}
