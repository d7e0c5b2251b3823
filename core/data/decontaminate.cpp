// Decontamination: see decontaminate.h.
#include "core/data/decontaminate.h"

#include "core/data/normalise.h"
#include "kernels/error.h"

namespace tiller::data {
namespace {

const std::string& field_of(const Row& row, RowField field) {
  switch (field) {
    case RowField::prompt:
      return row.prompt;
    case RowField::response:
      return row.response;
    case RowField::text:
      return row.text;
  }
  return row.text;
}

}  // namespace

RowField parse_row_field(const std::string& name) {
  if (name == "prompt") return RowField::prompt;
  if (name == "response") return RowField::response;
  if (name == "text") return RowField::text;
  fail("decontaminate: unknown field '{}'; expected prompt, response or text", name);
}

Decontaminator::Decontaminator(std::vector<Row> eval_rows, const DecontaminationConfig& config)
    : eval_(std::move(eval_rows)), config_(config) {
  TILLER_CHECK(config.ngram_documents >= 1 && config.ngram_chats >= 1,
               "decontaminate: n-gram sizes must be >= 1, got {} and {}", config.ngram_documents,
               config.ngram_chats);
  for (size_t i = 0; i < eval_.size(); ++i) {
    if (eval_[i].prompt.empty()) continue;
    questions_.emplace(text_hash64(normalise_text(eval_[i].prompt)), static_cast<int64_t>(i));
  }
  build(documents_, config.ngram_documents);
  build(chats_, config.ngram_chats);
}

void Decontaminator::build(NgramIndex& index, int n) const {
  index.n = n;
  for (size_t i = 0; i < eval_.size(); ++i) {
    const std::string& source = field_of(eval_[i], config_.eval_field).empty()
                                    ? eval_[i].text
                                    : field_of(eval_[i], config_.eval_field);
    const std::string normalised = normalise_text(source);
    const auto words = static_cast<int>(word_spans(normalised).size());
    if (words == 0) continue;
    if (words < n) {
      index.short_texts[words].emplace(text_hash64(normalised), static_cast<int64_t>(i));
      continue;
    }
    for (uint64_t gram : word_shingles(normalised, n))
      index.full.emplace(gram, static_cast<int64_t>(i));
  }
}

std::optional<int64_t> Decontaminator::find(const NgramIndex& index,
                                            const std::string& normalised) const {
  const std::vector<WordSpan> words = word_spans(normalised);
  const auto check_grams =
      [&](int n, const std::unordered_map<uint64_t, int64_t>& table) -> std::optional<int64_t> {
    if (table.empty() || words.size() < static_cast<size_t>(n)) return std::nullopt;
    for (size_t i = 0; i + n <= words.size(); ++i) {
      const uint32_t begin = words[i].begin, end = words[i + n - 1].end;
      const auto hit =
          table.find(shingle_hash64(std::string_view(normalised).substr(begin, end - begin)));
      if (hit != table.end()) return hit->second;
    }
    return std::nullopt;
  };
  if (auto hit = check_grams(index.n, index.full)) return hit;
  for (const auto& [length, table] : index.short_texts)
    if (auto hit = check_grams(length, table)) return hit;
  return std::nullopt;
}

std::optional<Contamination> Decontaminator::check(const Row& row) const {
  if (eval_.empty()) return std::nullopt;
  if (config_.exact_question && !row.prompt.empty()) {
    const auto hit = questions_.find(text_hash64(normalise_text(row.prompt)));
    if (hit != questions_.end())
      return Contamination{"exact_question", hit->second, eval_[hit->second].source};
  }
  const NgramIndex& index = row.format == RowFormat::text ? documents_ : chats_;
  if (auto hit = find(index, normalise_text(field_of(row, config_.train_field))))
    return Contamination{"ngram_overlap", *hit, eval_[*hit].source};
  return std::nullopt;
}

}  // namespace tiller::data
