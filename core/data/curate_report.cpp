// Curation config (JSON in and out) and the output files: curated.jsonl, rejected.jsonl,
// report.json, report.md. See curate.h.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/data/curate.h"
#include "core/io/atomic_file.h"
#include "kernels/error.h"

namespace tiller::data {
namespace {

using json = nlohmann::ordered_json;

json near_dedup_json(const NearDedupConfig& c) {
  return {{"ngram", c.ngram},
          {"bands", c.bands},
          {"rows_per_band", c.rows_per_band},
          {"jaccard_threshold", c.jaccard_threshold},
          {"seed", c.seed},
          {"lsh_threshold", lsh_threshold(c.bands, c.rows_per_band)}};
}

std::string field_name(RowField field) {
  switch (field) {
    case RowField::prompt:
      return "prompt";
    case RowField::response:
      return "response";
    case RowField::text:
      return "text";
  }
  return "text";
}

// Applies `value` (an object) to the fields named in `setters`; unknown keys are errors.
template <typename Setters>
void apply(const json& value, const std::string& where, const Setters& setters) {
  if (!value.is_object()) fail("curate config: {} must be an object", where);
  for (const auto& [key, item] : value.items()) {
    const auto it = setters.find(key);
    if (it == setters.end()) fail("curate config: unknown key '{}.{}'", where, key);
    try {
      it->second(item);
    } catch (const json::exception& e) {
      fail("curate config: '{}.{}' has the wrong type ({})", where, key, e.what());
    }
  }
}

template <typename T>
std::function<void(const json&)> set(T& field) {
  return [&field](const json& v) { field = v.get<T>(); };
}

json summary(const std::vector<double>& values, int bins = 20) {
  std::vector<double> finite;
  for (double v : values)
    if (std::isfinite(v)) finite.push_back(v);
  if (finite.empty()) return nullptr;
  std::sort(finite.begin(), finite.end());
  double sum = 0;
  for (double v : finite) sum += v;
  const double low = finite.front(), high = finite.back();
  std::vector<int64_t> counts(static_cast<size_t>(bins), 0);
  for (double v : finite) {
    const int b =
        high > low ? std::min(bins - 1, static_cast<int>((v - low) / (high - low) * bins)) : 0;
    ++counts[static_cast<size_t>(b)];
  }
  return {{"count", finite.size()},
          {"min", low},
          {"mean", sum / finite.size()},
          {"median", finite[finite.size() / 2]},
          {"max", high},
          {"histogram", {{"low", low}, {"high", high}, {"counts", counts}}}};
}

}  // namespace

CurateConfig CurateConfig::from_json_text(const std::string& text, const std::string& source) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    fail("curate config {}: not valid JSON ({})", source, e.what());
  }
  CurateConfig c;
  std::map<std::string, std::function<void(const json&)>> top = {
      {"stages", set(c.stages)},
      {"near_dedup",
       [&](const json& v) {
         apply(v, "near_dedup",
               std::map<std::string, std::function<void(const json&)>>{
                   {"ngram", set(c.near_dedup.ngram)},
                   {"bands", set(c.near_dedup.bands)},
                   {"rows_per_band", set(c.near_dedup.rows_per_band)},
                   {"jaccard_threshold", set(c.near_dedup.jaccard_threshold)},
                   {"seed", set(c.near_dedup.seed)}});
       }},
      {"gopher",
       [&](const json& v) {
         GopherConfig& g = c.gopher;
         apply(v, "gopher",
               std::map<std::string, std::function<void(const json&)>>{
                   {"min_words", set(g.min_words)},
                   {"max_words", set(g.max_words)},
                   {"min_mean_word_length", set(g.min_mean_word_length)},
                   {"max_mean_word_length", set(g.max_mean_word_length)},
                   {"max_symbol_word_ratio", set(g.max_symbol_word_ratio)},
                   {"max_bullet_lines_ratio", set(g.max_bullet_lines_ratio)},
                   {"max_ellipsis_lines_ratio", set(g.max_ellipsis_lines_ratio)},
                   {"min_alphabetic_words_ratio", set(g.min_alphabetic_words_ratio)},
                   {"min_stop_words", set(g.min_stop_words)},
                   {"max_duplicate_line_fraction", set(g.max_duplicate_line_fraction)},
                   {"max_duplicate_line_char_fraction", set(g.max_duplicate_line_char_fraction)},
                   {"max_duplicate_paragraph_fraction", set(g.max_duplicate_paragraph_fraction)},
                   {"max_duplicate_paragraph_char_fraction",
                    set(g.max_duplicate_paragraph_char_fraction)}});
       }},
      {"chat_rules",
       [&](const json& v) {
         ChatRulesConfig& r = c.chat_rules;
         apply(v, "chat_rules",
               std::map<std::string, std::function<void(const json&)>>{
                   {"require_assistant_turn", set(r.require_assistant_turn)},
                   {"reject_empty_answer", set(r.reject_empty_answer)},
                   {"reject_truncated_answer", set(r.reject_truncated_answer)},
                   {"reject_repeated_phrase", set(r.reject_repeated_phrase)},
                   {"reject_copied_question", set(r.reject_copied_question)},
                   {"copy_ngram_fraction", set(r.copy_ngram_fraction)},
                   {"max_answer_chars", set(r.max_answer_chars)},
                   {"reject_lowercase_start", set(r.reject_lowercase_start)},
                   {"reject_label_prefix", set(r.reject_label_prefix)},
                   {"reject_turn_marker", set(r.reject_turn_marker)},
                   {"min_answer_words", set(r.min_answer_words)}});
       }},
      {"decontaminate",
       [&](const json& v) {
         DecontaminationConfig& d = c.decontamination;
         apply(v, "decontaminate",
               std::map<std::string, std::function<void(const json&)>>{
                   {"ngram_documents", set(d.ngram_documents)},
                   {"ngram_chats", set(d.ngram_chats)},
                   {"exact_question", set(d.exact_question)},
                   {"train_field",
                    [&](const json& f) { d.train_field = parse_row_field(f.get<std::string>()); }},
                   {"eval_field",
                    [&](const json& f) { d.eval_field = parse_row_field(f.get<std::string>()); }}});
       }},
      {"scores",
       [&](const json& v) {
         ScoreFilterConfig& s = c.scores;
         apply(v, "scores",
               std::map<std::string, std::function<void(const json&)>>{
                   {"max_perplexity", set(s.max_perplexity)},
                   {"max_ifd", set(s.max_ifd)},
                   {"min_reward", set(s.min_reward)},
                   {"keep_top_fraction", set(s.keep_top_fraction)},
                   {"rank_by", set(s.rank_by)},
                   {"keep_top_within", set(s.keep_top_within)},
                   {"clusters", set(s.clusters)}});
       }},
      {"select", [&](const json& v) {
         SelectConfig& s = c.select;
         apply(v, "select",
               std::map<std::string, std::function<void(const json&)>>{
                   {"budget", set(s.budget)},
                   {"method", set(s.method)},
                   {"threshold", set(s.threshold)},
                   {"clusters", set(s.clusters)},
                   {"seed", set(s.seed)},
                   {"bag_of_words_dim", set(s.bag_of_words_dim)}});
       }}};
  apply(root, source, top);
  TILLER_CHECK(c.scores.keep_top_fraction > 0 && c.scores.keep_top_fraction <= 1,
               "curate config {}: scores.keep_top_fraction must be in (0, 1], got {}", source,
               c.scores.keep_top_fraction);
  TILLER_CHECK(c.scores.keep_top_within == "all" || c.scores.keep_top_within == "clusters",
               "curate config {}: scores.keep_top_within must be \"all\" or \"clusters\", got "
               "\"{}\"",
               source, c.scores.keep_top_within);
  TILLER_CHECK(c.scores.clusters >= 0, "curate config {}: scores.clusters must be >= 0, got {}",
               source, c.scores.clusters);
  return c;
}

