// JSONL metrics and progress lines (see rl/metrics.h).
#include "rl/reports/metrics.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/io/atomic_file.h"
#include "kernels/error.h"

namespace tiller::rl {

double Metrics::get(const std::string& name) const {
  for (const auto& [key, value] : values_)
    if (key == name) return value;
  fail("Metrics: no value named '{}'", name);
}

MetricsLog::MetricsLog(std::string tag, const std::string& path, bool append, int64_t first_step)
    : tag_(std::move(tag)), start_(std::chrono::steady_clock::now()), first_step_(first_step) {
  if (path.empty()) return;
  file_ = std::fopen(path.c_str(), append ? "a" : "w");
  TILLER_CHECK(file_ != nullptr, "metrics: cannot open {} for writing: {}", path,
               std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

namespace {
std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";  // JSON has no NaN/Inf
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{:.6g}", v);
}
}  // namespace

void MetricsLog::write(int64_t step, const Metrics& metrics) {
  if (!file_) return;
  std::string line = fmt::format("{{\"stage\": \"{}\", \"step\": {}", tag_, step);
  for (const auto& [name, value] : metrics.values())
    line += fmt::format(", \"{}\": {}", name, json_number(value));
  line += "}\n";
  std::fputs(line.c_str(), file_);
  std::fflush(file_);
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

void MetricsLog::print(int64_t step, int64_t total_steps, const Metrics& metrics,
                       const std::vector<std::string>& names) const {
  std::string line = fmt::format("[{}] step {}/{}", tag_, step, total_steps);
  for (const auto& [name, value] : metrics.values()) {
    if (!names.empty() && std::find(names.begin(), names.end(), name) == names.end()) continue;
    line += fmt::format("  {} {:.4g}", name, value);
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  // The rate comes from the steps this process ran, so a resumed run's ETA is not diluted by
  // the steps before the resume.
  const int64_t done = step - first_step_;
  if (done > 0 && total_steps > step)
    line += fmt::format("  eta {}", format_duration(elapsed / static_cast<double>(done) *
                                                    static_cast<double>(total_steps - step)));
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

void truncate_metrics_for_resume(const std::string& path, int64_t step,
                                 const std::string& eval_key) {
  if (!std::filesystem::exists(path)) return;
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    auto record = nlohmann::json::parse(line, nullptr, false);
    if (record.is_discarded() || !record.contains("step")) continue;  // a torn last line
    const auto record_step = record["step"].get<int64_t>();
    if (record_step < step || (record_step == step && !record.contains(eval_key)))
      kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

}  // namespace tiller::rl
