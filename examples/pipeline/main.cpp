// pipeline: the whole alignment story on the built-in world in one command —
//   world -> pretrain -> SFT on the 1,000 curated chats -> reward model -> PPO -> report.
//
//   pipeline                      # defaults: runs/pipeline, CPU, ~10 minutes on 2 cores
//   pipeline --tiny --out /tmp/p  # seconds-scale smoke run (what ctest runs)
//   pipeline --device cuda        # CUDA for every stage
//
// Each training stage is its own example program (pretrain, sft, reward, ppo — built beside this
// one), run as a child process with its progress on the terminal, so every stage can also be
// re-run or tuned alone with the same flags. The report is computed here, in process, with the
// public API: every model (base = pretrained, SFT, PPO) is evaluated on the world's held-out
// prompts by the shared evaluation code (greedy generation + the world's exact scorer) and scored
// by the trained reward model; the reward model's held-out accuracy and PPO's final KL come from
// their metrics files. Outputs in --out: one folder per stage, report.json, report.md and plots
// (loss curves, reward-model accuracy, PPO reward and KL).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/io/atomic_file.h"
#include "core/text/tokenizer.h"
#include "core/world/world.h"
#include "rl/reports/evaluate.h"
#include "rl/reports/metrics.h"
#include "rl/reports/plot.h"
#include "rl/heads/reward.h"
#include "tiller.h"

namespace fs = std::filesystem;
using namespace tiller;

