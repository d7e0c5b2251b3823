// Learning-rate schedules: a pure function from the 0-based step index to the learning rate.
//
// All schedules share a linear warmup that reaches peak_lr at the END of step warmup_steps - 1
// (lr = peak * (step + 1) / warmup_steps), so the very first update already moves the weights.
// After warmup:
//   constant  peak_lr forever;
//   linear    peak_lr falling linearly to min_lr at step total_steps;
//   cosine    min_lr + (peak_lr - min_lr) (1 + cos(pi p)) / 2, p from 0 to 1 over the same span;
//   wsd       warmup-stable-decay: peak_lr until total_steps - decay_steps, then linear to min_lr
//             at total_steps (the schedule that lets a run be extended before the decay).
// Steps at or past total_steps stay at min_lr (constant: at peak_lr).
#pragma once

#include <cstdint>
#include <string>

namespace tiller::optim {

struct LrSchedule {
  enum class Kind { constant, linear, cosine, wsd };
  Kind kind = Kind::cosine;
  float peak_lr = 1e-3f;
  float min_lr = 0.f;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;  // linear, cosine, wsd
  int64_t decay_steps = 0;  // wsd only: length of the final decay

  float lr(int64_t step) const;
  void validate() const;  // throws on inconsistent step counts
};

// "constant", "linear", "cosine", "wsd".
LrSchedule::Kind parse_schedule_kind(const std::string& name);

}  // namespace tiller::optim
