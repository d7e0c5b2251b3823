// Learning-rate schedules (see schedule.h for the exact curves).
#include "optim/schedule.h"

#include <cmath>
#include <numbers>

#include "kernels/error.h"

namespace tiller::optim {

void LrSchedule::validate() const {
  TILLER_CHECK(warmup_steps >= 0, "LrSchedule: warmup_steps must be >= 0, got {}", warmup_steps);
  TILLER_CHECK(peak_lr >= 0.f && min_lr >= 0.f && min_lr <= peak_lr,
               "LrSchedule: need 0 <= min_lr <= peak_lr, got min_lr {} peak_lr {}", min_lr,
               peak_lr);
  if (kind == Kind::constant) return;
  TILLER_CHECK(total_steps > warmup_steps,
               "LrSchedule: total_steps ({}) must exceed warmup_steps ({})", total_steps,
               warmup_steps);
  if (kind == Kind::wsd)
    TILLER_CHECK(decay_steps > 0 && decay_steps <= total_steps - warmup_steps,
                 "LrSchedule: wsd decay_steps ({}) must be in [1, total_steps - warmup_steps = {}]",
                 decay_steps, total_steps - warmup_steps);
}

float LrSchedule::lr(int64_t step) const {
  validate();
  TILLER_CHECK(step >= 0, "LrSchedule: step must be >= 0, got {}", step);
  if (step < warmup_steps)
    return peak_lr * static_cast<float>(step + 1) / static_cast<float>(warmup_steps);
  if (kind == Kind::constant) return peak_lr;
  if (step >= total_steps) return min_lr;
  int64_t decay_start = kind == Kind::wsd ? total_steps - decay_steps : warmup_steps;
  if (step < decay_start) return peak_lr;
  double progress =
      static_cast<double>(step - decay_start) / static_cast<double>(total_steps - decay_start);
  double span = static_cast<double>(peak_lr) - min_lr;
  double lr = kind == Kind::cosine
                  ? min_lr + span * 0.5 * (1.0 + std::cos(std::numbers::pi * progress))
                  : peak_lr - span * progress;
  return static_cast<float>(lr);
}

LrSchedule::Kind parse_schedule_kind(const std::string& name) {
  if (name == "constant") return LrSchedule::Kind::constant;
  if (name == "linear") return LrSchedule::Kind::linear;
  if (name == "cosine") return LrSchedule::Kind::cosine;
  if (name == "wsd") return LrSchedule::Kind::wsd;
  fail("LrSchedule: unknown schedule '{}' (expected constant, linear, cosine or wsd)", name);
}

}  // namespace tiller::optim