namespace {

struct Options {
  fs::path out = "runs/pipeline";
  std::string device = "cpu";
  bool tiny = false;
  bool reuse = false;        // skip a stage whose final output already exists
  int64_t eval_prompts = 0;  // 0: all held-out prompts
  uint64_t world_seed = WorldConfig{}.seed;
  std::string pretrain_args, sft_args, reward_args, ppo_args;  // appended to each stage
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs `program` (a sibling executable) with arguments; throws naming the stage when it fails.
double run_stage(const std::string& stage, const fs::path& program,
                 const std::vector<std::string>& args, const std::string& extra) {
  TILLER_CHECK(fs::exists(program), "pipeline: stage {} needs {}, which was not built", stage,
               program.string());
  std::string command = quote(program.string());
  for (const auto& a : args) command += " " + quote(a);
  if (!extra.empty()) command += " " + extra;
  std::printf("\n=== pipeline: %s ===\n$ %s\n", stage.c_str(), command.c_str());
  std::fflush(stdout);
  auto start = std::chrono::steady_clock::now();
  int status = std::system(command.c_str());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  TILLER_CHECK(status == 0, "pipeline: stage {} failed (status {}); its output is above", stage,
               status);
  std::printf("=== pipeline: %s done in %s ===\n", stage.c_str(),
              rl::format_duration(seconds).c_str());
  return seconds;
}

// The last value of `key` in a metrics file (NaN when absent).
double last_value(const fs::path& metrics, const std::string& key) {
  if (!fs::exists(metrics)) return std::nan("");
  auto points = rl::read_series({.metrics_path = metrics, .key = key});
  return points.empty() ? std::nan("") : points.back().second;
}

struct ModelRow {
  std::string name;
  rl::EvaluationReport report;
};

ModelRow evaluate_model(const std::string& name, const fs::path& dir, Device device,
                        const Tokenizer& tokenizer, const World& world,
                        rl::RewardModel& reward_model, const Options& options,
                        const fs::path& jsonl) {
  std::printf("\n=== pipeline: evaluating %s (%s) ===\n", name.c_str(), dir.string().c_str());
  std::fflush(stdout);
  Transformer model = Transformer::from_pretrained(dir, device);
  rl::EvaluationConfig config;
  config.limit = options.eval_prompts;
  config.jsonl_path = jsonl.string();
  config.scorer = [&](const std::vector<ChatMessage>& prompt, const std::string& response) {
    return static_cast<double>(
        reward_model.score(tokenizer, {world::render_prompt(prompt)}, {response})[0]);
  };
  ModelRow row{name, rl::evaluate_world(model, tokenizer, world.eval_prompts(), config)};
  std::printf("%s: %s\n", name.c_str(), row.report.summary().c_str());
  return row;
}

void plot(const fs::path& png, const std::string& title, const std::string& y_label,
          std::vector<rl::PlotSeries> series) {
  rl::PlotResult result = rl::plot_metrics(series, png, {.title = title, .y_label = y_label});
  std::printf("%s\n", result.message.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{"tiller pipeline: world -> pretrain -> SFT -> reward model -> PPO -> report"};
  app.add_option("--out", options.out, "output folder")->capture_default_str();
  app.add_option("--device", options.device, "cpu or cuda[:N]")->capture_default_str();
  app.add_flag("--tiny", options.tiny, "a seconds-scale run with tiny sizes (smoke test)");
  app.add_flag("--reuse", options.reuse, "skip stages whose final output already exists in --out");
  app.add_option("--eval-prompts", options.eval_prompts, "held-out prompts to evaluate (0: all)");
  app.add_option("--world-seed", options.world_seed, "world seed")->capture_default_str();
  app.add_option("--pretrain-args", options.pretrain_args, "extra flags for the pretrain stage");
  app.add_option("--sft-args", options.sft_args, "extra flags for the sft stage");
  app.add_option("--reward-args", options.reward_args, "extra flags for the reward stage");
  app.add_option("--ppo-args", options.ppo_args, "extra flags for the ppo stage");
  CLI11_PARSE(app, argc, argv);

  try {
    auto total_start = std::chrono::steady_clock::now();
    Device device = Device::parse(options.device);
    fs::path bin = fs::canonical("/proc/self/exe").parent_path();
    fs::create_directories(options.out);
    const fs::path out = fs::absolute(options.out);
    const std::string seed = std::to_string(options.world_seed);
    const fs::path pretrain_dir = out / "pretrain", sft_dir = out / "sft",
                   reward_dir = out / "reward", ppo_dir = out / "ppo";
    if (options.tiny && options.eval_prompts == 0) options.eval_prompts = 16;

    // Tiny sizes keep every stage to seconds; the defaults are each stage's own.
    std::vector<std::string> tiny_pretrain, tiny_sft, tiny_reward, tiny_ppo;
    if (options.tiny) {
      tiny_pretrain = {"--layers", "2", "--width", "64", "--heads", "2", "--seq-len", "64",
                       "--batch", "4", "--steps", "30", "--vocab-size", "512", "--eval-every",
                       "10", "--log-every", "10"};
      tiny_sft = {"--epochs", "1", "--batch", "16", "--eval-prompts", "8", "--log-every", "20"};
      tiny_reward = {"--epochs", "1", "--batch", "64", "--log-every", "10"};
      tiny_ppo = {"--iterations", "2", "--rollout-batch", "8", "--minibatch", "4",
                  "--micro-batch", "4", "--max-new-tokens", "16", "--eval-limit", "8"};
    }
    auto with = [](std::vector<std::string> base, const std::vector<std::string>& more) {
      base.insert(base.end(), more.begin(), more.end());
      return base;
    };

    nlohmann::json stages;
    // A stage runs unless --reuse is given and its final output (`done`) is already there.
    auto stage = [&](const std::string& name, const fs::path& done, const fs::path& program,
                     const std::vector<std::string>& args, const std::string& extra) {
      if (options.reuse && fs::exists(done)) {
        std::printf("=== pipeline: %s: reusing %s ===\n", name.c_str(), done.string().c_str());
        stages[name] = 0.0;
        return;
      }
      stages[name] = run_stage(name, program, args, extra);
    };
    stage("world", out / "world" / "eval.jsonl", bin / "make_world",
                                {"--out", (out / "world").string(), "--seed", seed}, "");
    stage("pretrain", pretrain_dir / "model", bin / "pretrain",
        with({"--out", pretrain_dir.string(), "--device", options.device, "--world-seed", seed},
             tiny_pretrain),
        options.pretrain_args);
    stage("sft", sft_dir / "model", bin / "sft",
        with({"--base", (pretrain_dir / "model").string(), "--out", sft_dir.string(), "--device",
              options.device, "--world-seed", seed},
             tiny_sft),
        options.sft_args);
    stage("reward", reward_dir / "model", bin / "reward",
        with({"--sft", (sft_dir / "model").string(), "--out", reward_dir.string(), "--device",
              options.device, "--world-seed", seed},
             tiny_reward),
        options.reward_args);
    stage("ppo", ppo_dir / "policy", bin / "ppo",
        with({"--policy", (sft_dir / "model").string(), "--reward-model",
              (reward_dir / "model").string(), "--out", ppo_dir.string(), "--device",
              options.device, "--world-seed", seed},
             tiny_ppo),
        options.ppo_args);

    // --- report ------------------------------------------------------------------------------
    auto report_start = std::chrono::steady_clock::now();
    Tokenizer tokenizer = Tokenizer::load((sft_dir / "model" / "tokenizer.json").string());
    World world(WorldConfig{.seed = options.world_seed});
    rl::RewardModel reward_model = rl::RewardModel::load(reward_dir / "model", device);
    std::vector<ModelRow> rows;
    rows.push_back(evaluate_model("base", pretrain_dir / "model", device, tokenizer, world,
                                  reward_model, options, out / "eval_base.jsonl"));
    rows.push_back(evaluate_model("sft", sft_dir / "model", device, tokenizer, world,
                                  reward_model, options, out / "eval_sft.jsonl"));
    rows.push_back(evaluate_model("ppo", ppo_dir / "policy", device, tokenizer, world,
                                  reward_model, options, out / "eval_ppo.jsonl"));
    stages["report"] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - report_start).count();

    double rm_accuracy = last_value(reward_dir / "metrics.jsonl", "eval/accuracy");
    double final_kl = last_value(ppo_dir / "metrics.jsonl", "objective/kl");
    double total_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - total_start).count();

    nlohmann::json report;
    report["device"] = device.str();
    report["tiny"] = options.tiny;
    report["world_seed"] = options.world_seed;
    report["eval_prompts"] = rows[0].report.prompts;
    for (const ModelRow& row : rows) {
      const auto& r = row.report;
      report["models"][row.name] = {
          {"exact_match", r.exact_match_rate},
          {"format_compliance", r.format_rate},
          {"fact_correct", r.fact_correct_rate},
          {"ends_turn", r.ends_turn_rate},
          {"world_reward", r.mean_reward},
          {"reward_model_score", r.mean_extra_score.value_or(std::nan(""))},
          {"mean_response_tokens", r.mean_response_tokens}};
    }
    report["reward_model_heldout_accuracy"] = rm_accuracy;
    report["ppo_final_kl"] = final_kl;
    report["seconds"] = stages;
    report["seconds"]["total"] = total_seconds;

    std::string table = fmt::format(
        "| model | exact match | format compliance | reward-model score | mean response tokens "
        "|\n|---|---|---|---|---|\n");
    for (const ModelRow& row : rows)
      table += fmt::format("| {} | {:.1f}% | {:.1f}% | {:.3f} | {:.1f} |\n", row.name,
                           100 * row.report.exact_match_rate, 100 * row.report.format_rate,
                           row.report.mean_extra_score.value_or(std::nan("")),
                           row.report.mean_response_tokens);
    table += fmt::format(
        "\nreward model held-out accuracy: {:.1f}%\nPPO final KL to the reference: {:.4f}\n"
        "held-out prompts: {}\ntotal time: {}\n",
        100 * rm_accuracy, final_kl, rows[0].report.prompts, rl::format_duration(total_seconds));

    write_file_atomic(out / "report.json", report.dump(2) + "\n");
    write_file_atomic(out / "report.md", "# tiller pipeline report\n\n" + table);

    plot(out / "loss_curves.png", "Training losses", "loss",
         {{.label = "pretrain train", .metrics_path = pretrain_dir / "metrics.jsonl", .key = "loss"},
          {.label = "pretrain val", .metrics_path = pretrain_dir / "metrics.jsonl",
           .key = "val_loss"},
          {.label = "sft train", .metrics_path = sft_dir / "metrics.jsonl", .key = "loss"},
          {.label = "sft eval", .metrics_path = sft_dir / "metrics.jsonl", .key = "eval_loss"},
          {.label = "reward model", .metrics_path = reward_dir / "metrics.jsonl", .key = "loss"}});
    plot(out / "reward_model_accuracy.png", "Reward model accuracy", "accuracy",
         {{.label = "train", .metrics_path = reward_dir / "metrics.jsonl", .key = "accuracy"},
          {.label = "held-out", .metrics_path = reward_dir / "metrics.jsonl",
           .key = "eval/accuracy"}});
    plot(out / "ppo_reward_kl.png", "PPO: reward and KL to the reference", "value",
         {{.label = "score", .metrics_path = ppo_dir / "metrics.jsonl", .key = "objective/scores"},
          {.label = "rlhf reward", .metrics_path = ppo_dir / "metrics.jsonl",
           .key = "objective/rlhf_reward"},
          {.label = "kl", .metrics_path = ppo_dir / "metrics.jsonl", .key = "objective/kl"}});

    std::printf("\n=== pipeline report (%s) ===\n\n%s\nwritten: %s, %s and plots in %s\n",
                device.str().c_str(), table.c_str(), (out / "report.json").string().c_str(),
                (out / "report.md").string().c_str(), out.string().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pipeline: %s\n", e.what());
    return 1;
  }
}
