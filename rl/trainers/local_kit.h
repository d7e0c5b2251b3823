// TEMPORARY (prefopt branch): the few training-loop pieces the DPO and GRPO trainers need, until
// the shared rl/kit/ of issue 14 lands on main. Each function names the kit piece that replaces
// it; delete this file when the trainers switch over.
#pragma once

#include <cstdint>
#include <filesystem>

#include "core/parameter.h"
#include "optim/adamw.h"

namespace tiller::rl {

// kit: warmup clamped to the run. Returns min(warmup, total_steps - 1) (>= 0), printing a
// one-line notice when it had to clamp.
int64_t clamp_warmup(const char* who, int64_t warmup_steps, int64_t total_steps);

// kit: apply_update. Global grad norm, a non-finite loss or norm is a tiller::Error naming the
// step, lr set, AdamW step with the clip factor folded in (clip_norm 0: no clipping), gradients
// zeroed. Returns the norm before clipping.
float apply_update(const char* who, optim::AdamW& optimizer, const ParameterList& params,
                   int64_t step, float loss, float lr, float clip_norm);

// kit: run directory keep_checkpoints. Removes all but the newest `keep` step_* / iter_*
// folders under `dir` (keep 0: remove none).
void prune_checkpoints(const std::filesystem::path& dir, int64_t keep);

}  // namespace tiller::rl
