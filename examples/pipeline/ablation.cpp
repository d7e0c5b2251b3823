// The LIMA ablation's data, evaluation and report (see ablation.h).
#include "ablation.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "core/data/normalise.h"
#include "core/data/rows.h"
#include "core/io/atomic_file.h"
#include "kernels/random.h"
#include "report.h"
#include "rl/reports/metrics.h"
#include "rl/reports/plot.h"

namespace pipeline {

using namespace tiller;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> read_lines(const fs::path& path) {
  std::ifstream in(path);
  TILLER_CHECK(in.good(), "pipeline ablation: cannot open {}", path.string());
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(line);
  return lines;
}

void write_lines(const fs::path& path, const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  fs::create_directories(path.parent_path());
  write_file_atomic(path, text);
}

bool is_homogeneous_task(world::TaskType task) {
  return std::find(std::begin(kHomogeneousTasks), std::end(kHomogeneousTasks), task) !=
         std::end(kHomogeneousTasks);
}

// `budget` canonical chats whose every question is about one of kHomogeneousTasks: the world's
// SFT chats generated at 8x the budget (the first ones are the canonical 1,000 themselves), kept in
// order while they are about those tasks only.
std::vector<world::SftExample> homogeneous_chats(const World& world, int64_t budget) {
  WorldConfig config = world.config();
  config.num_sft_examples = static_cast<int>(8 * budget);
  config.num_pool_examples = 0;
  const World larger(config);
  std::vector<world::SftExample> chosen;
  for (const world::SftExample& example : larger.sft_examples()) {
    const bool only_those =
        std::all_of(example.questions.begin(), example.questions.end(),
                    [](const world::Question& q) { return is_homogeneous_task(q.expected.task); });
    if (only_those) chosen.push_back(example);
    if (static_cast<int64_t>(chosen.size()) == budget) break;
  }
  TILLER_CHECK(static_cast<int64_t>(chosen.size()) == budget,
               "pipeline ablation: only {} two-task chats for a budget of {}", chosen.size(),
               budget);
  return chosen;
}

// The normalised text between two spaces, so that a find() matches whole words only.
std::string padded_normalised(std::string_view text) {
  std::string padded(1, ' ');
  padded += data::normalise_text(text);
  padded += ' ';
  return padded;
}

// Eval prompts whose question appears (normalised, on word boundaries) in a user turn.
void find_leaks(ArmData& arm, const World& world) {
  std::vector<std::string> questions;
  for (const world::EvalItem& item : world.eval_prompts())
    questions.push_back(padded_normalised(item.question.text));
  const data::RowStore rows = data::read_rows({arm.train_jsonl});
  arm.rows = static_cast<int64_t>(rows.rows.size());
  for (const data::Row& row : rows.rows) {
    bool leaked = false;
    for (const data::Message& message : row.messages) {
      if (message.role != "user") continue;
      const std::string user = padded_normalised(message.content);
      for (size_t id = 0; id < questions.size(); ++id) {
        if (user.find(questions[id]) == std::string::npos) continue;
        arm.leaked_eval_ids.insert(static_cast<int>(id));
        leaked = true;
      }
    }
    arm.leaked_rows += leaked ? 1 : 0;
  }
}

// Rates over one group of tasks.
struct GroupRates {
  int64_t prompts = 0, exact = 0, format = 0, rambling = 0, ends_turn = 0, fact = 0;
  int64_t response_tokens = 0, probed = 0, probe_correct = 0;
};

enum class Group { kAll, kHomogeneousTasks, kOtherTasks };
constexpr Group kGroups[] = {Group::kAll, Group::kHomogeneousTasks, Group::kOtherTasks};
const char* group_key(Group group) {
  return group == Group::kAll                ? "all_tasks"
         : group == Group::kHomogeneousTasks ? "homogeneous_arm_tasks"
                                             : "tasks_homogeneous_arm_never_saw";
}
const char* group_label(Group group) {
  return group == Group::kAll                ? "all tasks"
         : group == Group::kHomogeneousTasks ? "colour + home_town"
                                             : "the 6 other tasks";
}
bool in_group(Group group, world::TaskType task) {
  return group == Group::kAll || (group == Group::kHomogeneousTasks) == is_homogeneous_task(task);
}

GroupRates group_rates(const ArmResult& arm, const World& world, Group group) {
  GroupRates g;
  for (const rl::EvaluatedExample& e : arm.generation.examples) {
    const auto task =
        world.eval_prompts().at(static_cast<size_t>(e.eval_id)).question.expected.task;
    if (!in_group(group, task)) continue;
    ++g.prompts;
    g.exact += e.score.exact_match;
    g.format += e.score.format_ok;
    g.rambling += e.score.rambling;
    g.ends_turn += e.score.ends_turn;
    g.fact += e.score.fact_correct;
    g.response_tokens += e.response_tokens;
  }
  for (const rl::ProbeExample& p : arm.probe.examples) {
    if (!in_group(group, p.task)) continue;
    ++g.probed;
    g.probe_correct += p.correct;
  }
  return g;
}

struct Metric {
  const char* key;
  const char* label;
  double (*value)(const GroupRates&);
};
const Metric kMetrics[] = {
    {"exact_match", "exact match", [](const GroupRates& g) { return rate(g.exact, g.prompts); }},
    {"probe_accuracy", "probe accuracy",
     [](const GroupRates& g) { return rate(g.probe_correct, g.probed); }},
    {"format_compliance", "format compliance",
     [](const GroupRates& g) { return rate(g.format, g.prompts); }},
    {"rambling_rate", "rambling rate",
     [](const GroupRates& g) { return rate(g.rambling, g.prompts); }},
    {"ends_turn", "ends-turn rate",
     [](const GroupRates& g) { return rate(g.ends_turn, g.prompts); }},
    {"fact_correct", "fact correct", [](const GroupRates& g) { return rate(g.fact, g.prompts); }},
    {"mean_response_tokens", "mean response tokens",
     [](const GroupRates& g) { return rate(g.response_tokens, g.prompts); }},
};

}  // namespace

