// Run directories: layout, metrics on resume, checkpoint names and retention (rl/kit/run_directory.h).
#include "rl/kit/run_directory.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <vector>

#include "core/io/atomic_file.h"
#include "kernels/error.h"

namespace tiller::rl {

namespace {

constexpr const char* kCheckpointPrefix = "step_";

std::vector<std::filesystem::path> periodic_checkpoints(const std::filesystem::path& root) {
  std::vector<std::filesystem::path> found;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(root / "checkpoints", error)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && name.rfind(kCheckpointPrefix, 0) == 0) found.push_back(entry.path());
  }
  std::sort(found.begin(), found.end());  // zero-padded step numbers sort as numbers
  return found;
}

}  // namespace

RunDirectory::RunDirectory(std::filesystem::path root, int64_t keep_checkpoints)
    : root_(std::move(root)), keep_checkpoints_(keep_checkpoints) {
  TILLER_CHECK(keep_checkpoints >= 0, "keep_checkpoints must be >= 0 (0 keeps all), got {}",
               keep_checkpoints);
}

std::unique_ptr<MetricsLog> RunDirectory::open_metrics(const std::string& tag, int64_t first_step,
                                                       const std::string& eval_key) {
  std::string path;
  if (enabled()) {
    std::filesystem::create_directories(root_);
    path = (root_ / "metrics.jsonl").string();
    if (first_step > 0) truncate_metrics_for_resume(path, first_step, eval_key);
  }
  return std::make_unique<MetricsLog>(tag, path, /*append=*/first_step > 0, first_step);
}

std::filesystem::path RunDirectory::checkpoint_path(int64_t step) const {
  if (!enabled()) return {};
  return root_ / "checkpoints" / fmt::format("{}{:06d}", kCheckpointPrefix, step);
}

std::filesystem::path RunDirectory::final_path(const std::string& name) const {
  if (!enabled()) return {};
  return root_ / name;
}

void RunDirectory::prune_checkpoints() const {
  if (!enabled() || keep_checkpoints_ == 0) return;
  std::vector<std::filesystem::path> found = periodic_checkpoints(root_);
  const auto keep = static_cast<size_t>(keep_checkpoints_);
  for (size_t i = 0; i + keep < found.size(); ++i) std::filesystem::remove_all(found[i]);
}

std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& output_dir,
                                                       const std::string& final_name) {
  std::vector<std::filesystem::path> candidates = periodic_checkpoints(output_dir);
  candidates.push_back(output_dir / final_name);
  std::optional<std::filesystem::path> best;
  int64_t best_step = -1;
  for (const auto& dir : candidates) {
    const auto state_path = dir / "trainer_state.json";
    if (!std::filesystem::exists(state_path)) continue;
    auto state = nlohmann::json::parse(read_file_bytes(state_path), nullptr, false);
    if (state.is_discarded() || !state.contains("step")) continue;
    const auto step = state["step"].get<int64_t>();
    if (step > best_step) best_step = step, best = dir;
  }
  return best;
}

}  // namespace tiller::rl
