// The pipeline's curation stage and its report (see curation.h).
#include "curation.h"

#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "core/data/rows.h"
#include "rl/data/curate_scores.h"
#include "rl/reports/metrics.h"

namespace pipeline {

using namespace tiller;
namespace fs = std::filesystem;

namespace {

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  TILLER_CHECK(in.good(), "pipeline: cannot open {}", path.string());
  auto value = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  TILLER_CHECK(!value.is_discarded(), "pipeline: {} is not JSON", path.string());
  return value;
}

// The pool rows that curation dropped: rejected.jsonl's "curate": {"row": i}.
std::set<int64_t> rejected_rows(const fs::path& rejected) {
  std::ifstream in(rejected);
  TILLER_CHECK(in.good(), "pipeline: cannot open {}", rejected.string());
  std::set<int64_t> rows;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    auto record = nlohmann::json::parse(line, nullptr, false);
    TILLER_CHECK(
        !record.is_discarded() && record.contains("curate") && record["curate"].contains("row"),
        "pipeline: {} line {} has no curate.row", rejected.string(), number);
    rows.insert(record["curate"]["row"].get<int64_t>());
  }
  return rows;
}

}  // namespace

data::CurateConfig pipeline_curate_config(int64_t budget) {
  data::CurateConfig config;
  // The pool's answers should each be one sentence: the opt-in rules a user adds after reading a
  // sample of any scraped chat set (lower-case starts, "Answer:" labels, answers that run into the
  // next turn, one- and two-word answers).
  config.chat_rules.reject_lowercase_start = true;
  config.chat_rules.reject_label_prefix = true;
  config.chat_rules.reject_turn_marker = true;
  config.chat_rules.min_answer_words = 3;
  // The base model's scores, read in plain text (ModelScorer's plain_text: it never saw the chat
  // template): rows ranked by the perplexity of their answers — how well they agree with what the
  // base learned in pretraining — and the less plausible half dropped. Cherry's IFD cut is off
  // (and so not computed): an answer that names its subject ("Zorvik is green.") is as
  // predictable without its question, so IFD hovers at 1 for right and wrong facts alike.
  config.scores.max_ifd = 0;
  config.scores.rank_by = "perplexity";
  config.scores.keep_top_fraction = 0.5;
  // The half is cut within k-means clusters of the instructions (the embeddings select uses), not
  // over the whole pool: plain-text perplexity is comparable only between like answers, and one
  // global cut dropped most home-town rows (a town's name is less predictable text than a
  // number or a colour, right or wrong): 8 of them reached the SFT set and 11 of the SFT
  // model's 16 format misses answered "where does X live?" with another task's sentence. On
  // one base, curated set -> SFT (exact / format, SFT at lr 2e-3): global 64.0 / 91.5, per
  // cluster 65.0 / 95.0; keeping 0.4 / 0.6 / 0.7 / 0.8 per cluster 63.0 / 92.0, 67.5 / 97.0,
  // 63.0 / 95.0, 65.5 / 94.5; globally 0.6 / 0.7: 66.5 / 94.5, 66.5 / 96.0.
  config.scores.keep_top_within = "clusters";
  // Selection: CaR (k-means on the base's embeddings of each row's instructions alone — curate_pool
  // sets ModelScorer's embed_instructions — k = round(sqrt(rows / 2)) = 32 here, each cluster
  // dealt its best rows in turn). DEITA's similarity cut starved the tasks whose rows share one
  // template, and whole-chat embeddings let the answers decide the clusters (2 of 74 "Spell the
  // name X letter by letter." rows kept); either way the SFT model answered some questions with
  // another task's sentence. The measurements behind both choices are in README, Results.
  config.select.method = "car";
  config.select.budget = budget;
  return config;
}

void curate_pool(const CurationInputs& inputs) {
  const data::RowStore pool = data::read_rows({inputs.pool});
  std::vector<data::Row> eval_rows = data::read_rows({inputs.eval}).rows;
  Transformer base = Transformer::from_pretrained(inputs.base_model, inputs.device);
  const Tokenizer tokenizer = Tokenizer::load(inputs.base_model.string());
  rl::ModelScorer scorer(&base, &tokenizer, nullptr,
                         {.batch_size = 32,
                          .progress = true,
                          .plain_text = true,
                          .embed_instructions = true});
  const data::CurateConfig config = pipeline_curate_config(inputs.budget);
  const data::Curator curator(config, std::move(eval_rows), &scorer);
  const data::CurateResult result = curator.run(pool.rows, &std::cout);
  data::write_curation_outputs(inputs.out_dir, pool, result, config);
  std::cout << fmt::format("curate: kept {} of {} pool rows in {}\n", result.rows_kept,
                           pool.rows.size(), rl::format_duration(result.seconds));
}

