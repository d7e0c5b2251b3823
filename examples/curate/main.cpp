// curate: turn a noisy dataset into a small, clean, diverse one (LIMA-style) — exact and near
// dedup, quality rules, decontamination, model scores, diversity selection — and say what was
// dropped and why. The stages are core/data/curate.h's; model scores are rl/data/curate_scores.h.
//
//   curate --input pool.jsonl --eval eval.jsonl --budget 1000 --model runs/pretrain/model --out cur
//
// Writes DIR/curated.jsonl (kept rows, unchanged, input order), DIR/rejected.jsonl (every dropped
// row plus "curate": {stage, reason, ...}), DIR/report.json, DIR/report.md and PNG plots
// (rows_per_stage.png, <score>_histogram.png; gnuplot, see rl/plot.h).
#include <CLI/CLI.hpp>

#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/data/curate.h"
#include "kernels/error.h"
#include "rl/data/curate_scores.h"
#include "rl/reports/metrics.h"
#include "rl/reports/plot.h"

namespace {

constexpr const char* kStagesHelp = R"(
Stages (run in the order of --stages; a row is dropped by the first stage that rejects it):
  exact_dedup    Same text after normalisation (UTF-8, lower-casing of ASCII/Latin/Greek/Cyrillic,
                 math symbols + * / = < > kept as words, other punctuation to spaces, whitespace
                 folded; core/data/normalise.h): keeps the first (or best-scored) row.
                 reason: exact_duplicate.
  near_dedup     MinHash over word 5-grams, LSH with 20 bands x 5 rows (candidate probability
                 1-(1-s^5)^20, midpoint ~0.55), every candidate pair checked with the exact
                 Jaccard >= 0.7, union-find clusters, one row kept per cluster. reason:
                 near_duplicate (with duplicate_of and the Jaccard).
  quality        Documents ({"text"} rows, text files): Gopher's rules with Gopher's thresholds
                 (word count 50..100k, mean word length 3..10, symbol ratio, bullet / ellipsis
                 lines, alphabetic words, stop words, duplicate lines / paragraphs / n-grams).
                 Chats: no_assistant_turn, empty_answer, truncated_answer (no sentence end),
                 repeated_phrase (words repeating back to back), copies_question.
  decontaminate  Against --eval rows: exact_question (same normalised prompt) and ngram_overlap
                 (a shared word 8-gram for chats, 13-gram for documents; shorter eval questions
                 must appear whole).
  scores         With --model: response perplexity, IFD = loss(answer|question)/loss(answer)
                 (rows with IFD > 1 dropped: ifd_above_max), and with --reward-model the reward.
                 Options in --config "scores": max_perplexity, min_reward, keep_top_fraction,
                 rank_by, keep_top_within ("all", or "clusters": the top fraction of each
                 k-means cluster of the model's embeddings, k = clusters or sqrt(rows / 2)).
                 Skipped without --model.
  select         With --budget N: diversity selection on embeddings (the model's mean-pooled
                 final hidden states, else a hashed bag of words; centred on the pool's mean and
                 L2-normalised): deita (walk rows best score first, skip one whose cosine to a
                 kept row > 0.9), k_center (farthest point first) or car (Clustering and
                 Ranking: k-means into "clusters" groups, default round(sqrt(rows/2)), then
                 every cluster gives its next best row in turn until the budget, so a small
                 task keeps its share). reason: not_selected.
--config FILE.json overrides any default, e.g. {"near_dedup": {"bands": 14, "rows_per_band": 8},
"select": {"method": "k_center"}, "stages": ["exact_dedup", "quality"]}; report.json lists every
value used.)";

void plot_outputs(const std::filesystem::path& out, const tiller::data::CurateResult& result) {
  using namespace tiller;
  const std::filesystem::path metrics = out / "plots.jsonl";
  {
    std::ofstream file(metrics);
    int64_t index = 0;
    file << nlohmann::json{{"stage", "rows"}, {"step", index++}, {"rows", result.rows_in}}.dump()
         << "\n";
    for (const data::StageReport& s : result.stages)
      file << nlohmann::json{{"stage", "rows"}, {"step", index++}, {"rows", s.rows_out}}.dump()
           << "\n";
    const auto histogram = [&](const char* name, const std::vector<double>& values) {
      std::vector<double> finite;
      for (double v : values)
        if (std::isfinite(v)) finite.push_back(v);
      if (finite.empty()) return false;
      const auto [low, high] = std::minmax_element(finite.begin(), finite.end());
      constexpr int kBins = 30;
      std::vector<int64_t> counts(kBins, 0);
      const double width = *high > *low ? (*high - *low) / kBins : 1.0;
      for (double v : finite) ++counts[std::min(kBins - 1, static_cast<int>((v - *low) / width))];
      for (int b = 0; b < kBins; ++b)
        file << nlohmann::json{{"stage", name},
                               {"value", *low + (b + 0.5) * width},
                               {"rows", counts[static_cast<size_t>(b)]}}
                    .dump()
             << "\n";
      return true;
    };
    std::vector<std::string> scored;
    if (histogram("perplexity", result.scores.perplexity)) scored.push_back("perplexity");
    if (histogram("ifd", result.scores.ifd)) scored.push_back("ifd");
    if (histogram("reward", result.scores.reward)) scored.push_back("reward");
    file.close();
    std::string stage_names = "0 input";
    for (size_t i = 0; i < result.stages.size(); ++i)
      stage_names += fmt::format(", {} {}", i + 1, result.stages[i].name);
    rl::PlotResult plot =
        rl::plot_metrics({{"rows left", metrics, "rows", "rows"}}, out / "rows_per_stage.png",
                         {.title = "Rows left after each stage",
                          .x_label = "stage (" + stage_names + ")",
                          .y_label = "rows"});
    std::cout << plot.message << "\n";
    for (const std::string& name : scored) {
      plot = rl::plot_metrics(
          {{name, metrics, "rows", name, "value"}}, out / (name + "_histogram.png"),
          {.title = name + " of the scored rows", .x_label = name, .y_label = "rows"});
      std::cout << plot.message << "\n";
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace tiller;
  CLI::App app{
      "Curate a dataset: dedup, quality rules, decontamination, model scores and "
      "diversity selection to a budget"};
  app.footer(kStagesHelp);
  std::vector<std::string> inputs, evals, stages;
  std::string out, model_dir, reward_dir, tokenizer_path, config_path, device = "cpu", method;
  int64_t budget = 0, batch_size = 16;
  uint64_t seed = 1;
  bool skip_malformed = false, quiet = false, plain_text = false, embed_instructions = false;
  app.add_option("--input", inputs,
                 "JSONL files (chats, prompt/completion, preference pairs, "
                 "{\"text\"}) or plain text files")
      ->required();
  app.add_option("--out", out, "output folder")->required();
  app.add_option("--eval", evals, "eval files to decontaminate against");
  app.add_option("--budget", budget, "rows to select for diversity (0: no selection)");
  app.add_option("--model", model_dir, "model directory for perplexity, IFD and embeddings");
  app.add_option("--reward-model", reward_dir,
                 "reward model directory (rl/heads/reward.h) to score rows");
  app.add_option("--tokenizer", tokenizer_path, "tokenizer file or directory (default: --model)");
  app.add_option("--config", config_path, "JSON file overriding the stage defaults");
  app.add_option("--stages", stages, "stage order (default: every stage, cheap ones first)");
  app.add_option("--select", method, "diversity method: deita, k_center or car (default deita)");
  app.add_option("--seed", seed, "seed of the MinHash permutations")->capture_default_str();
  app.add_flag("--skip-malformed", skip_malformed,
               "list malformed lines in rejected.jsonl (reason malformed) instead of stopping");
  app.add_option("--batch-size", batch_size, "rows per model batch")->capture_default_str();
  app.add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  app.add_flag("--quiet", quiet, "no progress lines");
  app.add_flag("--embed-instructions", embed_instructions,
               "diversity selection embeds each row's instructions (system and user turns) "
               "alone, not its answers");
  app.add_flag("--plain-text", plain_text,
               "score chats as plain text (turns on their own lines, no chat tokens): for a "
               "pretrained base that never saw the chat template");
  CLI11_PARSE(app, argc, argv);

  try {
    data::CurateConfig config;
    if (!config_path.empty()) {
      std::ifstream file(config_path);
      TILLER_CHECK(file.good(), "curate: cannot open --config '{}'", config_path);
      std::stringstream text;
      text << file.rdbuf();
      config = data::CurateConfig::from_json_text(text.str(), config_path);
    }
    if (!stages.empty()) config.stages = stages;
    if (!method.empty()) config.select.method = method;
    if (budget > 0) config.select.budget = budget;
    config.near_dedup.seed = seed;

    std::vector<std::filesystem::path> input_paths(inputs.begin(), inputs.end());
    data::RowStore store = data::read_rows(input_paths, {.skip_malformed = skip_malformed});
    std::cout << fmt::format(
        "curate: {} rows read from {} file(s){}\n", store.rows.size(), inputs.size(),
        store.malformed.empty()
            ? ""
            : fmt::format(", {} malformed lines skipped", store.malformed.size()));
    std::vector<data::Row> eval_rows;
    if (!evals.empty())
      eval_rows =
          data::read_rows(std::vector<std::filesystem::path>(evals.begin(), evals.end())).rows;

    std::unique_ptr<Transformer> model;
    std::unique_ptr<Tokenizer> tokenizer;
    std::unique_ptr<rl::RewardModel> reward_model;
    std::unique_ptr<rl::ModelScorer> scorer;
    if (!model_dir.empty()) {
      model = std::make_unique<Transformer>(
          Transformer::from_pretrained(model_dir, Device::parse(device)));
      tokenizer = std::make_unique<Tokenizer>(
          Tokenizer::load(tokenizer_path.empty() ? model_dir : tokenizer_path));
      if (!reward_dir.empty())
        reward_model = std::make_unique<rl::RewardModel>(
            rl::RewardModel::load(reward_dir, Device::parse(device)));
      scorer = std::make_unique<rl::ModelScorer>(
          model.get(), tokenizer.get(), reward_model.get(),
          rl::CurateScoreOptions{
              .batch_size = batch_size,
              .progress = !quiet,
              .plain_text = plain_text,
              .embed_instructions = embed_instructions});
    } else {
      TILLER_CHECK(reward_dir.empty(),
                   "curate: --reward-model needs --model (its tokenizer and "
                   "the embeddings come from --model)");
    }

    const data::Curator curator(config, std::move(eval_rows), scorer.get());
    const data::CurateResult result = curator.run(store.rows, &std::cout);
    data::write_curation_outputs(out, store, result, config);
    plot_outputs(out, result);
    std::cout << fmt::format("curate: kept {} of {} rows in {} -> {}/curated.jsonl\n",
                             result.rows_kept, store.rows.size(),
                             rl::format_duration(result.seconds), out);
  } catch (const std::exception& error) {
    std::cerr << "curate: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
