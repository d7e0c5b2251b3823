// evaluate: score saved models on the built-in world's held-out prompts, zero- or few-shot, and
// sweep the few-shot settings (in-context learning without fine-tuning).
//
//   evaluate --model runs/pipeline/sft/model
//   evaluate --model runs/pipeline/pretrain/model --shots 4 --shot-format plain
//   evaluate --sweep --model base=runs/pipeline/pretrain/model --model sft=runs/pipeline/sft/model
//            --out runs/few_shot
//
// Shots are solved training questions of the same world (rl/reports/few_shot.h: never the eval
// fact, seeded, dropped from the front with a notice when the prompt would not fit). The world
// flags must be those the models were trained with. --sweep evaluates every model for k in
// --sweep-shots, both formats (chat turns, plain quiz lines) and four settings (random order with
// same-task or mixed-task shots; mixed-task shots with the question's task first or last), and
// writes <out>/few_shot.json, few_shot.md, few_shot.jsonl (one record per point) and one plot per
// metric (exact match, format compliance vs k, one line per model x format x setting).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <optional>

#include "core/io/atomic_file.h"
#include "core/models/model.h"
#include "core/text/tokenizer.h"
#include "core/world/world.h"
#include "kernels/error.h"
#include "rl/reports/few_shot.h"
#include "rl/reports/plot.h"

namespace fs = std::filesystem;
using namespace tiller;

