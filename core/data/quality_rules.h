// Heuristic quality rules: Gopher's document rules for pretraining text, and chat rules for
// instruction data. Each rule has a name that becomes the rejection reason.
//
// Document rules and defaults: Gopher (Rae et al. 2021, "Scaling Language Models", Appendix
// A.1.1 and Table A1), computed as datatrove's GopherQualityFilter / GopherRepetitionFilter do:
//   gopher_word_count           words (tokens with a non-punctuation character) in [50, 100000]
//   gopher_mean_word_length     mean length of those words in [3, 10] characters
//   gopher_symbol_ratio         ('#' count) / words and ('...' + '…' count) / words <= 0.1
//   gopher_bullet_lines         lines starting with a bullet ('•' or '-') <= 90%
//   gopher_ellipsis_lines       lines ending with '...' or '…' <= 30%
//   gopher_alphabetic_words     tokens holding an alphabetic character >= 80%
//   gopher_stop_words           at least 2 of {the, be, to, of, and, that, have, with}
//   gopher_duplicate_lines      duplicated lines <= 30% of lines, their characters <= 20%
//   gopher_duplicate_paragraphs duplicated paragraphs (split at blank lines) <= 30%, chars <= 20%
//   gopher_top_ngram            characters of the most frequent 2/3/4-gram (times its count)
//                               <= 20% / 18% / 16% of the text
//   gopher_duplicate_ngrams     characters in repeated 5..10-grams <= 15/14/13/12/11/10%
// Word splitting differs from datatrove's: tokens are whitespace-separated and a token's leading
// and trailing ASCII punctuation is split off (datatrove uses an NLTK/spaCy word tokenizer), so a
// few borderline documents can fall on the other side; bench/py_curate.py measures the agreement.
//
// Chat rules (instruction data; rows with an assistant turn, or expected to have one):
//   no_assistant_turn   a chat without any assistant message
//   empty_answer        an assistant answer that is empty or whitespace
//   truncated_answer    the last answer does not end a sentence: its last character is not one of
//                       . ! ? … " ' ” ’ ) ] ` * : (cut mid-sentence; also catches bare values)
//   repeated_phrase     an answer where a run of words repeats back to back (two or more words
//                       twice, or one word three times) — the built-in world's rambling rule,
//                       on its words: whitespace tokens lower-cased, keeping letters, digits,
//                       '-' and '\'' (so "Z-O-R-V-I-K" is one word)
//   copies_question     an answer equal to the question, or whose word 3-grams are >= 80% found
//                       in the question (answers of >= 3 words)
//   answer_too_long     answer over max_answer_chars characters (0 = off, the default)
// Off by default, for scraped chat data whose answers should read as sentences (the pipeline
// turns them on for the world's noisy pool; each is what a data engineer writes after reading a
// few hundred rows of any scrape, and none looks at what an answer says):
//   lowercase_start     an answer that starts with a lower-case ASCII letter
//   label_prefix        an answer that opens with a label and a colon: "Answer:", "A:",
//                       "Response:", "Output:", "Assistant:", "Bot:" (a scraped Q/A layout)
//   turn_marker         an answer holding a chat special token ("<|") or a line that starts with
//                       a role label ("User:", "Human:", "Assistant:", "System:", "Q:"): the
//                       scrape missed where the turn ended and the answer runs into the next
//   answer_too_short    an answer of fewer than min_answer_words words (0 = off)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/data/rows.h"

namespace tiller::data {

struct GopherConfig {
  int64_t min_words = 50, max_words = 100000;
  double min_mean_word_length = 3, max_mean_word_length = 10;
  double max_symbol_word_ratio = 0.1;
  double max_bullet_lines_ratio = 0.9;
  double max_ellipsis_lines_ratio = 0.3;
  double min_alphabetic_words_ratio = 0.8;
  int64_t min_stop_words = 2;
  double max_duplicate_line_fraction = 0.3, max_duplicate_line_char_fraction = 0.2;
  double max_duplicate_paragraph_fraction = 0.3, max_duplicate_paragraph_char_fraction = 0.2;
  std::vector<std::pair<int, double>> top_ngram_char_fraction = {{2, 0.20}, {3, 0.18}, {4, 0.16}};
  std::vector<std::pair<int, double>> duplicate_ngram_char_fraction = {
      {5, 0.15}, {6, 0.14}, {7, 0.13}, {8, 0.12}, {9, 0.11}, {10, 0.10}};
};

struct ChatRulesConfig {
  bool require_assistant_turn = true;
  bool reject_empty_answer = true;
  bool reject_truncated_answer = true;
  bool reject_repeated_phrase = true;
  bool reject_copied_question = true;
  double copy_ngram_fraction = 0.8;
  int64_t max_answer_chars = 0;  // 0 = no limit
  bool reject_lowercase_start = false;
  bool reject_label_prefix = false;
  bool reject_turn_marker = false;
  int64_t min_answer_words = 0;  // 0 = no minimum
};

// The outcome of the rules on one row: empty rule = passed.
struct RuleVerdict {
  std::string rule;
  std::string detail;  // the measured value and the threshold, e.g. "12 words < 50"
  bool passed() const { return rule.empty(); }
};

RuleVerdict check_document(const std::string& text, const GopherConfig& config = {});
RuleVerdict check_chat(const Row& row, const ChatRulesConfig& config = {});

// The words the repetition rule compares, and the rule itself (exposed for tests).
std::vector<std::string> repetition_words(std::string_view text);
bool repeats_back_to_back(const std::vector<std::string>& words);

}  // namespace tiller::data
