// Progress lines and JSONL metrics, shared by every trainer.
//
// MetricsLog appends one JSON object per line to a file (flushed per record, so a crash loses at
// most the line being written) and, when asked, prints a compact progress line:
//   [sft] step 120/500  loss 1.234  lr 3.0e-04  tok/s 5120  eta 1m12s
// Values are recorded in insertion order; integers print without decimals.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace tiller::rl {

// One record: ordered (name, value) pairs. Names follow the practitioners' conventions
// ("loss", "objective/kl", "policy/clipfrac", ...).
class Metrics {
 public:
  Metrics& add(const std::string& name, double value) {
    values_.emplace_back(name, value);
    return *this;
  }
  const std::vector<std::pair<std::string, double>>& values() const { return values_; }
  double get(const std::string& name) const;  // throws when absent

 private:
  std::vector<std::pair<std::string, double>> values_;
};

class MetricsLog {
 public:
  // An empty path logs nothing to disk. `append` keeps earlier records (resume); `first_step` is
  // the step the run (re)started from, for the ETA.
  MetricsLog(std::string tag, const std::string& path, bool append = false, int64_t first_step = 0);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Writes {"stage": tag, "step": step, ...metrics} as one JSON line.
  void write(int64_t step, const Metrics& metrics);
  // Prints "[tag] step s/total  name value ...  eta" for the listed names (all when empty).
  void print(int64_t step, int64_t total_steps, const Metrics& metrics,
             const std::vector<std::string>& names = {}) const;

 private:
  std::string tag_;
  std::FILE* file_ = nullptr;
  std::chrono::steady_clock::time_point start_;
  int64_t first_step_ = 0;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "42s"

// Prepares a metrics file for a run resumed at `step`: keeps the records before `step` and the
// train record of `step` itself, drops the records after it and the evaluation record at `step`
// (one carrying `eval_key`; the resumed run evaluates there again) and a torn last line, so the
// file never holds two histories for one step. Rewritten atomically; a missing file is fine.
void truncate_metrics_for_resume(const std::string& path, int64_t step,
                                 const std::string& eval_key);

}  // namespace tiller::rl
