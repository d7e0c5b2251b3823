// Autoregressive generation with a KV cache: the sampler behind evaluation, reward scoring and
// PPO rollouts.
//
// A batch of prompts of different lengths is LEFT-padded to a common length: every row's last
// prompt token then sits in the same column, so one decode step serves the whole batch. Padding
// is invisible to the model: a key-padding mask hides pad keys, and each row's positions count
// only its real tokens (a row with 3 pad tokens starts at position 0 in column 3), so a batched
// row produces the same tokens as the same prompt generated alone.
// With use_cache = false every step re-runs the full sequence (the reference the cache is tested
// against, and the baseline of bench/).
//
// Per-token log-probs are those of the sampled token under the sampling temperature over the full
// vocabulary (rl/sampling.h) — what PPO recomputes with a forward pass of prompt + response.
#pragma once

#include <cstdint>
#include <vector>

#include "core/models/model.h"
#include "rl/generation/sampling.h"

namespace tiller::rl {

struct GenerationConfig {
  int64_t max_new_tokens = 64;
  SamplingConfig sampling = {};      // temperature 0 = greedy
  std::vector<int32_t> stop_tokens = {};  // a row ends right after emitting one of these
  uint64_t seed = 0;
  bool use_cache = true;
};

struct GenerationResult {
  // Per prompt: generated tokens only (the stop token included when one was emitted).
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::vector<float>> logprobs;  // one per generated token
  std::vector<bool> stopped;                 // true: a stop token ended the row; false: length
  int64_t generated_tokens = 0;              // total over the batch, for tokens/s
};

// Runs under NoGradGuard. Prompts must be non-empty and prompt + max_new_tokens must fit in the
// model's max_seq_len (tiller::Error otherwise, naming the prompt index and lengths).
GenerationResult generate(Transformer& model, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerationConfig& config);

}  // namespace tiller::rl