nlohmann::json curation_json(const fs::path& out_dir, const fs::path& labels) {
  const nlohmann::json report = read_json(out_dir / "report.json");
  nlohmann::json curation = {{"rows_in", report["rows_in"]},
                             {"rows_kept", report["rows_kept"]},
                             {"seconds", report["seconds"]},
                             {"removed_by_reason", report["removed_by_reason"]},
                             {"curated_jsonl", (out_dir.filename() / "curated.jsonl").string()}};
  for (const auto& stage : report["stages"])
    curation["stages"].push_back({{"name", stage["name"]},
                                  {"rows_in", stage["rows_in"]},
                                  {"rows_out", stage["rows_out"]},
                                  {"removed_by_reason", stage["removed_by_reason"]},
                                  {"seconds", stage["seconds"]},
                                  {"notes", stage["notes"]}});
  if (report.contains("diversity")) curation["diversity"] = report["diversity"];

  // Ground truth, for the report only: what each kind of noise became.
  const std::set<int64_t> dropped = rejected_rows(out_dir / "rejected.jsonl");
  std::ifstream in(labels);
  TILLER_CHECK(in.good(), "pipeline: cannot open the pool labels {}", labels.string());
  std::map<std::string, int64_t> pool_noise, kept_noise, pool_tasks, kept_tasks;
  std::string line;
  int64_t row = 0;
  for (; std::getline(in, line); ++row) {
    const auto label = nlohmann::json::parse(line);
    // A duplicate is counted under what it copies: a copy of a wrong fact is a wrong fact.
    std::string noise = label["noise"];
    if (noise == "exact_duplicate" || noise == "near_duplicate")
      noise += " of " + label["copied_noise"].get<std::string>();
    const std::string task = label["task"];
    ++pool_noise[noise];
    ++pool_tasks[task];
    if (!dropped.contains(row)) {
      ++kept_noise[noise];
      ++kept_tasks[task];
    }
  }
  TILLER_CHECK(row == curation["rows_in"].get<int64_t>(),
               "pipeline: {} has {} labels for {} pool rows", labels.string(), row,
               curation["rows_in"].get<int64_t>());
  for (const auto& [noise, count] : pool_noise)
    curation["noise_labels"][noise] = {{"pool", count}, {"kept", kept_noise[noise]}};
  for (const auto& [task, count] : pool_tasks)
    curation["tasks"][task] = {{"pool", count}, {"kept", kept_tasks[task]}};
  return curation;
}

std::string curation_markdown(const nlohmann::json& curation) {
  std::string md = fmt::format(
      "## Curation (SFT data)\n\nThe world's noisy pool, {} rows, curated to {} with dedup, "
      "rules, decontamination, the base model's scores and diversity selection (never the "
      "world's labels), in {}.\n\n| stage | rows in | rows out | removed by reason |\n"
      "|---|---:|---:|---|\n",
      curation["rows_in"].get<int64_t>(), curation["rows_kept"].get<int64_t>(),
      rl::format_duration(curation["seconds"].get<double>()));
  for (const auto& stage : curation["stages"]) {
    std::string reasons;
    for (const auto& [reason, count] : stage["removed_by_reason"].items())
      reasons += fmt::format("{}{} {}", reasons.empty() ? "" : ", ", reason, count.get<int64_t>());
    md += fmt::format("| {} | {} | {} | {} |\n", stage["name"].get<std::string>(),
                      stage["rows_in"].get<int64_t>(), stage["rows_out"].get<int64_t>(),
                      reasons.empty() ? "-" : reasons);
  }
  md +=
      "\nWhat each kind of noise became (the world's labels, read only for this table; a "
      "duplicate counts under what it copies):\n\n| noise | pool | kept |\n|---|---:|---:|\n";
  for (const auto& [noise, counts] : curation["noise_labels"].items())
    md += fmt::format("| {} | {} | {} |\n", noise, counts["pool"].get<int64_t>(),
                      counts["kept"].get<int64_t>());
  md += "\n| task | pool | kept |\n|---|---:|---:|\n";
  for (const auto& [task, counts] : curation["tasks"].items())
    md += fmt::format("| {} | {} | {} |\n", task, counts["pool"].get<int64_t>(),
                      counts["kept"].get<int64_t>());
  return md + "\n";
}

}  // namespace pipeline