std::string CurateConfig::to_json() const {
  const GopherConfig& g = gopher;
  const ChatRulesConfig& r = chat_rules;
  json root = {{"stages", stages},
               {"near_dedup", near_dedup_json(near_dedup)},
               {"gopher",
                {{"min_words", g.min_words},
                 {"max_words", g.max_words},
                 {"min_mean_word_length", g.min_mean_word_length},
                 {"max_mean_word_length", g.max_mean_word_length},
                 {"max_symbol_word_ratio", g.max_symbol_word_ratio},
                 {"max_bullet_lines_ratio", g.max_bullet_lines_ratio},
                 {"max_ellipsis_lines_ratio", g.max_ellipsis_lines_ratio},
                 {"min_alphabetic_words_ratio", g.min_alphabetic_words_ratio},
                 {"min_stop_words", g.min_stop_words},
                 {"max_duplicate_line_fraction", g.max_duplicate_line_fraction},
                 {"max_duplicate_line_char_fraction", g.max_duplicate_line_char_fraction},
                 {"max_duplicate_paragraph_fraction", g.max_duplicate_paragraph_fraction},
                 {"max_duplicate_paragraph_char_fraction", g.max_duplicate_paragraph_char_fraction},
                 {"top_ngram_char_fraction", g.top_ngram_char_fraction},
                 {"duplicate_ngram_char_fraction", g.duplicate_ngram_char_fraction}}},
               {"chat_rules",
                {{"require_assistant_turn", r.require_assistant_turn},
                 {"reject_empty_answer", r.reject_empty_answer},
                 {"reject_truncated_answer", r.reject_truncated_answer},
                 {"reject_repeated_phrase", r.reject_repeated_phrase},
                 {"reject_copied_question", r.reject_copied_question},
                 {"copy_ngram_fraction", r.copy_ngram_fraction},
                 {"max_answer_chars", r.max_answer_chars},
                 {"reject_lowercase_start", r.reject_lowercase_start},
                 {"reject_label_prefix", r.reject_label_prefix},
                 {"reject_turn_marker", r.reject_turn_marker},
                 {"min_answer_words", r.min_answer_words}}},
               {"decontaminate",
                {{"ngram_documents", decontamination.ngram_documents},
                 {"ngram_chats", decontamination.ngram_chats},
                 {"exact_question", decontamination.exact_question},
                 {"train_field", field_name(decontamination.train_field)},
                 {"eval_field", field_name(decontamination.eval_field)}}},
               {"scores",
                {{"max_perplexity", scores.max_perplexity},
                 {"max_ifd", scores.max_ifd},
                 {"min_reward", scores.min_reward},
                 {"keep_top_fraction", scores.keep_top_fraction},
                 {"rank_by", scores.rank_by},
                 {"keep_top_within", scores.keep_top_within},
                 {"clusters", scores.clusters}}},
               {"select",
                {{"budget", select.budget},
                 {"method", select.method},
                 {"threshold", select.threshold},
                 {"clusters", select.clusters},
                 {"seed", select.seed},
                 {"bag_of_words_dim", select.bag_of_words_dim}}}};
  return root.dump(2);
}

