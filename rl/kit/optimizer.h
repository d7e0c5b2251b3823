// The optimizer half of the training-loop kit: one config embedded in every trainer's config, one
// factory, and one update step, so no trainer writes (or drifts from) its own copy.
//
// apply_update is the whole update sequence after the backward pass:
//   norm = global grad norm -> non-finite loss or norm: stop (tiller::Error naming the trainer and
//   step) or skip (gradients dropped, the step still counts so data order and schedule stay put)
//   -> lr = schedule.lr(step) -> clip factor min(1, clip_norm / norm) folded into the AdamW step
//   (no extra pass over the gradients) -> zero_grad (frees the gradients before the next forward).
// Data parallel (an optimizer made with a communicator of more than one rank): the gradients are
// first averaged over the ranks (AdamW::reduce_gradients: bucketed all-reduce, or ZeRO-1's
// reduce-scatter), the norm is that of the average and the loss is averaged too; both are then
// identical on every rank, so every rank takes the same stop / skip decision.
//
// resolve_schedule fills a schedule's total_steps from the run's length and clamps a warmup that
// would not fit (a 50-row dataset must not die on "total_steps must exceed warmup_steps"): the
// warmup becomes a tenth of the run, with a one-line notice.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/dist/communicator.h"
#include "core/tensor/parameter.h"
#include "optim/adamw.h"
#include "optim/schedule.h"

namespace tiller::rl {

enum class NonFinitePolicy { stop, skip };
NonFinitePolicy parse_nonfinite_policy(const std::string& name);  // "stop" or "skip"
const char* to_string(NonFinitePolicy policy);

struct OptimizerConfig {
  // total_steps 0: the run's length (resolve_schedule).
  optim::LrSchedule schedule{.kind = optim::LrSchedule::Kind::cosine,
                             .peak_lr = 1e-4f,
                             .min_lr = 1e-5f,
                             .warmup_steps = 10};
  float weight_decay = 0.f;  // on matrices only (NamedParameter::decay)
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float clip_norm = 1.f;  // global-norm clipping; 0 disables it
  NonFinitePolicy on_nonfinite = NonFinitePolicy::stop;
  int zero_stage = 0;  // data parallel: 1 shards AdamW's moments and masters (ZeRO-1)

  void validate(const char* who) const;  // throws "<who>: ..." naming the first bad field
};

// AdamW over `params` with two groups from their decay flags; `seed` drives the stochastic
// rounding of bf16 parameters (the trainer's seed, so runs with different seeds differ).
// `communicator` (null: one process) makes it data parallel (optim/adamw.h).
std::unique_ptr<optim::AdamW> make_optimizer(
    const ParameterList& params, const OptimizerConfig& config, uint64_t seed,
    std::shared_ptr<dist::Communicator> communicator = nullptr);

// `schedule` with total_steps = run_steps when it was 0, and warmup clamped to fit the run.
optim::LrSchedule resolve_schedule(optim::LrSchedule schedule, int64_t run_steps, const char* who,
                                   bool quiet = false);

struct UpdateResult {
  float loss = 0.f;  // the loss given, averaged over the ranks when data parallel
  float lr = 0.f;
  float grad_norm = 0.f;  // before clipping
  bool skipped = false;   // non-finite loss or norm under NonFinitePolicy::skip
};

// The update for 0-based step `step` after the backward pass (see the header comment).
// `loss` is only checked for finiteness.
UpdateResult apply_update(optim::AdamW& optimizer, const ParameterList& params,
                          const OptimizerConfig& config, const optim::LrSchedule& schedule,
                          int64_t step, float loss, const char* who);

}  // namespace tiller::rl
