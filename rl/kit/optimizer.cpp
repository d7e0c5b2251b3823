// The optimizer config, factory and the one update step (see rl/kit/optimizer.h).
#include "rl/kit/optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "kernels/error.h"
#include "optim/clip.h"

namespace tiller::rl {

NonFinitePolicy parse_nonfinite_policy(const std::string& name) {
  if (name == "stop") return NonFinitePolicy::stop;
  if (name == "skip") return NonFinitePolicy::skip;
  fail("on_nonfinite must be 'stop' or 'skip', got '{}'", name);
}

const char* to_string(NonFinitePolicy policy) {
  return policy == NonFinitePolicy::stop ? "stop" : "skip";
}

void OptimizerConfig::validate(const char* who) const {
  TILLER_CHECK(schedule.peak_lr > 0.f && std::isfinite(schedule.peak_lr),
               "{}: the learning rate must be positive, got {}", who, schedule.peak_lr);
  TILLER_CHECK(schedule.min_lr >= 0.f, "{}: min_lr must be >= 0, got {}", who, schedule.min_lr);
  TILLER_CHECK(schedule.warmup_steps >= 0, "{}: warmup_steps must be >= 0, got {}", who,
               schedule.warmup_steps);
  TILLER_CHECK(weight_decay >= 0.f, "{}: weight_decay must be >= 0, got {}", who, weight_decay);
  TILLER_CHECK(beta1 >= 0.f && beta1 < 1.f && beta2 >= 0.f && beta2 < 1.f,
               "{}: betas must be in [0, 1), got {} and {}", who, beta1, beta2);
  TILLER_CHECK(eps > 0.f, "{}: eps must be > 0, got {}", who, eps);
  TILLER_CHECK(clip_norm >= 0.f, "{}: clip_norm must be >= 0 (0 disables clipping), got {}", who,
               clip_norm);
  TILLER_CHECK(zero_stage == 0 || zero_stage == 1, "{}: zero_stage must be 0 or 1, got {}", who,
               zero_stage);
}

std::unique_ptr<optim::AdamW> make_optimizer(const ParameterList& params,
                                             const OptimizerConfig& config, uint64_t seed,
                                             std::shared_ptr<dist::Communicator> communicator) {
  return std::make_unique<optim::AdamW>(
      optim::default_param_groups(params, config.weight_decay),
      optim::AdamWOptions{.lr = config.schedule.peak_lr,
                          .beta1 = config.beta1,
                          .beta2 = config.beta2,
                          .eps = config.eps,
                          .weight_decay = config.weight_decay,
                          .seed = seed},
      optim::DataParallelOptions{.communicator = std::move(communicator),
                                 .zero_stage = config.zero_stage});
}

optim::LrSchedule resolve_schedule(optim::LrSchedule schedule, int64_t run_steps, const char* who,
                                   bool quiet) {
  if (schedule.total_steps == 0) schedule.total_steps = run_steps;
  const bool decays = schedule.kind != optim::LrSchedule::Kind::constant;
  if (decays && schedule.warmup_steps > 0 && schedule.warmup_steps >= schedule.total_steps) {
    const int64_t clamped = schedule.total_steps / 10;
    if (!quiet)
      std::printf("[%s] note: warmup of %lld steps does not fit a run of %lld steps; using %lld\n",
                  who, static_cast<long long>(schedule.warmup_steps),
                  static_cast<long long>(schedule.total_steps), static_cast<long long>(clamped));
    schedule.warmup_steps = clamped;
  }
  if (schedule.kind == optim::LrSchedule::Kind::wsd)
    schedule.decay_steps = std::min(schedule.decay_steps,
                                    std::max<int64_t>(schedule.total_steps - schedule.warmup_steps, 0));
  if (schedule.total_steps > 0 || !decays) schedule.validate();
  return schedule;
}

UpdateResult apply_update(optim::AdamW& optimizer, const ParameterList& params,
                          const OptimizerConfig& config, const optim::LrSchedule& schedule,
                          int64_t step, float loss, const char* who) {
  UpdateResult result;
  result.lr = schedule.lr(step);
  const std::optional<float> sharded_norm = optimizer.reduce_gradients();
  result.grad_norm = sharded_norm ? *sharded_norm : optim::global_grad_norm(params);
  if (optimizer.distributed())
    loss = static_cast<float>(
        optimizer.communicator()->all_reduce_value(loss, dist::ReduceOp::average));
  result.loss = loss;
  if (!std::isfinite(loss) || !std::isfinite(result.grad_norm)) {
    TILLER_CHECK(config.on_nonfinite == NonFinitePolicy::skip,
                 "{}: non-finite {} at step {} (loss {}, grad norm {}); lower the learning rate, "
                 "check the data, or set on_nonfinite = skip to skip such updates",
                 who, std::isfinite(loss) ? "gradient norm" : "loss", step + 1, loss,
                 result.grad_norm);
    optimizer.zero_grad();
    result.skipped = true;
    return result;
  }
  optimizer.set_lr(result.lr);
  optimizer.step(config.clip_norm > 0.f ? optim::clip_factor(result.grad_norm, config.clip_norm)
                                        : 1.f);
  optimizer.zero_grad();
  return result;
}

}  // namespace tiller::rl