void write_curation_outputs(const std::filesystem::path& dir, const RowStore& store,
                            const CurateResult& result, const CurateConfig& config) {
  std::filesystem::create_directories(dir);
  TILLER_CHECK(result.rejections.size() == store.rows.size(), "curate: {} verdicts for {} rows",
               result.rejections.size(), store.rows.size());
  std::string curated, rejected;
  for (const MalformedLine& bad : store.malformed) {
    json line = {{"raw", bad.raw},
                 {"curate",
                  {{"stage", "read"},
                   {"reason", "malformed"},
                   {"detail", bad.problem},
                   {"source", bad.source}}}};
    // A malformed line may hold bytes that are not UTF-8; they are written as U+FFFD.
    rejected += line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }
  std::map<std::string, int64_t> removed_total;
  for (size_t i = 0; i < store.rows.size(); ++i) {
    const Row& row = store.rows[i];
    if (!result.rejections[i]) {
      curated += row.raw + "\n";
      continue;
    }
    const Rejection& r = *result.rejections[i];
    ++removed_total[r.reason];
    json line = json::parse(row.raw);
    json tag = {{"stage", r.stage},
                {"reason", r.reason},
                {"detail", r.detail},
                {"source", row.source},
                {"row", i}};
    if (r.duplicate_of >= 0) {
      tag["duplicate_of"] = r.duplicate_of;
      tag["duplicate_of_source"] = store.rows[static_cast<size_t>(r.duplicate_of)].source;
      tag["similarity"] = r.similarity;
    }
    if (r.eval_index >= 0) tag["eval_index"] = r.eval_index;
    line["curate"] = tag;
    rejected += line.dump() + "\n";
  }
  write_file_atomic((dir / "curated.jsonl").string(), curated);
  write_file_atomic((dir / "rejected.jsonl").string(), rejected);

  json report = {{"rows_in", result.rows_in + static_cast<int64_t>(store.malformed.size())},
                 {"rows_read", result.rows_in},
                 {"malformed_lines", store.malformed.size()},
                 {"rows_kept", result.rows_kept},
                 {"seconds", result.seconds}};
  json stages = json::array();
  for (const StageReport& s : result.stages)
    stages.push_back({{"name", s.name},
                      {"rows_in", s.rows_in},
                      {"rows_out", s.rows_out},
                      {"removed", s.rows_in - s.rows_out},
                      {"removed_by_reason", s.removed_by_reason},
                      {"seconds", s.seconds},
                      {"rows_per_second", s.seconds > 0 ? s.rows_in / s.seconds : 0.0},
                      {"notes", s.notes}});
  report["stages"] = stages;
  report["removed_by_reason"] = removed_total;
  report["scores"] = {{"perplexity", summary(result.scores.perplexity)},
                      {"ifd", summary(result.scores.ifd)},
                      {"reward", summary(result.scores.reward)}};
  if (result.diversity) {
    const DiversityReport& d = *result.diversity;
    report["diversity"] = {{"method", d.method},
                           {"budget", d.budget},
                           {"selected", d.selected},
                           {"embeddings", d.embeddings},
                           {"mean_nn_cosine_distance_pool_sample", d.mean_nn_distance_before},
                           {"mean_nn_cosine_distance_selected", d.mean_nn_distance_after},
                           {"tasks_before", d.tasks_before},
                           {"tasks_after", d.tasks_after}};
    if (!d.cluster_sizes.empty()) {
      report["diversity"]["cluster_sizes"] = d.cluster_sizes;
      report["diversity"]["cluster_selected"] = d.cluster_selected;
    }
  }
  report["config"] = json::parse(config.to_json());
  write_file_atomic((dir / "report.json").string(), report.dump(2) + "\n");

  std::string md =
      fmt::format("# Curation report\n\n{} rows in ({} malformed), {} kept, {:.2f} s.\n\n",
                  result.rows_in + static_cast<int64_t>(store.malformed.size()),
                  store.malformed.size(), result.rows_kept, result.seconds);
  md += "| stage | rows in | rows out | removed by reason | seconds |\n|---|---:|---:|---|---:|\n";
  for (const StageReport& s : result.stages) {
    std::string reasons;
    for (const auto& [reason, count] : s.removed_by_reason)
      reasons += fmt::format("{}{} {}", reasons.empty() ? "" : ", ", reason, count);
    md += fmt::format("| {} | {} | {} | {} | {:.2f} |\n", s.name, s.rows_in, s.rows_out,
                      reasons.empty() ? "-" : reasons, s.seconds);
  }
  for (const StageReport& s : result.stages)
    for (const std::string& note : s.notes) md += fmt::format("\n- {}: {}", s.name, note);
  md += "\n";
  const auto score_line = [&](const char* name, const std::vector<double>& values) {
    const json s = summary(values);
    if (s.is_null()) return;
    md += fmt::format("\n- {}: n {}, min {:.3f}, median {:.3f}, mean {:.3f}, max {:.3f}", name,
                      s["count"].get<int64_t>(), s["min"].get<double>(), s["median"].get<double>(),
                      s["mean"].get<double>(), s["max"].get<double>());
  };
  md += "\n## Scores\n";
  score_line("perplexity", result.scores.perplexity);
  score_line("IFD", result.scores.ifd);
  score_line("reward", result.scores.reward);
  md += "\n";
  if (result.diversity) {
    const DiversityReport& d = *result.diversity;
    md += fmt::format(
        "\n## Diversity\n\n{} selection to {} rows ({} selected) on {} embeddings: mean "
        "nearest-neighbour cosine distance {:.4f} (an evenly spaced pool sample of the same size: "
        "{:.4f}).\n",
        d.method, d.budget, d.selected, d.embeddings, d.mean_nn_distance_after,
        d.mean_nn_distance_before);
    if (!d.cluster_sizes.empty()) {
      std::vector<int64_t> sizes = d.cluster_sizes;
      std::sort(sizes.begin(), sizes.end());
      const int64_t quota = d.budget / static_cast<int64_t>(sizes.size());
      int64_t short_clusters = 0;
      for (int64_t size : sizes) short_clusters += size < quota;
      md += fmt::format(
          "\nk-means: {} clusters, {} to {} rows (median {}); an equal share is {} rows; clusters "
          "smaller than that give all they have: {}.\n",
          sizes.size(), sizes.front(), sizes.back(), sizes[sizes.size() / 2], quota,
          short_clusters);
    }
    if (!d.tasks_before.empty()) {
      md += "\n| task | pool | selected |\n|---|---:|---:|\n";
      for (const auto& [task, count] : d.tasks_before)
        md += fmt::format("| {} | {} | {} |\n", task, count,
                          d.tasks_after.contains(task) ? d.tasks_after.at(task) : 0);
    }
  }
  write_file_atomic((dir / "report.md").string(), md);
}

}  // namespace tiller::data
