// Per-model measurements of the pipeline and their report.json / report.md forms (see report.h).
#include "report.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "core/io/atomic_file.h"
#include "core/text/special_tokens.h"
#include "rl/reports/metrics.h"

namespace pipeline {

using namespace tiller;
namespace fs = std::filesystem;

namespace {

// Exact-match rate of the generated answers per task, and over the creature attributes.
struct ExactMatchBreakdown {
  std::vector<int64_t> questions = std::vector<int64_t>(world::kNumTaskTypes, 0);
  std::vector<int64_t> exact = std::vector<int64_t>(world::kNumTaskTypes, 0);
  int64_t creature_questions = 0, creature_exact = 0;
};

ExactMatchBreakdown breakdown(const rl::EvaluationReport& report,
                              const std::vector<world::EvalItem>& items) {
  ExactMatchBreakdown b;
  for (const rl::EvaluatedExample& example : report.examples) {
    const world::TaskType task =
        items.at(static_cast<size_t>(example.eval_id)).question.expected.task;
    ++b.questions[static_cast<size_t>(task)];
    b.exact[static_cast<size_t>(task)] += example.score.exact_match ? 1 : 0;
    if (world::is_creature_attribute(task)) {
      ++b.creature_questions;
      b.creature_exact += example.score.exact_match ? 1 : 0;
    }
  }
  return b;
}

}  // namespace

double rate(int64_t count, int64_t total) {
  return total == 0 ? std::nan("") : static_cast<double>(count) / static_cast<double>(total);
}

nlohmann::json json_number(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

std::string percent(double value) {
  return std::isfinite(value) ? fmt::format("{:.1f}%", 100.0 * value) : std::string("—");
}

ModelRow evaluate_model(const std::string& name, const fs::path& dir,
                        const EvaluationInputs& inputs, const fs::path& jsonl_prefix,
                        Transformer* sft_reference) {
  std::printf("\n=== pipeline: evaluating %s (%s) ===\n", name.c_str(), dir.string().c_str());
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  Transformer model = Transformer::from_pretrained(dir, inputs.device);
  const World& world = inputs.world;
  rl::EvaluationConfig config;
  config.limit = inputs.limit;
  config.scorer = [&](const std::vector<ChatMessage>& prompt, const std::string& response) {
    return static_cast<double>(
        inputs.reward_model.score(inputs.tokenizer, {world::render_prompt(prompt)}, {response})[0]);
  };
  ModelRow row;
  row.name = name;
  config.jsonl_path = jsonl_prefix.string() + ".jsonl";
  row.held_out = rl::evaluate_world(model, inputs.tokenizer, world.eval_prompts(), config);
  std::printf("%s: %s\n", name.c_str(), row.held_out.summary().c_str());
  config.jsonl_path = jsonl_prefix.string() + "_unseen.jsonl";
  config.scorer = nullptr;
  row.unseen = rl::evaluate_world(model, inputs.tokenizer, world.unseen_prompts(), config);
  const rl::ProbeConfig probe{.limit = inputs.limit};
  row.probe = rl::probe_world(model, inputs.tokenizer, world, world.eval_prompts(), probe);
  row.unseen_probe = rl::probe_world(model, inputs.tokenizer, world, world.unseen_prompts(), probe);
  {
    std::string lines;
    for (const rl::ProbeExample& example : row.probe.examples)
      lines += nlohmann::json{{"id", example.id},
                              {"task", world::task_name(example.task)},
                              {"expected", example.expected},
                              {"best", example.best},
                              {"candidates", example.candidates},
                              {"correct", example.correct}}
                   .dump() +
               "\n";
    write_file_atomic(jsonl_prefix.string() + "_probe.jsonl", lines);
  }
  std::printf("%s: held-out %s\n%s: unseen   %s\n", name.c_str(), row.probe.summary().c_str(),
              name.c_str(), row.unseen_probe.summary().c_str());
  if (sft_reference != nullptr) {
    row.kl_to_sft = rl::kl_on_own_samples(
        model, *sft_reference, inputs.tokenizer, world.eval_prompts(),
        {.max_new_tokens = config.max_new_tokens, .limit = inputs.limit, .seed = 1});
    std::printf(
        "%s: KL to the SFT model on its own samples: k3 %.4f  k1 %.4f per token (%lld "
        "tokens)\n",
        name.c_str(), row.kl_to_sft->k3, row.kl_to_sft->k1,
        static_cast<long long>(row.kl_to_sft->tokens));
  }
  row.eval_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return row;
}

std::vector<world::PreferencePair> mistake_pairs(const rl::EvaluationReport& report,
                                                 const World& world) {
  std::vector<world::PreferencePair> pairs;
  for (const rl::EvaluatedExample& example : report.examples) {
    if (example.score.exact_match) continue;
    const world::EvalItem& item = world.eval_prompts().at(static_cast<size_t>(example.eval_id));
    pairs.push_back({.question = item.question,
                     .prompt = item.prompt,
                     .chosen = example.expected + std::string(special_tokens::kEndOfTurn),
                     .rejected = example.response,
                     .rejection = example.score.format_ok ? world::Rejection::kWrongFact
                                                          : world::Rejection::kMalformed,
                     .held_out = true});
  }
  return pairs;
}

double KnowledgeHeadroom::ceiling() const {
  return rate(sft_correct + base_knows_sft_misses, questions);
}

KnowledgeHeadroom knowledge_headroom(const ModelRow& base, const ModelRow& sft) {
  std::map<int, bool> base_knows;
  for (const rl::ProbeExample& example : base.probe.examples) base_knows[example.id] = example.correct;
  KnowledgeHeadroom h;
  for (const rl::EvaluatedExample& example : sft.held_out.examples) {
    const auto known = base_knows.find(example.eval_id);
    if (known == base_knows.end()) continue;
    ++h.questions;
    if (example.score.exact_match) {
      ++h.sft_correct;
      if (!known->second) ++h.sft_knows_base_misses;
    } else if (known->second) {
      ++h.base_knows_sft_misses;
    }
  }
  return h;
}

nlohmann::json model_json(const ModelRow& row, const World& world) {
  const rl::EvaluationReport& r = row.held_out;
  const ExactMatchBreakdown b = breakdown(r, world.eval_prompts());
  nlohmann::json m = {
      {"exact_match", r.exact_match_rate},
      {"format_compliance", r.format_rate},
      {"fact_correct", r.fact_correct_rate},
      {"ends_turn", r.ends_turn_rate},
      {"world_reward", r.mean_reward},
      {"reward_model_score", json_number(r.mean_extra_score.value_or(std::nan("")))},
      {"mean_response_tokens", r.mean_response_tokens},
      {"exact_match_pretrained_facts", json_number(rate(b.creature_exact, b.creature_questions))},
      {"probe_accuracy", row.probe.accuracy},
      {"probe_accuracy_creature_attributes", json_number(row.probe.creature_accuracy)},
      {"accuracy_unseen_facts", json_number(row.unseen_probe.accuracy)},
      {"exact_match_unseen_facts", row.unseen.exact_match_rate},
      {"train_seconds", row.train_seconds},
      {"eval_seconds", row.eval_seconds}};
  for (int t = 0; t < world::kNumTaskTypes; ++t) {
    const std::string task(world::task_name(world::task_from_index(t)));
    m["exact_match_per_task"][task] = json_number(rate(b.exact[t], b.questions[t]));
    m["probe_accuracy_per_task"][task] = json_number(row.probe.per_task[t].accuracy());
  }
  if (row.kl_to_sft) {
    m["kl_to_sft"] = row.kl_to_sft->k3;
    m["kl_to_sft_k1"] = row.kl_to_sft->k1;
    m["kl_to_sft_per_response_k1"] = row.kl_to_sft->k1_sequence;
    m["kl_to_sft_tokens"] = row.kl_to_sft->tokens;
  }
  return m;
}

std::string markdown_tables(const std::vector<ModelRow>& rows, const World& world) {
  std::string md =
      "| model | exact match | format compliance | reward-model score | mean response tokens | "
      "KL to SFT (k3/token) | train time |\n|---|---|---|---|---|---|---|\n";
  for (const ModelRow& row : rows) {
    const rl::EvaluationReport& r = row.held_out;
    md += fmt::format("| {} | {} | {} | {:.3f} | {:.1f} | {} | {} |\n", row.name,
                      percent(r.exact_match_rate), percent(r.format_rate),
                      r.mean_extra_score.value_or(std::nan("")), r.mean_response_tokens,
                      row.kl_to_sft ? fmt::format("{:.3g}", row.kl_to_sft->k3) : "—",
                      rl::format_duration(row.train_seconds));
  }
  md +=
      "\nKnowledge: the likelihood probe (no chat format; the canonical sentence against every "
      "other admissible value) and generated exact match on facts stated only in the pretraining "
      "corpus; the unseen creatures are in no data set, so their accuracy should stay at chance (" +
      percent(rows.empty() ? std::nan("") : rows[0].unseen_probe.chance) + ").\n\n";
  md += "| model | probe, all tasks | probe, creature attributes |";
  for (int t = 0; t < world::kNumTaskTypes; ++t)
    md += fmt::format(" probe {} |", world::task_name(world::task_from_index(t)));
  md +=
      " exact match, pretrained creature facts | probe, unseen creatures | exact match, unseen "
      "creatures |\n|---|---|---|";
  for (int t = 0; t < world::kNumTaskTypes; ++t) md += "---|";
  md += "---|---|---|\n";
  for (const ModelRow& row : rows) {
    md += fmt::format("| {} | {} | {} |", row.name, percent(row.probe.accuracy),
                      percent(row.probe.creature_accuracy));
    for (const rl::ProbeTaskResult& task : row.probe.per_task)
      md += fmt::format(" {}/{} |", task.correct, task.questions);
    const ExactMatchBreakdown b = breakdown(row.held_out, world.eval_prompts());
    md += fmt::format(" {} | {} | {} |\n", percent(rate(b.creature_exact, b.creature_questions)),
                      percent(row.unseen_probe.accuracy), percent(row.unseen.exact_match_rate));
  }
  return md;
}

nlohmann::json claims_json(const nlohmann::json& report) {
  nlohmann::json claims = nlohmann::json::array();
  // `unit` says how `value` reads: "rate" (a fraction), "points" (a difference of rates) or
  // "seconds".
  auto add = [&](std::string claim, std::string measure, double value, std::string target, bool met,
                 const char* unit = "rate") {
    claims.push_back({{"claim", std::move(claim)},
                      {"measure", std::move(measure)},
                      {"value", std::isfinite(value) ? nlohmann::json(value) : nlohmann::json()},
                      {"unit", unit},
                      {"target", std::move(target)},
                      {"met", met}});
  };
  auto field = [](const nlohmann::json& j, const char* key) {
    return j.contains(key) && j[key].is_number() ? j[key].get<double>() : std::nan("");
  };
  if (!report.contains("models")) return claims;
  const nlohmann::json& models = report["models"];
  if (models.contains("base")) {
    const double probe = field(models["base"], "probe_accuracy_creature_attributes");
    add("knowledge comes from pretraining", "base probe, creature attributes", probe, ">= 80%",
        probe >= 0.80);
  }
  const double chance = field(report, "chance_unseen_facts");
  const double questions = field(report, "unseen_prompts");
  if (std::isfinite(chance) && questions > 0) {
    const double bound = chance + 2 * std::sqrt(chance * (1 - chance) / questions);
    double worst = -1;
    for (const auto& [name, m] : models.items())
      worst = std::max(worst, field(m, "accuracy_unseen_facts"));
    add("facts in no data set stay at chance for every model",
        "highest probe on the unseen creatures", worst,
        fmt::format("<= {} (chance {} + 2 s.e.)", percent(bound), percent(chance)), worst <= bound);
  }
  if (models.contains("sft")) {
    const double exact = field(models["sft"], "exact_match_pretrained_facts");
    add("alignment surfaces what pretraining taught",
        "SFT exact match on facts seen only in pretraining", exact, ">= 60%", exact >= 0.60);
    const double format = field(models["sft"], "format_compliance");
    add("a small curated set teaches the format", "SFT format compliance", format, ">= 95%",
        format >= 0.95);
  }
  if (report.contains("ablation") && report["ablation"].contains("arms")) {
    const nlohmann::json& arms = report["ablation"]["arms"];
    auto arm = [&](const char* name, const char* key) {
      return arms.contains(name) ? field(arms[name], key) : std::nan("");
    };
    const double curated = arm("curated_1k", "exact_match"), clean = arm("clean_1k", "exact_match");
    const double pool = arm("full_pool", "exact_match"), random = arm("random_1k", "exact_match");
    if (std::isfinite(curated) && std::isfinite(pool) && std::isfinite(random)) {
      add("quality beats quantity (LIMA)",
          fmt::format("exact match: curated_1k {}, clean_1k {}, full_pool {}, random_1k {}",
                      percent(curated), percent(clean), percent(pool), percent(random)),
          curated, "curated >= full_pool > random", curated >= pool && pool > random);
    }
    if (arms.contains("homogeneous_1k") &&
        arms["homogeneous_1k"].contains("tasks_homogeneous_arm_never_saw")) {
      const auto unseen_exact = [&](const char* name) {
        return arms.contains(name) && arms[name].contains("tasks_homogeneous_arm_never_saw")
                   ? field(arms[name]["tasks_homogeneous_arm_never_saw"], "exact_match")
                   : std::nan("");
      };
      const double homogeneous = unseen_exact("homogeneous_1k");
      double weakest_diverse = std::nan("");
      for (const char* name : {"curated_1k", "random_1k", "full_pool", "clean_1k"}) {
        const double value = unseen_exact(name);
        if (std::isfinite(value) && !(value >= weakest_diverse)) weakest_diverse = value;
      }
      add("diversity beats homogeneity (LIMA)",
          fmt::format("exact match on the tasks homogeneous_1k never saw (weakest diverse arm {})",
                      percent(weakest_diverse)),
          homogeneous, "below every diverse arm", homogeneous < weakest_diverse);
    }
  }
  const double rm = field(report, "reward_model_heldout_accuracy");
  if (std::isfinite(rm))
    add("a reward model learns the preferences", "reward model held-out accuracy", rm, ">= 90%",
        rm >= 0.90);
  if (report.contains("reward_model_heldout_accuracy_by_rejection")) {
    const double wrong_fact =
        field(report["reward_model_heldout_accuracy_by_rejection"], "wrong_fact");
    add("the reward model tells a right fact from a wrong one",
        "reward model held-out accuracy on wrong-fact pairs", wrong_fact, ">= 80%",
        wrong_fact >= 0.80);
  }
  if (models.contains("sft") && models.contains("ppo")) {
    const double gain = field(models["ppo"], "exact_match") - field(models["sft"], "exact_match");
    std::string headroom;
    if (report.contains("knowledge_headroom"))
      headroom = fmt::format(
          "; the base knows {:+.1f} points more than SFT answers (knowledge_headroom)",
          100 * (field(report["knowledge_headroom"], "ceiling_exact_match") -
                 field(models["sft"], "exact_match")));
    add("PPO against the reward model improves the policy",
        fmt::format("PPO exact match minus SFT's (KL to SFT {:.3g}/token{})",
                    field(models["ppo"], "kl_to_sft"), headroom),
        gain, ">= +5 points", gain >= 0.05, "points");
  }
  if (report.contains("seconds") && report["seconds"].is_object()) {
    const double stages = end_to_end_seconds(report["seconds"], false);
    const double ablation = end_to_end_seconds(report["seconds"], true);
    add("every stage is fast enough to run on a laptop",
        fmt::format("seconds end to end: the stages (world to grpo) and the report's evaluation "
                    "of their models: {}",
                    tiller::rl::format_duration(stages)),
        stages, "<= 600 s on 2 CPU cores", stages <= 600, "seconds");
    if (ablation > 0)
      add("the LIMA ablation is cheap",
          fmt::format("seconds of the ablation: its extra SFT runs and their evaluation: {}",
                      tiller::rl::format_duration(ablation)),
          ablation, "<= 600 s on 2 CPU cores", ablation <= 600, "seconds");
  }
  return claims;
}

double end_to_end_seconds(const nlohmann::json& seconds, bool ablation) {
  std::set<std::string> grouped;
  double total = 0;
  if (seconds.contains("concurrent") && seconds["concurrent"].is_object()) {
    for (const auto& [group, entry] : seconds["concurrent"].items()) {
      if (!entry.contains("stages") || !entry.contains("wall") || !entry["wall"].is_number())
        continue;
      for (const auto& name : entry["stages"]) grouped.insert(name.get<std::string>());
      // A group is the ablation's when its stages are (they never mix).
      const bool ablation_group =
          !entry["stages"].empty() &&
          entry["stages"].front().get<std::string>().starts_with("ablation/");
      if (ablation_group == ablation) total += entry["wall"].get<double>();
    }
  }
  for (const auto& [name, value] : seconds.items()) {
    if (!value.is_number() || name == "total" || grouped.count(name) > 0) continue;
    if (name.starts_with("ablation/") == ablation) total += value.get<double>();
  }
  return total;
}

std::string claims_markdown(const nlohmann::json& claims) {
  std::string md =
      "## The seed's claims\n\n| claim | measure | value | target | met "
      "|\n|---|---|---:|---|---|\n";
  for (const nlohmann::json& c : claims) {
    const std::string unit = c["unit"].get<std::string>();
    const double v = c["value"].is_number() ? c["value"].get<double>() : std::nan("");
    const std::string value = !std::isfinite(v)   ? "—"
                              : unit == "points"  ? fmt::format("{:+.1f} points", 100 * v)
                              : unit == "seconds" ? fmt::format("{:.0f} s", v)
                                                  : percent(v);
    md += fmt::format("| {} | {} | {} | {} | {} |\n", c["claim"].get<std::string>(),
                      c["measure"].get<std::string>(), value, c["target"].get<std::string>(),
                      c["met"].get<bool>() ? "yes" : "**no**");
  }
  return md + "\n";
}

}  // namespace pipeline
