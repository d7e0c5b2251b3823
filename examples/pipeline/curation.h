// The pipeline's curation stage: the world's noisy SFT pool (World::noisy_sft_pool, ~10,000 chats)
// curated down to the SFT budget with only the signals a real user has — exact and near dedup, the
// chat rules (with the opt-in sentence rules of core/data/quality_rules.h on), decontamination
// against the eval prompts, the pretrained base's answer perplexity read as plain text (the less
// plausible half of each cluster of instructions dropped) and its embeddings
// (rl/data/curate_scores.h), and CaR selection (k-means clusters, each dealt its best
// rows in turn; core/data/diversity.h). The world's noise labels
// (sft_pool_labels.jsonl) are read only afterwards, by curation_json, to say in the report what
// each kind of noise became; no stage ever sees them.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>

#include "core/data/curate.h"
#include "tiller.h"

namespace pipeline {

struct CurationInputs {
  std::filesystem::path pool;        // sft_pool.jsonl
  std::filesystem::path eval;        // eval.jsonl: decontamination reference
  std::filesystem::path base_model;  // the pretrained base: scores and embeddings
  std::filesystem::path out_dir;     // curated.jsonl, rejected.jsonl, report.json, report.md
  int64_t budget = 1000;
  tiller::Device device = tiller::Device::cpu();
};

// The stages and thresholds the pipeline curates with (every other value is curate's default).
tiller::data::CurateConfig pipeline_curate_config(int64_t budget);

// Runs the curation and writes its outputs (core/data/curate.h's write_curation_outputs).
void curate_pool(const CurationInputs& inputs);

// report.json's `curation`: rows in, kept, per stage rows in/out and removed per reason, from
// out_dir/report.json; then, from the labels (report only), the pool's and the kept rows' counts
// per noise kind and per task.
nlohmann::json curation_json(const std::filesystem::path& out_dir,
                             const std::filesystem::path& labels);
std::string curation_markdown(const nlohmann::json& curation);

}  // namespace pipeline
