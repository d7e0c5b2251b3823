// The LIMA ablation (issue 11 §3): SFT arms on the pipeline's pretrained base with the same SFT
// recipe and evaluation, differing only in their training data —
//   curated_1k      the curation stage's output (curation.h), budget rows
//   random_1k       budget rows drawn at random from the noisy pool
//   full_pool       the whole noisy pool (~10,000 rows), trained for ONE epoch: about as many
//                   examples seen (10,000) as the 1k arms' eight epochs (8,000), so the arms
//                   compare at a similar number of optimizer steps and tokens (both reported;
//                   measured on the defaults: 203 steps / 133k assistant tokens, against 184 /
//                   137k for curated_1k and 160 / 102k for clean_1k)
//   clean_1k        the world's canonical 1,000 SFT chats (World::sft_examples), the upper bound
//   homogeneous_1k  budget canonical chats about only two tasks (kHomogeneousTasks), LIMA's
//                   diversity ablation
// Scoring: every arm is evaluated on the held-out prompts that did not leak into its training
// data (an eval question appearing, normalised, inside a user turn), and the leak count is
// reported. Per arm: exact match, probe accuracy, format compliance, rambling rate, ends-turn rate,
// mean response tokens, training steps / tokens / seconds — overall and split into the tasks the
// homogeneous arm saw and the ones it never saw.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "core/world/world.h"
#include "rl/reports/evaluate.h"
#include "rl/reports/probe.h"
#include "tiller.h"

namespace pipeline {

inline const std::vector<std::string> kAblationArms = {"curated_1k", "random_1k", "full_pool",
                                                       "clean_1k", "homogeneous_1k"};
inline constexpr tiller::world::TaskType kHomogeneousTasks[] = {tiller::world::TaskType::kColour,
                                                                tiller::world::TaskType::kHomeTown};

struct ArmData {
  std::string name;
  std::filesystem::path train_jsonl;
  int64_t rows = 0;
  std::set<int> leaked_eval_ids;  // eval prompts asked in the training data
  int64_t leaked_rows = 0;        // training rows asking one
};

struct AblationSources {
  std::filesystem::path pool;       // sft_pool.jsonl
  std::filesystem::path curated;    // curated.jsonl
  std::filesystem::path canonical;  // the world's sft.jsonl
  std::filesystem::path dir;        // where the arms' data and runs go
  int64_t budget = 1000;
  uint64_t seed = 1;  // the random_1k draw
};

// Writes (or points at) each arm's training file and finds its leaked eval questions.
std::vector<ArmData> prepare_arms(const AblationSources& sources, const tiller::World& world);

struct ArmResult {
  ArmData data;
  tiller::rl::EvaluationReport generation;  // on the prompts that did not leak into the arm
  tiller::rl::ProbeReport probe;
  int64_t training_steps = 0;
  int64_t training_tokens = 0;  // trainable (assistant) tokens over every step
  double train_seconds = 0.0;
  std::string trained_by;  // which run produced the model
};

// Evaluates the arm's model in `model_dir` on the first `limit` held-out prompts (0: all) minus
// the ones that leaked into it; training figures come from `sft_dir`/metrics.jsonl.
// Per-prompt generations go to `eval_jsonl`.
ArmResult evaluate_arm(const ArmData& arm, const std::filesystem::path& sft_dir,
                       const std::filesystem::path& eval_jsonl, const tiller::Tokenizer& tokenizer,
                       const tiller::World& world, tiller::Device device, int64_t limit);

// Training-data paths are written relative to `out` (the pipeline's --out).
nlohmann::json ablation_json(const std::vector<ArmResult>& arms, const tiller::World& world,
                             const std::filesystem::path& out);
std::string ablation_markdown(const std::vector<ArmResult>& arms, const tiller::World& world);
// One grouped bar chart per metric (groups: all tasks, the homogeneous arm's tasks, the others;
// one bar per arm) into `dir`/ablation_<metric>.png.
void plot_ablation(const std::vector<ArmResult>& arms, const tiller::World& world,
                   const std::filesystem::path& dir);

}  // namespace pipeline
