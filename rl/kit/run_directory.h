// The run directory of a trainer: where its metrics, checkpoints and final model go, shared by
// every trainer so they all lay out, resume and prune the same way.
//
//   <out>/metrics.jsonl              JSON lines (rl/reports/metrics.h); on resume the records
//                                    after the resumed step are dropped first (no duplicate rows)
//   <out>/checkpoints/step_<NNNNNN>/ periodic checkpoints; the oldest are pruned to keep_checkpoints
//   <out>/<final_name>/              the final model ("model", "policy"): never pruned
//
// An empty output path is a run that writes nothing: every method is then a no-op and paths are
// empty, so trainers need no `if (out.empty())` of their own.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "rl/reports/metrics.h"

namespace tiller::rl {

class RunDirectory {
 public:
  // keep_checkpoints: how many periodic checkpoints to keep (0 keeps all).
  RunDirectory(std::filesystem::path root, int64_t keep_checkpoints);

  bool enabled() const { return !root_.empty(); }
  const std::filesystem::path& root() const { return root_; }

  // Creates the folder and opens metrics.jsonl for a run starting at `first_step` (0: a fresh
  // run, which truncates an old file; > 0: a resumed run, whose file keeps the records up to
  // first_step and loses the ones after it, and the eval record carrying `eval_key` at
  // first_step, which the resumed run writes again).
  std::unique_ptr<MetricsLog> open_metrics(const std::string& tag, int64_t first_step,
                                           const std::string& eval_key);

  // <out>/checkpoints/step_<NNNNNN>; empty when disabled.
  std::filesystem::path checkpoint_path(int64_t step) const;
  // <out>/<name>; empty when disabled.
  std::filesystem::path final_path(const std::string& name) const;
  // Deletes the oldest periodic checkpoints beyond keep_checkpoints. Call after each save.
  void prune_checkpoints() const;

 private:
  std::filesystem::path root_;
  int64_t keep_checkpoints_;
};

// The resumable checkpoint with the highest "step" in trainer_state.json among
// <out>/checkpoints/step_* and <out>/<final_name>; nullopt when there is none.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& output_dir,
                                                       const std::string& final_name = "model");

}  // namespace tiller::rl
