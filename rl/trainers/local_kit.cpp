// TEMPORARY training-loop pieces (see rl/trainers/local_kit.h).
#include "rl/trainers/local_kit.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "optim/clip.h"

namespace tiller::rl {

int64_t clamp_warmup(const char* who, int64_t warmup_steps, int64_t total_steps) {
  const int64_t limit = std::max<int64_t>(total_steps - 1, 0);
  if (warmup_steps <= limit) return warmup_steps;
  fmt::print("[{}] warmup {} steps clamped to {} (the run has {} steps)\n", who, warmup_steps,
             limit, total_steps);
  return limit;
}

float apply_update(const char* who, optim::AdamW& optimizer, const ParameterList& params,
                   int64_t step, float loss, float lr, float clip_norm) {
  const float norm = optim::global_grad_norm(params);
  TILLER_CHECK(std::isfinite(loss) && std::isfinite(norm),
               "{}: non-finite {} at step {} (loss {}, grad norm {})", who,
               std::isfinite(loss) ? "gradient norm" : "loss", step, loss, norm);
  optimizer.set_lr(lr);
  optimizer.step(clip_norm > 0.f ? optim::clip_factor(norm, clip_norm) : 1.f);
  optimizer.zero_grad();
  return norm;
}

void prune_checkpoints(const std::filesystem::path& dir, int64_t keep) {
  if (keep <= 0 || !std::filesystem::is_directory(dir)) return;
  std::vector<std::filesystem::path> folders;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && (name.starts_with("step_") || name.starts_with("iter_")))
      folders.push_back(entry.path());
  }
  std::sort(folders.begin(), folders.end());  // zero-padded numbers: name order is step order
  for (size_t i = 0; i + static_cast<size_t>(keep) < folders.size(); ++i)
    std::filesystem::remove_all(folders[i]);
}

}  // namespace tiller::rl