namespace {

struct NamedModel {
  std::string name;
  fs::path dir;
};

NamedModel parse_model(const std::string& text) {
  const size_t equals = text.find('=');
  if (equals == std::string::npos) return {fs::path(text).parent_path().filename().string(), text};
  return {text.substr(0, equals), text.substr(equals + 1)};
}

struct Setting {
  rl::ShotOrder order;
  rl::ShotMix mix;
  std::string label() const {
    return std::string(rl::shot_mix_name(mix)) + ", " + std::string(rl::shot_order_name(order));
  }
};

const std::vector<Setting> kSettings = {
    {rl::ShotOrder::random, rl::ShotMix::same_task},
    {rl::ShotOrder::random, rl::ShotMix::mixed_tasks},
    {rl::ShotOrder::same_task_first, rl::ShotMix::mixed_tasks},
    {rl::ShotOrder::same_task_last, rl::ShotMix::mixed_tasks},
};

struct Point {
  rl::EvaluationReport report;
  rl::FewShotStats stats;
};

Point evaluate_point(Transformer& model, const Tokenizer& tokenizer, const World& world,
                     const rl::EvaluationConfig& base, const rl::FewShotOptions& options) {
  auto stats = std::make_shared<rl::FewShotStats>();
  auto config = rl::few_shot_evaluation(base, tokenizer, rl::world_shot_pool(world), options,
                                        model.config().max_seq_len, stats);
  Point point{rl::evaluate_world(model, tokenizer, world.eval_prompts(), config), *stats};
  if (stats->prompts_truncated > 0) {
    std::cout << "  notice: " << stats->prompts_truncated << " of " << stats->prompts
              << " prompts did not fit " << model.config().max_seq_len - base.max_new_tokens
              << " tokens with " << options.shots << " shots; " << stats->shots_dropped
              << " shots dropped from the front\n";
  }
  return point;
}

double mean_shots(const rl::FewShotStats& stats) {
  return stats.prompts == 0
             ? 0.0
             : static_cast<double>(stats.shots_used) / static_cast<double>(stats.prompts);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Evaluate models on the world's held-out prompts, zero- or few-shot"};
  std::vector<std::string> model_args;
  std::string tokenizer_path, out = "runs/few_shot", format = "chat", order = "random",
                              mix = "same-task", jsonl;
  rl::FewShotOptions options;
  rl::EvaluationConfig base;
  base.max_new_tokens = 32;
  base.limit = 0;
  bool sweep = false;
  std::vector<int64_t> sweep_shots = {0, 1, 2, 4, 8};
  WorldConfig world_config;
  app.add_option("--model", model_args, "model directory, or NAME=DIR (repeat to compare)")
      ->required();
  app.add_option("--tokenizer", tokenizer_path, "default: each model's directory");
  app.add_option("--shots", options.shots, "solved examples before each question")
      ->capture_default_str();
  app.add_option("--shot-format", format, "chat or plain")->capture_default_str();
  app.add_option("--shot-order", order, "random, same-task-first or same-task-last")
      ->capture_default_str();
  app.add_option("--shot-mix", mix, "same-task or mixed-tasks")->capture_default_str();
  app.add_option("--shot-seed", options.seed, "seed of the shot draws")->capture_default_str();
  app.add_option("--limit", base.limit, "evaluate the first N held-out prompts (0: all)")
      ->capture_default_str();
  app.add_option("--max-new-tokens", base.max_new_tokens, "tokens per answer")
      ->capture_default_str();
  app.add_option("--batch", base.batch_size, "prompts generated together")->capture_default_str();
  app.add_option("--jsonl", jsonl, "per-example records (single evaluation)");
  app.add_flag("--sweep", sweep, "every k x format x setting; report in --out");
  app.add_option("--sweep-shots", sweep_shots, "the k of --sweep")->capture_default_str();
  app.add_option("--out", out, "--sweep: report folder")->capture_default_str();
  app.add_option("--world-seed", world_config.seed, "world seed")->capture_default_str();
  app.add_option("--entities", world_config.num_entities, "world size")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    options.format = rl::parse_shot_format(format);
    options.order = rl::parse_shot_order(order);
    options.mix = rl::parse_shot_mix(mix);
    const World world(world_config);
    std::vector<NamedModel> models;
    for (const auto& arg : model_args) models.push_back(parse_model(arg));

    if (!sweep) {
      base.jsonl_path = jsonl;
      for (const auto& [name, dir] : models) {
        Transformer model = Transformer::from_pretrained(dir);
        Tokenizer tokenizer =
            Tokenizer::load(tokenizer_path.empty() ? dir.string() : tokenizer_path);
        Point point = evaluate_point(model, tokenizer, world, base, options);
        std::cout << name << " (" << options.shots << "-shot " << format
                  << "): " << point.report.summary() << "\n";
      }
      return 0;
    }

    const auto start = std::chrono::steady_clock::now();
    fs::create_directories(out);
    nlohmann::json points = nlohmann::json::array();
    std::string records;
    for (const auto& [name, dir] : models) {
      Transformer model = Transformer::from_pretrained(dir);
      Tokenizer tokenizer = Tokenizer::load(tokenizer_path.empty() ? dir.string() : tokenizer_path);
      for (rl::ShotFormat shot_format : {rl::ShotFormat::chat, rl::ShotFormat::plain}) {
        std::optional<Point> zero_shot;  // k = 0 is the same prompt under every setting
        for (const Setting& setting : kSettings) {
          const std::string series = name + " " + std::string(rl::shot_format_name(shot_format)) +
                                     " (" + setting.label() + ")";
          for (int64_t k : sweep_shots) {
            rl::FewShotOptions point_options{.shots = k,
                                             .format = shot_format,
                                             .order = setting.order,
                                             .mix = setting.mix,
                                             .seed = options.seed};
            if (k == 0 && !zero_shot)
              zero_shot = evaluate_point(model, tokenizer, world, base, point_options);
            Point point =
                k == 0 ? *zero_shot : evaluate_point(model, tokenizer, world, base, point_options);
            const auto& r = point.report;
            nlohmann::json record = {{"stage", series},
                                     {"model", name},
                                     {"format", rl::shot_format_name(shot_format)},
                                     {"order", rl::shot_order_name(setting.order)},
                                     {"mix", rl::shot_mix_name(setting.mix)},
                                     {"k", k},
                                     {"mean_shots_used", mean_shots(point.stats)},
                                     {"prompts_truncated", point.stats.prompts_truncated},
                                     {"exact_match", r.exact_match_rate},
                                     {"format_compliance", r.format_rate},
                                     {"fact_correct", r.fact_correct_rate},
                                     {"ends_turn", r.ends_turn_rate},
                                     {"prompts", r.prompts}};
            std::cout << series << " k=" << k << ": " << r.summary() << std::endl;
            points.push_back(record);
            records += record.dump() + "\n";
          }
        }
      }
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    write_file_atomic(fs::path(out) / "few_shot.jsonl",
                      [&](FileSink& sink) { sink.write(records); });
    nlohmann::json report = {{"points", points},
                             {"seconds", seconds},
                             {"max_new_tokens", base.max_new_tokens},
                             {"shot_seed", options.seed},
                             {"world_seed", world_config.seed}};
    write_file_atomic(fs::path(out) / "few_shot.json",
                      [&](FileSink& sink) { sink.write(report.dump(2) + "\n"); });

    std::string md =
        "# Few-shot evaluation on the world's held-out prompts\n\n"
        "exact match / format compliance (mean shots that fit the context)\n\n"
        "| model | format | setting |";
    for (int64_t k : sweep_shots) md += " k=" + std::to_string(k) + " |";
    md += "\n|---|---|---|";
    for (size_t i = 0; i < sweep_shots.size(); ++i) md += "---|";
    md += "\n";
    for (size_t row = 0; row < points.size(); row += sweep_shots.size()) {
      const auto& first = points[row];
      md += fmt::format("| {} | {} | {}, {} |", first["model"].get<std::string>(),
                        first["format"].get<std::string>(), first["mix"].get<std::string>(),
                        first["order"].get<std::string>());
      for (size_t i = 0; i < sweep_shots.size(); ++i) {
        const auto& p = points[row + i];
        md += fmt::format(" {:.1f}% / {:.1f}% ({:.1f}) |", 100 * p["exact_match"].get<double>(),
                          100 * p["format_compliance"].get<double>(),
                          p["mean_shots_used"].get<double>());
      }
      md += "\n";
    }
    md += fmt::format("\n{} prompts per point, greedy, max {} new tokens; {:.0f} s in all\n",
                      points.empty() ? 0 : points[0]["prompts"].get<int64_t>(), base.max_new_tokens,
                      seconds);
    write_file_atomic(fs::path(out) / "few_shot.md", [&](FileSink& sink) { sink.write(md); });
    std::cout << "\n" << md;

    for (const auto& [key, title] : std::vector<std::pair<std::string, std::string>>{
             {"exact_match", "exact match"}, {"format_compliance", "format compliance"}}) {
      std::vector<rl::PlotSeries> series;
      for (size_t row = 0; row < points.size(); row += sweep_shots.size()) {
        const std::string stage = points[row]["stage"];
        series.push_back({.label = stage,
                          .metrics_path = fs::path(out) / "few_shot.jsonl",
                          .key = key,
                          .stage = stage,
                          .x_key = "k"});
      }
      auto plot = rl::plot_metrics(
          series, fs::path(out) / ("few_shot_" + key + ".png"),
          {.title = title + " vs shots", .x_label = "shots (k)", .y_label = title});
      std::cout << plot.message << "\n";
    }
  } catch (const std::exception& error) {
    std::cerr << "evaluate: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
