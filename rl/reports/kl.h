// KL of a policy to a reference model, measured on the policy's own sampled responses: the
// pipeline report's `kl_to_sft` column for the PPO, DPO and GRPO models (reference = the SFT
// model they all started from).
//
// Estimators (Schulman's naming). For a response token y_t sampled from the policy π, with
// r = log π(y_t | x, y<t) − log π_ref(y_t | x, y<t):
//   k1 = r                    unbiased for KL(π‖π_ref) per token, can be negative per sample;
//   k3 = exp(−r) − 1 + r      unbiased as well, never negative, lower variance (TRL's GRPO kl).
// Both are reported as means over every response token of every prompt (token-weighted), plus
// k1 summed per response and averaged over responses — the quantity PPO's `objective/kl` logs.
// The report's headline `kl_to_sft` is the per-token k3 mean.
//
// Invariants: the two models must share the vocabulary (same tokenizer); log-probs are at
// temperature 1 over the full vocabulary, the distribution the responses were sampled from;
// nothing here changes either model's weights (runs under NoGradGuard).
#pragma once

#include <cstdint>
#include <vector>

#include "core/models/model.h"
#include "core/text/tokenizer.h"
#include "core/world/world.h"

namespace tiller::rl {

struct KlEstimate {
  double k1 = 0.0;           // mean over response tokens of log π − log π_ref
  double k3 = 0.0;           // mean over response tokens of exp(−r) − 1 + r
  double k1_sequence = 0.0;  // mean over responses of Σ_t r (PPO's objective/kl)
  int64_t tokens = 0;        // response tokens measured
  int64_t responses = 0;
};

// The estimators on given responses: completions[i] continues prompts[i] (generated tokens only,
// a stop token included when one was emitted). Prompts must be non-empty; empty completions count
// as responses with no tokens. Rows are scored `batch_size` at a time.
KlEstimate sequence_kl(Transformer& policy, Transformer& reference,
                       const std::vector<std::vector<int32_t>>& prompts,
                       const std::vector<std::vector<int32_t>>& completions,
                       int64_t batch_size = 16);

struct KlSamplingConfig {
  int64_t max_new_tokens = 48;  // capped per batch by the policy's max_seq_len
  int64_t batch_size = 16;
  int64_t limit = 0;  // only the first `limit` items; 0 = all
  uint64_t seed = 0;
};

// Samples one response per held-out prompt from the policy (KV-cache generator, temperature 1, no
// top-k/top-p, stopping at <|end|>), then returns sequence_kl on those responses.
KlEstimate kl_on_own_samples(Transformer& policy, Transformer& reference,
                             const Tokenizer& tokenizer, const std::vector<world::EvalItem>& items,
                             const KlSamplingConfig& config = {});

}  // namespace tiller::rl
