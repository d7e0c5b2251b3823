// pipeline: the whole alignment story on the built-in world in one command —
//   world -> pretrain -> curate the noisy SFT pool to 1,000 chats -> SFT on them -> reward model
//   -> PPO -> report, with DPO (world preference pairs) and GRPO (world verifiable reward) from the
//   same SFT model as extra rows (--no-preference skips them).
//
//   pipeline                      # defaults: runs/pipeline, CPU, 7-11 minutes on 2 cores
//   pipeline --reuse --ablation   # then the LIMA ablation on the same base (ablation.h)
//   pipeline --sft-data canonical # SFT on the world's canonical 1,000 chats instead
//   pipeline --tiny --ablation --out /tmp/p  # seconds-scale smoke run (what ctest runs)
//   pipeline --device cuda        # CUDA for every stage
//
// The curation stage (curation.h) runs in this process with the public curate API: the pool the
// world stage wrote (sft_pool.jsonl), dedup, chat rules, decontamination against eval.jsonl, the
// pretrained base's plain-text answer perplexity and embeddings, CaR selection to --budget; the
// world's noise labels are read only for the report. The ablation (--ablation) trains one SFT run
// per arm with the sft stage's recipe (--sft-args apply to every arm) and reuses the sft stage's
// model for the arm whose data it trained on.
//
// Each training stage is its own example program (pretrain, sft, reward, ppo — built beside this
// one), run as a child process with its progress on the terminal, so every stage can also be
// re-run or tuned alone with the same flags. Stages that do not depend on each other run side by
// side (--jobs 2, stages.h): the reward model and PPO beside DPO and GRPO, and the ablation's SFT
// runs two at a time, each with its output in --out/logs/<stage>.log. The report is computed here,
// in process, with the public API: every model (base = pretrained, SFT, PPO) is evaluated on the
// world's held-out prompts by the shared evaluation code (greedy generation + the world's exact
// scorer) and scored by the trained reward model; the PPO, DPO and GRPO models also get their KL to
// the SFT model on their own samples (rl/reports/kl.h, k3 per token); the reward model's held-out
// accuracy and PPO's final KL come from their metrics files. Stage seconds are kept in
// stage_seconds.json. Outputs in --out: one folder per stage, report.json, report.md and plots
// (loss curves, reward-model accuracy, PPO reward and KL). The reward model carries the likelihood
// term (rl/heads/reward.h): a learned multiple of the SFT model's mean token log-likelihood of the
// response is part of its score.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "ablation.h"
#include "core/io/atomic_file.h"
#include "core/text/tokenizer.h"
#include "core/world/world.h"
#include "curation.h"
#include "report.h"
#include "stage_flags.h"
#include "rl/heads/reward.h"
#include "rl/reports/metrics.h"
#include "rl/reports/plot.h"
#include "rl/reports/reward_accuracy.h"
#include "stages.h"
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
  pipeline::UserStageArgs args;  // --<stage>-args, appended to each stage's flags
  bool preference = true;        // also DPO and GRPO from the same SFT model
  std::string sft_data = "curated";  // or "canonical": the world's 1,000 SFT chats
  int64_t budget = 1000;             // rows curation keeps (and the 1k arms' size)
  bool ablation = false;             // the LIMA ablation arms (ablation.h)
  int jobs = 2;                      // stages run side by side where they are independent
};

