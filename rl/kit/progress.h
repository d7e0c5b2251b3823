// Loop-pacing helpers of the training kit: cadence checks and a throughput window.
#pragma once

#include <chrono>
#include <cstdint>

namespace tiller::rl {

// True on every `period`-th step (1-based step numbers); never when period is 0.
inline bool every(int64_t step, int64_t period) {
  return period > 0 && step % period == 0;
}

// Tokens (or rows, or samples) per second since the last reset, so a progress line shows the
// recent rate rather than one step's noise or the whole run's average.
class ThroughputWindow {
 public:
  ThroughputWindow() : start_(Clock::now()) {}
  void add(double amount) { amount_ += amount; }
  double rate() const {
    const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    return seconds > 0 ? amount_ / seconds : 0.0;
  }
  void reset() {
    start_ = Clock::now();
    amount_ = 0;
  }

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point start_;
  double amount_ = 0;
};

// Seconds since `start`.
inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace tiller::rl
