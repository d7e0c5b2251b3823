// Decontamination: drop training rows that contain evaluation questions.
//
// Two checks, in this order:
//   exact_question  the training row's normalised prompt equals an eval row's normalised prompt
//                   (normalise.h), for rows that have a prompt
//   ngram_overlap   the training row shares a word n-gram of its normalised text with an eval
//                   row's normalised prompt (eval text rows: their text). n = 13 for documents
//                   (GPT-3, Brown et al. 2020, Appendix C) and 8 for chats and QA (our choice:
//                   short questions have few 13-grams). An eval text shorter than n words counts
//                   as one n-gram of its whole length, so it matches where it appears whole.
// A shared run of n-1 words is not a match (a "near miss"), by construction.
// The train side compares `text` (prompt + response, or the document), the eval side `prompt`
// when the eval row has one, else `text`; both configurable.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/data/rows.h"

namespace tiller::data {

enum class RowField { prompt, response, text };
RowField parse_row_field(const std::string& name);  // "prompt", "response" or "text"

struct DecontaminationConfig {
  int ngram_documents = 13;
  int ngram_chats = 8;
  bool exact_question = true;
  RowField train_field = RowField::text;
  RowField eval_field = RowField::prompt;  // falls back to text for eval rows without a prompt
};

struct Contamination {
  std::string reason;  // "exact_question" or "ngram_overlap"
  int64_t eval_index = -1;
  std::string eval_source;
};

class Decontaminator {
 public:
  Decontaminator(std::vector<Row> eval_rows, const DecontaminationConfig& config = {});
  std::optional<Contamination> check(const Row& row) const;
  int64_t eval_rows() const { return static_cast<int64_t>(eval_.size()); }

 private:
  struct NgramIndex {
    int n = 0;
    std::unordered_map<uint64_t, int64_t> full;  // n-gram hash -> eval row
    // Eval texts shorter than n words: their word count -> (whole-text hash -> eval row).
    std::unordered_map<int, std::unordered_map<uint64_t, int64_t>> short_texts;
  };
  void build(NgramIndex& index, int n) const;
  std::optional<int64_t> find(const NgramIndex& index, const std::string& normalised) const;

  std::vector<Row> eval_;
  DecontaminationConfig config_;
  std::unordered_map<uint64_t, int64_t> questions_;  // normalised prompt hash -> eval row
  NgramIndex documents_, chats_;
};

}  // namespace tiller::data