std::vector<ArmData> prepare_arms(const AblationSources& sources, const World& world) {
  TILLER_CHECK(sources.budget > 0, "pipeline ablation: the budget must be positive, got {}",
               sources.budget);
  std::vector<ArmData> arms;
  for (const std::string& name : kAblationArms) {
    ArmData arm;
    arm.name = name;
    const fs::path file = sources.dir / name / "train.jsonl";
    if (name == "curated_1k") {
      arm.train_jsonl = sources.curated;
    } else if (name == "full_pool") {
      arm.train_jsonl = sources.pool;
    } else if (name == "clean_1k") {
      arm.train_jsonl = sources.canonical;
    } else if (name == "random_1k") {
      std::vector<std::string> lines = read_lines(sources.pool);
      TILLER_CHECK(static_cast<int64_t>(lines.size()) >= sources.budget,
                   "pipeline ablation: the pool {} has {} rows, fewer than the budget {}",
                   sources.pool.string(), lines.size(), sources.budget);
      tiller::random::Stream stream(tiller::random::derive(sources.seed, "ablation/random_1k"));
      tiller::random::shuffle(lines, stream);
      lines.resize(static_cast<size_t>(sources.budget));
      write_lines(file, lines);
      arm.train_jsonl = file;
    } else {
      fs::create_directories(file.parent_path());
      world::write_sft_jsonl(file.string(), homogeneous_chats(world, sources.budget));
      arm.train_jsonl = file;
    }
    find_leaks(arm, world);
    arms.push_back(std::move(arm));
  }
  return arms;
}

ArmResult evaluate_arm(const ArmData& arm, const fs::path& sft_dir, const fs::path& eval_jsonl,
                       const Tokenizer& tokenizer, const World& world, Device device,
                       int64_t limit) {
  std::printf("\n=== pipeline: ablation, evaluating %s ===\n", arm.name.c_str());
  std::fflush(stdout);
  ArmResult result;
  result.data = arm;
  const auto& all = world.eval_prompts();
  const size_t count = limit > 0 ? std::min(all.size(), static_cast<size_t>(limit)) : all.size();
  std::vector<world::EvalItem> items;
  for (size_t i = 0; i < count; ++i)
    if (!arm.leaked_eval_ids.contains(all[i].id)) items.push_back(all[i]);
  TILLER_CHECK(!items.empty(), "pipeline ablation: every eval prompt leaked into arm {}", arm.name);
  Transformer model = Transformer::from_pretrained(sft_dir / "model", device);
  rl::EvaluationConfig config;
  fs::create_directories(eval_jsonl.parent_path());
  config.jsonl_path = eval_jsonl.string();
  result.generation = rl::evaluate_world(model, tokenizer, items, config);
  result.probe = rl::probe_world(model, tokenizer, world, items);
  std::printf("%s: %s\n%s: %s\n", arm.name.c_str(), result.generation.summary().c_str(),
              arm.name.c_str(), result.probe.summary().c_str());
  const auto tokens =
      rl::read_series({.metrics_path = sft_dir / "metrics.jsonl", .key = "trainable_tokens"});
  result.training_steps = static_cast<int64_t>(tokens.size());
  for (const auto& [step, value] : tokens) result.training_tokens += static_cast<int64_t>(value);
  return result;
}

