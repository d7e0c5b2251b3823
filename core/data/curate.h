// Curator: runs a configured, ordered list of curation stages over a row store and says, for
// every dropped row, which stage dropped it and why (datatrove's pipeline of named stages).
//
// Stages (names as in CurateConfig::stages; cheap ones first by default):
//   exact_dedup     same normalised text (normalise.h) as an earlier kept row -> "exact_duplicate"
//   near_dedup      MinHash/LSH + exact Jaccard (minhash.h) -> "near_duplicate"
//   quality         Gopher rules for text rows, chat rules for the others (quality_rules.h)
//   decontaminate   overlap with the eval rows (decontaminate.h) -> "exact_question" /
//                   "ngram_overlap"
//   scores          model scores from a ScoreProvider (rl/data/curate_scores.h: response
//                   perplexity, IFD, reward); filters "perplexity_above_max", "ifd_above_max",
//                   "reward_below_min", "below_top_fraction" (the cut over all rows, or within
//                   k-means clusters of the provider's embeddings: keep_top_within). Skipped (and
//                   said so) without one.
//   select          diversity selection to `budget` (diversity.h: DEITA, k-center or CaR's
//                   k-means clusters dealt round robin) -> "not_selected", on the
//                   provider's embeddings (else hashed bag of words) centred on the pool's mean
//                   and L2-normalised: mean-pooled hidden states of a small model are
//                   anisotropic (raw cosines all near 1), which would leave DEITA's θ = 0.9 a
//                   handful of rows
// Duplicates keep the best-ranked row of their group when scores exist (a scores stage ran
// earlier), else the first in input order; `duplicate_of` names the kept row's index.
// Rank: the reward when present, else the lowest response perplexity (config rank_by).
//
// Invariants: a row is dropped at most once (by the first stage that rejects it); later stages
// see only surviving rows; the same config, input and seed give the same output.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/data/decontaminate.h"
#include "core/data/diversity.h"
#include "core/data/minhash.h"
#include "core/data/quality_rules.h"
#include "core/data/rows.h"

namespace tiller::data {

// Per-row model scores; NaN where not computed (text rows have no IFD).
struct RowScores {
  std::vector<double> perplexity;  // exp(mean NLL of the response tokens given the prompt)
  std::vector<double> ifd;         // loss(response | prompt) / loss(response alone)
  std::vector<double> reward;      // the reward model's score of (prompt, response)
};

// Which optional scores the stages will read (perplexity is always computed): a provider may
// skip the others (IFD costs a second forward pass per row).
struct ScoreRequest {
  bool ifd = true, reward = true;
};

// Model-based signals, implemented above core (rl/data/curate_scores.h) and passed in.
class ScoreProvider {
 public:
  virtual ~ScoreProvider() = default;
  // Fills the requested scores for rows[indices[k]] (the vectors are pre-sized to rows.size(),
  // NaN); what was not requested may stay NaN.
  virtual void score(const std::vector<Row>& rows, const std::vector<int64_t>& indices,
                     RowScores& scores, const ScoreRequest& request) = 0;
  // One L2-normalised embedding per indices[k], in that order.
  virtual Embeddings embed(const std::vector<Row>& rows, const std::vector<int64_t>& indices) = 0;
  virtual bool has_reward() const = 0;
};

struct ScoreFilterConfig {
  double max_perplexity = 0;       // 0: off
  double max_ifd = 1.0;            // Cherry/Superfiltering: IFD > 1 = the prompt does not help
  double min_reward = -1e30;       // off unless set
  double keep_top_fraction = 1.0;  // of the surviving rows by rank; 1 = keep all
  std::string rank_by = "auto";    // auto (reward, else perplexity), reward, perplexity, ifd
  // Where keep_top_fraction cuts: "all" ranks the rows against each other; "clusters" ranks them
  // within k-means clusters of the provider's embeddings (k = `clusters`, 0: the select stage's
  // round(sqrt(rows / 2)); select.seed), keeping the top fraction of every cluster. A score is
  // comparable only between like texts — CCNet (Wenzek et al. 2020) cuts perplexity per
  // language for that reason: one global cut drops whole kinds of instruction whose answers
  // are less predictable as text (names of towns, long spellings) however right they are.
  std::string keep_top_within = "all";
  int64_t clusters = 0;
};

struct SelectConfig {
  int64_t budget = 0;              // 0: no selection
  std::string method = "deita";    // "deita", "k_center" or "car"
  double threshold = 0.9;          // DEITA's cosine θ
  int64_t clusters = 0;            // CaR's k; 0: round(sqrt(rows / 2)), the usual rule of thumb
  uint64_t seed = 1;               // CaR's k-means++ seeding
  int64_t bag_of_words_dim = 256;  // embedding size of the model-free stand-in
};

struct CurateConfig {
  std::vector<std::string> stages = {"exact_dedup",   "near_dedup", "quality",
                                     "decontaminate", "scores",     "select"};
  NearDedupConfig near_dedup;
  GopherConfig gopher;
  ChatRulesConfig chat_rules;
  DecontaminationConfig decontamination;
  ScoreFilterConfig scores;
  SelectConfig select;

  // Reads a JSON object whose keys override the defaults, e.g.
  // {"stages": [...], "near_dedup": {"bands": 20}, "select": {"method": "k_center"}}; an unknown
  // key or stage is an error naming it.
  static CurateConfig from_json_text(const std::string& text, const std::string& source);
  std::string to_json() const;  // every value, for the report
};

struct Rejection {
  std::string stage;
  std::string reason;
  std::string detail;
  int64_t duplicate_of = -1;  // near/exact duplicates: the kept row's index
  double similarity = 0;      // near duplicates: the confirmed Jaccard
  int64_t eval_index = -1;    // decontamination: the eval row matched
};

struct StageReport {
  std::string name;
  int64_t rows_in = 0, rows_out = 0;
  std::map<std::string, int64_t> removed_by_reason;
  double seconds = 0;
  std::vector<std::string> notes;  // e.g. "skipped: no score provider"
};

struct DiversityReport {
  std::string method;
  int64_t budget = 0, selected = 0;
  double mean_nn_distance_before = 0, mean_nn_distance_after = 0;  // cosine distance
  std::map<std::string, int64_t> tasks_before, tasks_after;        // rows carrying "task"
  std::string embeddings;  // "model" or "hashed bag of words"
  // car: rows and selected rows per k-means cluster (index = cluster id)
  std::vector<int64_t> cluster_sizes, cluster_selected;
};

struct CurateResult {
  std::vector<std::optional<Rejection>> rejections;  // per row; nullopt = kept
  std::vector<StageReport> stages;
  RowScores scores;
  std::optional<DiversityReport> diversity;
  int64_t rows_in = 0, rows_kept = 0;
  double seconds = 0;
};

class Curator {
 public:
  // `provider` may be null (scores skipped, select uses hashed bag-of-words embeddings).
  Curator(CurateConfig config, std::vector<Row> eval_rows = {}, ScoreProvider* provider = nullptr);
  // Throws tiller::Error when `rows` is empty. `log` (may be null) receives one line per stage.
  CurateResult run(const std::vector<Row>& rows, std::ostream* log = nullptr) const;
  const CurateConfig& config() const { return config_; }

 private:
  CurateConfig config_;
  std::vector<Row> eval_rows_;
  ScoreProvider* provider_;
};

// Writes curated.jsonl, rejected.jsonl (malformed lines too, reason "malformed"), report.json
// and report.md into `dir` (created).
void write_curation_outputs(const std::filesystem::path& dir, const RowStore& store,
                            const CurateResult& result, const CurateConfig& config);

}  // namespace tiller::data
