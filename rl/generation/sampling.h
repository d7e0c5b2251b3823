// Picking the next token from logits: greedy, temperature, top-k and top-p (nucleus) sampling.
//
// Each row draws one uniform number from the counter-based generator (kernels/random.h), so a
// seed fixes every choice regardless of batch composition order or thread count. The returned
// log-prob is log softmax(logits / temperature)[token] over the FULL vocabulary (before top-k/p
// truncation), which is what PPO recomputes from a forward pass at the same temperature; greedy
// decoding (temperature 0) reports the temperature-1 log-prob.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor/tensor.h"

namespace tiller::rl {

struct SamplingConfig {
  float temperature = 1.f;  // 0 = greedy
  int64_t top_k = 0;        // 0 = no limit
  float top_p = 1.f;        // 1 = no limit
};

struct SampledTokens {
  std::vector<int32_t> tokens;  // (B)
  std::vector<float> logprobs;  // (B)
};

// logits (B, V), any float dtype and device (copied to the host: decode-sized).
// `vocab_limit` > 0 ignores logits at index >= vocab_limit (the model's padded rows).
SampledTokens sample_next(const Tensor& logits, const SamplingConfig& config, Generator& gen,
                          int64_t vocab_limit = 0);

}  // namespace tiller::rl
