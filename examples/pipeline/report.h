// The pipeline's per-model measurements and how they are written into report.json / report.md.
//
// Every model row (base, sft, ppo, dpo, grpo) is measured the same way, on the world's held-out
// prompts and on the unseen-creature control (World::unseen_prompts):
//   - greedy chat generation scored by the world's exact scorer (rl/reports/evaluate.h), with the
//     reward model's mean score; exact match per task and on the creature attributes, the facts
//     stated only in the pretraining corpus (`exact_match_pretrained_facts`);
//   - the likelihood probe (rl/reports/probe.h), no chat format: `probe_accuracy` overall, per
//     task and over the creature attributes; on the unseen creatures `accuracy_unseen_facts`,
//     which should sit at `chance_unseen_facts` for every model;
//   - for the models trained from the SFT model, the KL to it on their own samples
//     (rl/reports/kl.h, k3 per token).
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/world/world.h"
#include "rl/heads/reward.h"
#include "rl/reports/evaluate.h"
#include "rl/reports/kl.h"
#include "rl/reports/probe.h"
#include "tiller.h"

namespace pipeline {

struct ModelRow {
  std::string name;
  tiller::rl::EvaluationReport held_out;            // generation on the held-out prompts
  tiller::rl::EvaluationReport unseen;              // generation on the unseen-creature prompts
  tiller::rl::ProbeReport probe;                    // likelihood probe, held-out prompts
  tiller::rl::ProbeReport unseen_probe;             // likelihood probe, unseen creatures
  std::optional<tiller::rl::KlEstimate> kl_to_sft;  // models trained from the SFT model
  double train_seconds = 0.0;  // the stage that produced the model (as recorded when it ran)
  double eval_seconds = 0.0;   // everything above
};

struct EvaluationInputs {
  const tiller::Tokenizer& tokenizer;
  const tiller::World& world;
  tiller::rl::RewardModel& reward_model;
  tiller::Device device;
  int64_t limit = 0;  // held-out and unseen prompts measured (0: all)
};

// Loads the model in `dir` and measures it; `sft_reference` set: also its KL to that model.
// Per-prompt generations go to `jsonl_prefix` + ".jsonl" and + "_unseen.jsonl", the held-out
// probe's per-prompt choices to `jsonl_prefix` + "_probe.jsonl".
ModelRow evaluate_model(const std::string& name, const std::filesystem::path& dir,
                        const EvaluationInputs& inputs, const std::filesystem::path& jsonl_prefix,
                        tiller::Transformer* sft_reference);

// The model's own mistakes as preference pairs, one per held-out prompt it answered wrong: the
// canonical answer (+ <|end|>) chosen, its raw completion rejected; kWrongFact when the answer
// kept the task's sentence (format_ok), else kMalformed (another task's sentence, or no sentence).
// The reward model's accuracy on these is what PPO needs: its preferences on the world's pairs,
// whose wrong values are drawn at random, say little about the answers the policy believes.
std::vector<tiller::world::PreferencePair> mistake_pairs(const tiller::rl::EvaluationReport& report,
                                                         const tiller::World& world);

// How much any stage after SFT could add to exact match, from what the base knows: the held-out
// prompts the SFT model answers wrong although the base's likelihood probe ranks the right value
// first, and the ones it answers right although the probe does not. `ceiling` is SFT's exact
// match plus the first kind: preference tuning sharpens what the SFT model already believes and
// adds no facts (its training prompts ask only training facts, which SFT already taught), so a
// gain above the ceiling would need knowledge neither model shows.
struct KnowledgeHeadroom {
  int64_t questions = 0;        // held-out prompts both measured
  int64_t sft_correct = 0;      // SFT exact matches
  int64_t base_knows_sft_misses = 0;
  int64_t sft_knows_base_misses = 0;
  double ceiling() const;  // (sft_correct + base_knows_sft_misses) / questions; NaN without any
};
// Pairs the rows' held-out generations and probes by eval id; a prompt either row lacks is left
// out.
KnowledgeHeadroom knowledge_headroom(const ModelRow& base, const ModelRow& sft);

// report.json's models.<name> object.
nlohmann::json model_json(const ModelRow& row, const tiller::World& world);

// report.md's tables: the main metrics per model, then the knowledge table (probe and
// pretrained-fact exact match per task, unseen control).
std::string markdown_tables(const std::vector<ModelRow>& rows, const tiller::World& world);

// Formatting shared by the report writers: count / total (NaN when total is 0), a number as JSON
// (null for NaN: JSON has none), and a rate as "12.3%" ("—" for NaN).
double rate(int64_t count, int64_t total);
nlohmann::json json_number(double value);
std::string percent(double value);

// The seed's claims, each next to the number in `report` (report.json as written) that supports
// or contradicts it and issue 11's target for it: an array of {claim, measure, value, unit
// (rate, points or seconds), target, met}. A claim whose numbers are absent (no ablation, no PPO
// row) is left out. "At chance" for the unseen creatures means every model's probe within two
// binomial standard errors of chance.
nlohmann::json claims_json(const nlohmann::json& report);

// Seconds end to end from report.json's "seconds" (stage name -> seconds, as each stage ran):
// the pipeline's part (ablation false: every stage and the report's evaluation) or the
// ablation's (names starting "ablation/"). The stages of a group under "concurrent" ran side by
// side and count once, as the group's "wall".
double end_to_end_seconds(const nlohmann::json& seconds, bool ablation);
std::string claims_markdown(const nlohmann::json& claims);

}  // namespace pipeline