nlohmann::json ablation_json(const std::vector<ArmResult>& arms, const World& world,
                             const fs::path& out_dir) {
  nlohmann::json out;
  out["full_pool_budget"] =
      "one epoch over the whole pool (every row seen once) against eight epochs of the 1k arms: "
      "a similar number of examples seen; training_steps and training_tokens say how similar";
  out["scored_on"] =
      "held-out prompts that did not leak into the arm's training data (eval_prompts per arm)";
  out["homogeneous_tasks"] = {"colour", "home_town"};
  for (const ArmResult& arm : arms) {
    nlohmann::json a;
    a["training_rows"] = arm.data.rows;
    a["training_data"] = arm.data.train_jsonl.lexically_relative(out_dir).string();
    a["trained_by"] = arm.trained_by;
    a["training_steps"] = arm.training_steps;
    a["training_tokens"] = arm.training_tokens;
    a["train_seconds"] = arm.train_seconds;
    a["leaked_eval_questions"] = arm.data.leaked_eval_ids.size();
    a["leaked_training_rows"] = arm.data.leaked_rows;
    a["eval_prompts"] = arm.generation.prompts;
    for (Group group : kGroups) {
      const GroupRates g = group_rates(arm, world, group);
      nlohmann::json& target = group == Group::kAll ? a : a[group_key(group)];
      for (const Metric& metric : kMetrics) target[metric.key] = json_number(metric.value(g));
      if (group != Group::kAll) target["eval_prompts"] = g.prompts;
    }
    for (int t = 0; t < world::kNumTaskTypes; ++t) {
      const std::string task(world::task_name(world::task_from_index(t)));
      int64_t n = 0, exact = 0, format = 0;
      for (const rl::EvaluatedExample& e : arm.generation.examples) {
        if (world.eval_prompts().at(static_cast<size_t>(e.eval_id)).question.expected.task !=
            world::task_from_index(t))
          continue;
        ++n;
        exact += e.score.exact_match;
        format += e.score.format_ok;
      }
      a["per_task"][task] = {{"eval_prompts", n},
                             {"exact_match", json_number(rate(exact, n))},
                             {"format_compliance", json_number(rate(format, n))}};
    }
    out["arms"][arm.data.name] = a;
  }
  return out;
}

std::string ablation_markdown(const std::vector<ArmResult>& arms, const World& world) {
  std::string md =
      "## LIMA ablation\n\nSFT arms on the same pretrained base, SFT recipe and evaluation; each "
      "is scored on the held-out prompts that did not leak into its training data. full_pool is "
      "trained for one epoch (each of its rows once), the 1k arms for the SFT recipe's epochs.\n\n"
      "| arm | rows | leaked eval questions (rows) | prompts scored | exact match | probe | "
      "format | rambling | ends turn | mean response tokens | steps | training tokens | train "
      "time |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const ArmResult& arm : arms) {
    const GroupRates g = group_rates(arm, world, Group::kAll);
    md += fmt::format(
        "| {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} | {:.1f} | {} | {} | {} |\n",
        arm.data.name, arm.data.rows, arm.data.leaked_eval_ids.size(), arm.data.leaked_rows,
        g.prompts, percent(rate(g.exact, g.prompts)), percent(rate(g.probe_correct, g.probed)),
        percent(rate(g.format, g.prompts)), percent(rate(g.rambling, g.prompts)),
        percent(rate(g.ends_turn, g.prompts)), rate(g.response_tokens, g.prompts),
        arm.training_steps, arm.training_tokens, rl::format_duration(arm.train_seconds));
  }
  md +=
      "\nDiversity: exact match / format compliance on the two tasks the homogeneous arm trained "
      "on (colour, home_town) and on the six it never saw.\n\n| arm | exact, colour + home_town | "
      "format, colour + home_town | exact, other tasks | format, other tasks |\n"
      "|---|---:|---:|---:|---:|\n";
  for (const ArmResult& arm : arms) {
    const GroupRates seen = group_rates(arm, world, Group::kHomogeneousTasks);
    const GroupRates other = group_rates(arm, world, Group::kOtherTasks);
    md += fmt::format(
        "| {} | {} | {} | {} | {} |\n", arm.data.name, percent(rate(seen.exact, seen.prompts)),
        percent(rate(seen.format, seen.prompts)), percent(rate(other.exact, other.prompts)),
        percent(rate(other.format, other.prompts)));
  }
  return md + "\n";
}

void plot_ablation(const std::vector<ArmResult>& arms, const World& world, const fs::path& dir) {
  std::vector<std::string> categories;
  for (Group group : kGroups) categories.push_back(group_label(group));
  for (const Metric& metric : kMetrics) {
    std::vector<rl::BarSeries> series;
    for (const ArmResult& arm : arms) {
      rl::BarSeries bars{arm.data.name, {}};
      for (Group group : kGroups)
        bars.values.push_back(metric.value(group_rates(arm, world, group)));
      series.push_back(std::move(bars));
    }
    const rl::PlotResult plot =
        rl::plot_bars(categories, series, dir / fmt::format("ablation_{}.png", metric.key),
                      {.title = fmt::format("LIMA ablation: {}", metric.label),
                       .x_label = "held-out prompts",
                       .y_label = metric.label});
    std::printf("%s\n", plot.message.c_str());
  }
  std::vector<rl::BarSeries> series;
  for (const ArmResult& arm : arms)
    series.push_back({arm.data.name, {static_cast<double>(arm.training_tokens)}});
  const rl::PlotResult plot = rl::plot_bars(
      {"training tokens (assistant)"}, series, dir / "ablation_training_tokens.png",
      {.title = "LIMA ablation: training tokens", .x_label = "", .y_label = "tokens"});
  std::printf("%s\n", plot.message.c_str());
}

}  // namespace pipeline