// The last value of `key` in a metrics file (NaN when absent).
double last_value(const fs::path& metrics, const std::string& key) {
  if (!fs::exists(metrics)) return std::nan("");
  auto points = rl::read_series({.metrics_path = metrics, .key = key});
  return points.empty() ? std::nan("") : points.back().second;
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
  app.add_option("--pretrain-args", options.args.pretrain, "extra flags for the pretrain stage");
  app.add_option("--sft-args", options.args.sft, "extra flags for the sft stage");
  app.add_option("--reward-args", options.args.reward, "extra flags for the reward stage");
  app.add_option("--ppo-args", options.args.ppo, "extra flags for the ppo stage");
  app.add_flag("!--no-preference", options.preference, "skip the DPO and GRPO stages");
  app.add_option("--dpo-args", options.args.dpo, "extra flags for the dpo stage");
  app.add_option("--grpo-args", options.args.grpo, "extra flags for the grpo stage");
  app.add_option("--sft-data", options.sft_data,
                 "SFT data: curated (the noisy pool curated to --budget) or canonical (the "
                 "world's 1,000 clean chats)")
      ->check(CLI::IsMember({"curated", "canonical"}))
      ->capture_default_str();
  app.add_option("--budget", options.budget, "rows kept by curation (default 1000; tiny 200)");
  app.add_flag("--ablation", options.ablation,
               "also the LIMA ablation: SFT on curated_1k, random_1k, full_pool, clean_1k and "
               "homogeneous_1k, each evaluated the same way");
  app.add_option("--jobs", options.jobs,
                 "independent stages run side by side, each with its output in --out/logs: the "
                 "reward model + PPO beside DPO + GRPO, and the ablation's SFT runs (1: one "
                 "after another, output on the terminal)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    Device device = Device::parse(options.device);
    fs::path bin = fs::canonical("/proc/self/exe").parent_path();
    fs::create_directories(options.out);
    const fs::path out = fs::absolute(options.out);
    const std::string seed = std::to_string(options.world_seed);
    const fs::path pretrain_dir = out / "pretrain", sft_dir = out / "sft",
                   reward_dir = out / "reward", ppo_dir = out / "ppo", dpo_dir = out / "dpo",
                   grpo_dir = out / "grpo", world_dir = out / "world", curate_dir = out / "curate",
                   ablation_dir = out / "ablation";
    if (options.tiny && options.eval_prompts == 0) options.eval_prompts = 16;
    // Tiny: a 2,000-row pool curated to 200, so curation and every arm take seconds.
    if (options.tiny && app.count("--budget") == 0) options.budget = 200;
    TILLER_CHECK(options.budget > 0, "pipeline: --budget must be positive, got {}", options.budget);
    const fs::path sft_data =
        options.sft_data == "curated" ? curate_dir / "curated.jsonl" : world_dir / "sft.jsonl";

    const pipeline::StageFlags flags =
        pipeline::stage_flags(options.args, options.tiny, pretrain_dir / "data" / "train.bin");
    auto with = [](std::vector<std::string> base, const std::vector<std::string>& more) {
      base.insert(base.end(), more.begin(), more.end());
      return base;
    };

    // Seconds per stage, kept in --out so that a --reuse run still reports what each reused
    // stage cost when it ran (0 when that is unknown).
    const fs::path seconds_file = out / "stage_seconds.json";
    nlohmann::json stages = nlohmann::json::object();
    std::vector<std::string> stage_order;  // run order, for report.md (json sorts its keys)
    if (options.reuse && fs::exists(seconds_file)) {
      std::ifstream in(seconds_file);
      stages = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
      if (!stages.is_object()) stages = nlohmann::json::object();
    }
    // A stage runs unless --reuse is given and its final output (`done`) is already there.
    auto reused = [&](const std::string& name, const fs::path& done) {
      stage_order.push_back(name);
      if (!options.reuse || !fs::exists(done)) return false;
      std::printf("=== pipeline: %s: reusing %s ===\n", name.c_str(), done.string().c_str());
      if (!stages.contains(name) || !stages[name].is_number()) stages[name] = 0.0;
      return true;
    };
    auto record = [&](const std::string& name, double seconds) {
      stages[name] = seconds;
      write_file_atomic(seconds_file, stages.dump(2) + "\n");
    };
    auto stage = [&](const std::string& name, const fs::path& done, const fs::path& program,
                     const std::vector<std::string>& args, const std::string& extra) {
      if (!reused(name, done)) record(name, pipeline::run_stage({name, program, args, extra}));
    };
    // Chains of stages that do not depend on each other, --jobs of them at a time (stages.h).
    // stage_seconds.json keeps each stage's own seconds (sharing the machine) and, under
    // "concurrent", the group's wall time, which is what the group adds to the end-to-end time.
    struct PendingStage {
      pipeline::StageCommand command;
      fs::path done;
    };
    auto concurrently = [&](const std::string& group,
                            const std::vector<std::vector<PendingStage>>& chains) {
      std::vector<std::vector<pipeline::StageCommand>> to_run;
      nlohmann::json names = nlohmann::json::array();
      for (const auto& chain : chains) {
        to_run.emplace_back();
        for (const PendingStage& pending : chain) {
          names.push_back(pending.command.name);
          if (!reused(pending.command.name, pending.done)) to_run.back().push_back(pending.command);
        }
      }
      const auto side_by_side = std::count_if(to_run.begin(), to_run.end(),
                                              [](const auto& chain) { return !chain.empty(); });
      if (side_by_side == 0) return;
      const auto group_start = std::chrono::steady_clock::now();
      if (options.jobs == 1 || side_by_side < 2) {
        for (const auto& chain : to_run)
          for (const pipeline::StageCommand& command : chain)
            record(command.name, pipeline::run_stage(command));
        if (stages.contains("concurrent")) stages["concurrent"].erase(group);
      } else {
        pipeline::run_chains(to_run, options.jobs, out / "logs", record);
        stages["concurrent"][group] = {
            {"wall",
             std::chrono::duration<double>(std::chrono::steady_clock::now() - group_start).count()},
            {"stages", names}};
      }
      write_file_atomic(seconds_file, stages.dump(2) + "\n");
    };
    std::vector<std::string> world_args = {"--out", world_dir.string(), "--seed", seed};
    if (options.tiny) world_args.insert(world_args.end(), {"--pool", "2000"});
    stage("world", world_dir / "sft_pool_labels.jsonl", bin / "make_world", world_args, "");
    stage("pretrain", pretrain_dir / "model", bin / "pretrain",
          with({"--out", pretrain_dir.string(), "--device", options.device, "--world-seed", seed},
               flags.pretrain),
          options.args.pretrain);
    // Curation runs here, in process (curation.h), timed and reused like the other stages.
    stage_order.push_back("curate");
    if (options.reuse && fs::exists(curate_dir / "curated.jsonl")) {
      std::printf("=== pipeline: curate: reusing %s ===\n",
                  (curate_dir / "curated.jsonl").string().c_str());
      if (!stages.contains("curate") || !stages["curate"].is_number()) stages["curate"] = 0.0;
    } else {
      std::printf("\n=== pipeline: curate (the noisy SFT pool to %lld rows) ===\n",
                  static_cast<long long>(options.budget));
      std::fflush(stdout);
      const auto curate_start = std::chrono::steady_clock::now();
      pipeline::curate_pool({.pool = world_dir / "sft_pool.jsonl",
                             .eval = world_dir / "eval.jsonl",
                             .base_model = pretrain_dir / "model",
                             .out_dir = curate_dir,
                             .budget = options.budget,
                             .device = device});
      stages["curate"] =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - curate_start).count();
      write_file_atomic(seconds_file, stages.dump(2) + "\n");
    }
    const std::vector<std::string> sft_common = {"--base",       (pretrain_dir / "model").string(),
                                                 "--device",     options.device,
                                                 "--world-seed", seed};
    stage(
        "sft", sft_dir / "model", bin / "sft",
        with(with(sft_common, {"--data", sft_data.string(), "--out", sft_dir.string()}), flags.sft),
        options.args.sft);
    // The reward model and PPO, beside DPO and GRPO: both chains start from the SFT model.
    std::vector<std::vector<PendingStage>> preference = {
        {{{"reward", bin / "reward",
           // --likelihood: the reward also reads the SFT model's own token probabilities
           // (rl/heads/reward.h); without it the pipeline's reward model stayed near chance on
           // wrong-fact pairs (43.8%), with it 46-48 of 48 (README, Results).
           with({"--sft", (sft_dir / "model").string(), "--out", reward_dir.string(), "--device",
                 options.device, "--world-seed", seed, "--likelihood"},
                flags.reward),
           options.args.reward},
          reward_dir / "model"},
         {{"ppo", bin / "ppo",
           with({"--policy", (sft_dir / "model").string(), "--reward-model",
                 (reward_dir / "model").string(), "--out", ppo_dir.string(), "--device",
                 options.device, "--world-seed", seed},
                flags.ppo),
           options.args.ppo},
          ppo_dir / "policy"}}};
    if (options.preference)
      preference.push_back(
          {{{"dpo", bin / "dpo",
             with({"--policy", (sft_dir / "model").string(), "--out", dpo_dir.string(), "--device",
                   options.device, "--world-seed", seed},
                  flags.dpo),
             options.args.dpo},
            dpo_dir / "model"},
           {{"grpo", bin / "grpo",
             with({"--policy", (sft_dir / "model").string(), "--out", grpo_dir.string(), "--device",
                   options.device, "--world-seed", seed},
                  flags.grpo),
             options.args.grpo},
            grpo_dir / "model"}});
    concurrently("preference", preference);

    // --- LIMA ablation: one SFT run per arm, except the arm the sft stage already trained -----
    std::vector<pipeline::ArmData> arms;
    std::vector<std::pair<fs::path, std::string>> arm_runs;  // sft dir, what trained it
    if (options.ablation) {
      const World data_world(WorldConfig{.seed = options.world_seed});
      arms = pipeline::prepare_arms({.pool = world_dir / "sft_pool.jsonl",
                                     .curated = curate_dir / "curated.jsonl",
                                     .canonical = world_dir / "sft.jsonl",
                                     .dir = ablation_dir,
                                     .budget = options.budget,
                                     .seed = options.world_seed},
                                    data_world);
      std::vector<std::vector<PendingStage>> arm_chains;  // one SFT run each
      for (const pipeline::ArmData& arm : arms) {
        const bool is_sft_stage = (arm.name == "curated_1k" && options.sft_data == "curated") ||
                                  (arm.name == "clean_1k" && options.sft_data == "canonical");
        if (is_sft_stage) {
          arm_runs.emplace_back(sft_dir, "the pipeline's sft stage (same data and recipe)");
          continue;
        }
        const fs::path arm_sft = ablation_dir / arm.name / "sft";
        // Flags the arm's command already has (CLI11 refuses one given twice).
        std::string given_flags = options.args.sft;
        for (const std::string& flag : flags.sft) given_flags += " " + flag;
        // full_pool: one pass over its rows (ablation.h says why), unless the flags set epochs.
        const std::vector<std::string> arm_budget =
            arm.name == "full_pool"
                ? pipeline::defaults_unless_given({{"--epochs", "1"}}, given_flags)
                : std::vector<std::string>{};
        // The arms are evaluated below; flags.sft already cuts the sft program's own base/SFT
        // evaluation to 8 prompts, as for the sft stage.
        arm_chains.push_back({{{"ablation/" + arm.name, bin / "sft",
                                with(with(with(sft_common, {"--data", arm.train_jsonl.string(),
                                                            "--out", arm_sft.string()}),
                                          flags.sft),
                                     arm_budget),
                                options.args.sft},
                               arm_sft / "model"}});
        arm_runs.emplace_back(arm_sft, "its own sft run");
      }
      concurrently("ablation", arm_chains);
    }

    // --- report ------------------------------------------------------------------------------
    auto report_start = std::chrono::steady_clock::now();
    Tokenizer tokenizer = Tokenizer::load((sft_dir / "model" / "tokenizer.json").string());
    World world(WorldConfig{.seed = options.world_seed});
    rl::RewardModel reward_model = rl::RewardModel::load(reward_dir / "model", device);
    // The reference of the KL column: the SFT model every preference stage started from.
    Transformer sft_reference = Transformer::from_pretrained(sft_dir / "model", device);
    std::vector<pipeline::ModelRow> rows;
    const pipeline::EvaluationInputs inputs{.tokenizer = tokenizer,
                                            .world = world,
                                            .reward_model = reward_model,
                                            .device = device,
                                            .limit = options.eval_prompts};
    auto add_row = [&](const std::string& name, const fs::path& dir, bool kl_to_sft) {
      rows.push_back(pipeline::evaluate_model(name, dir, inputs, out / ("eval_" + name),
                                              kl_to_sft ? &sft_reference : nullptr));
      const std::string stage_name = name == "base" ? "pretrain" : name;
      rows.back().train_seconds = stages.value(stage_name, 0.0);
    };
    add_row("base", pretrain_dir / "model", false);
    add_row("sft", sft_dir / "model", false);
    add_row("ppo", ppo_dir / "policy", true);
    if (options.preference) {
      add_row("dpo", dpo_dir / "model", true);
      add_row("grpo", grpo_dir / "model", true);
    }
    // Per kind of rejected answer, on the world's held-out pairs: can it tell a wrong fact?
    const rl::RewardAccuracy rm_by_kind = rl::reward_accuracy(
        reward_model, tokenizer, world.preference_pairs(world::Split::kHeldOut));
    // And on the SFT model's own held-out mistakes (report.h, mistake_pairs): PPO's reward.
    const auto sft_row = std::find_if(rows.begin(), rows.end(),
                                      [](const pipeline::ModelRow& row) { return row.name == "sft"; });
    const rl::RewardAccuracy rm_on_mistakes = rl::reward_accuracy(
        reward_model, tokenizer, pipeline::mistake_pairs(sft_row->held_out, world));
    const pipeline::KnowledgeHeadroom headroom = pipeline::knowledge_headroom(rows[0], *sft_row);
    // The report's evaluation of the pipeline's own models counts towards its end-to-end time;
    // the arms' evaluation below towards the ablation's.
    stages["report"] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - report_start).count();
    const auto arms_start = std::chrono::steady_clock::now();
    std::vector<pipeline::ArmResult> arm_results;
    for (size_t i = 0; i < arms.size(); ++i) {
      const auto& [arm_sft, trained_by] = arm_runs[i];
      arm_results.push_back(pipeline::evaluate_arm(arms[i], arm_sft,
                                                   ablation_dir / arms[i].name / "eval.jsonl",
                                                   tokenizer, world, device, options.eval_prompts));
      arm_results.back().trained_by = trained_by;
      arm_results.back().train_seconds =
          stages.value(arm_sft == sft_dir ? std::string("sft") : "ablation/" + arms[i].name, 0.0);
    }
    if (!arms.empty())
      stages["ablation/evaluation"] =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - arms_start).count();

    double rm_accuracy = last_value(reward_dir / "metrics.jsonl", "eval/accuracy");
    double final_kl = last_value(ppo_dir / "metrics.jsonl", "objective/kl");
    // The total is the wall time of the stages as each one ran (side by side ones once), so
    // that a --reuse run (which only re-evaluates) still reports what producing these results
    // cost.
    const double total_seconds =
        pipeline::end_to_end_seconds(stages, false) + pipeline::end_to_end_seconds(stages, true);

    nlohmann::json report;
    report["device"] = device.str();
    report["tiny"] = options.tiny;
    report["world_seed"] = options.world_seed;
    report["eval_prompts"] = rows[0].held_out.prompts;
    for (const pipeline::ModelRow& row : rows)
      report["models"][row.name] = pipeline::model_json(row, world);
    report["chance_unseen_facts"] = rows[0].unseen_probe.chance;
    report["unseen_prompts"] = rows[0].unseen_probe.questions;
    report["kl_to_sft_estimator"] =
        "k3 = exp(-r) - 1 + r per response token, r = log pi - log pi_sft, on one temperature-1 "
        "sample per held-out prompt from the model itself; mean over tokens";
    report["probe"] =
        "multiple choice by log-likelihood: the canonical answer sentence against the same "
        "sentence with every other admissible value, after the plain-text cue <|endoftext|> + "
        "question + newline; a tie counts as wrong";
    report["sft_data"] = options.sft_data == "curated"
                             ? "the noisy pool curated to the budget (curate/curated.jsonl)"
                             : "the world's canonical SFT chats (world/sft.jsonl)";
    report["curation"] = pipeline::curation_json(curate_dir, world_dir / "sft_pool_labels.jsonl");
    if (options.ablation) report["ablation"] = pipeline::ablation_json(arm_results, world, out);
    report["reward_model_heldout_accuracy"] = rm_accuracy;
    for (const auto& [kind, counts] : rm_by_kind.by_rejection)
      report["reward_model_heldout_accuracy_by_rejection"][kind] = counts.accuracy();
    report["reward_model_accuracy_on_sft_mistakes"] = {
        {"pairs", rm_on_mistakes.all.total},
        {"correct", rm_on_mistakes.all.correct},
        {"accuracy", pipeline::json_number(rm_on_mistakes.all.accuracy())},
        {"pair",
         "per held-out prompt the SFT model answers wrong: the canonical answer against its own "
         "answer; by_rejection: wrong_fact (the task's sentence, a wrong value), malformed "
         "(another task's sentence or none)"}};
    for (const auto& [kind, counts] : rm_on_mistakes.by_rejection)
      report["reward_model_accuracy_on_sft_mistakes"]["by_rejection"][kind] = {
          {"pairs", counts.total}, {"correct", counts.correct}};
    report["knowledge_headroom"] = {
        {"questions", headroom.questions},
        {"sft_correct", headroom.sft_correct},
        {"base_knows_sft_misses", headroom.base_knows_sft_misses},
        {"sft_knows_base_misses", headroom.sft_knows_base_misses},
        {"ceiling_exact_match", pipeline::json_number(headroom.ceiling())},
        {"what",
         "held-out prompts the SFT model answers wrong although the base's probe ranks the right "
         "value first (base_knows_sft_misses), and the reverse; ceiling_exact_match = SFT's "
         "exact matches plus the first kind: what a later stage reaches by surfacing every fact "
         "the base knows and losing none (eval_<model>_probe.jsonl has each prompt's probe)"}};
    report["ppo_final_kl"] = final_kl;
    report["seconds"] = stages;
    report["seconds"]["total"] = total_seconds;
    report["claims"] = pipeline::claims_json(report);

    std::string table = pipeline::markdown_tables(rows, world);
    table += fmt::format(
        "\nreward model held-out accuracy: {:.1f}%\nreward model on the SFT model's own held-out "
        "mistakes (the right answer against its answer): {} of {}\nheadroom after SFT: of the "
        "{} held-out prompts the SFT model misses, the base's probe knows {} (exact-match "
        "ceiling {}; SFT answers {} that the base's probe misses)\nPPO final KL to the "
        "reference: {:.4f}\nheld-out prompts: {}\n",
        100 * rm_accuracy, rm_on_mistakes.all.correct, rm_on_mistakes.all.total,
        headroom.questions - headroom.sft_correct, headroom.base_knows_sft_misses,
        pipeline::percent(headroom.ceiling()), headroom.sft_knows_base_misses, final_kl,
        rows[0].held_out.prompts);
    table += "\nseconds per stage:";
    stage_order.push_back("report");
    if (!arms.empty()) stage_order.push_back("ablation/evaluation");
    for (const std::string& name : stage_order)
      table += fmt::format(" {} {};", name, rl::format_duration(stages.value(name, 0.0)));
    table += fmt::format(" total {}\n", rl::format_duration(total_seconds));
    if (stages.contains("concurrent"))
      for (const auto& [group, entry] : stages["concurrent"].items()) {
        std::string names;
        for (const auto& name : entry["stages"])
          names += (names.empty() ? "" : ", ") + name.get<std::string>();
        table += fmt::format("side by side (--jobs): {} in {} (the total counts this once)\n",
                             names, rl::format_duration(entry["wall"].get<double>()));
      }
    table += "\n" + pipeline::claims_markdown(report["claims"]);
    table += "SFT data: " + report["sft_data"].get<std::string>() + ".\n\n" +
             pipeline::curation_markdown(report["curation"]);
    if (options.ablation) {
      table += pipeline::ablation_markdown(arm_results, world);
      pipeline::plot_ablation(arm_results, world, out);
    }

    write_file_atomic(out / "report.json", report.dump(2) + "\n");
    write_file_atomic(out / "report.md", "# tiller pipeline report\n\n" + table);

    plot(
        out / "loss_curves.png", "Training losses", "loss",
        {{.label = "pretrain train", .metrics_path = pretrain_dir / "metrics.jsonl", .key = "loss"},
         {.label = "pretrain val",
          .metrics_path = pretrain_dir / "metrics.jsonl",
          .key = "val_loss"},
         {.label = "sft train", .metrics_path = sft_dir / "metrics.jsonl", .key = "loss"},
         {.label = "sft eval", .metrics_path = sft_dir / "metrics.jsonl", .key = "eval_loss"},
         {.label = "reward model", .metrics_path = reward_dir / "metrics.jsonl", .key = "loss"}});
    plot(out / "reward_model_accuracy.png", "Reward model accuracy", "accuracy",
         {{.label = "train", .metrics_path = reward_dir / "metrics.jsonl", .key = "accuracy"},
          {.label = "held-out",
           .metrics_path = reward_dir / "metrics.jsonl",
           .key = "eval/accuracy"}});
    plot(out / "ppo_reward_kl.png", "PPO: reward and KL to the reference", "value",
         {{.label = "score", .metrics_path = ppo_dir / "metrics.jsonl", .key = "objective/scores"},
          {.label = "rlhf reward",
           .metrics_path = ppo_dir / "metrics.jsonl",
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
