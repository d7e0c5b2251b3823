// Batched autoregressive generation (see rl/generate.h).
//
// State per step, all (B, ·) host vectors turned into small i32 tensors on the model's device:
//   ids        the tokens fed this step (the left-padded prompts at prefill, then one per row)
//   mask       key-padding mask over every key so far (cached + new): 0 on left padding
//   positions  per-row positions of the fed tokens, counting real tokens only
// Finished rows keep being fed (token 0 at their next position) so the batch stays rectangular;
// their outputs are ignored.
#include "rl/generation/generate.h"

#include <algorithm>

#include "core/ops/ops.h"

namespace tiller::rl {

namespace {

void validate(const Transformer& model, const std::vector<std::vector<int32_t>>& prompts,
              const GenerationConfig& config) {
  const ModelConfig& mc = model.config();
  TILLER_CHECK(!prompts.empty(), "generate: no prompts given");
  TILLER_CHECK(config.max_new_tokens >= 0, "generate: max_new_tokens must be >= 0, got {}",
               config.max_new_tokens);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& p = prompts[i];
    TILLER_CHECK(!p.empty(), "generate: prompt {} is empty", i);
    auto length = static_cast<int64_t>(p.size());
    TILLER_CHECK(length + config.max_new_tokens <= mc.max_seq_len,
                 "generate: prompt {} has {} tokens; with max_new_tokens {} that exceeds the "
                 "model's max_seq_len {}",
                 i, length, config.max_new_tokens, mc.max_seq_len);
    for (size_t t = 0; t < p.size(); ++t)
      TILLER_CHECK(p[t] >= 0 && p[t] < mc.vocab_size,
                   "generate: prompt {} token {} is {}, outside the vocabulary [0, {})", i, t,
                   p[t], mc.vocab_size);
  }
  for (int32_t s : config.stop_tokens)
    TILLER_CHECK(s >= 0 && s < mc.vocab_size, "generate: stop token {} is outside [0, {})", s,
                 mc.vocab_size);
}

Tensor ints(const std::vector<int32_t>& values, int64_t rows, int64_t cols, Device device) {
  return Tensor::from_ints(values, {rows, cols}, {.dtype = DType::i32, .device = device});
}

// Logits of the last column: (B, T, V) -> (B, V).
Tensor last_column(const Tensor& logits) {
  int64_t B = logits.size(0), T = logits.size(1), V = logits.size(2);
  return slice(logits, 1, T - 1, T).reshape({B, V});
}

}  // namespace

GenerationResult generate(Transformer& model, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerationConfig& config) {
  validate(model, prompts, config);
  NoGradGuard no_grad;
  const auto B = static_cast<int64_t>(prompts.size());
  int64_t P = 0;
  for (const auto& p : prompts) P = std::max<int64_t>(P, static_cast<int64_t>(p.size()));
  const Device device = model.device();

  // Left-padded prompt batch: row b has pad[b] padding columns, then its prompt.
  std::vector<int64_t> pad(B), next_position(B);
  std::vector<int32_t> ids(B * P, 0), mask(B * P, 0), positions(B * P, 0);
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[b];
    pad[b] = P - static_cast<int64_t>(p.size());
    for (int64_t t = pad[b]; t < P; ++t) {
      ids[b * P + t] = p[t - pad[b]];
      mask[b * P + t] = 1;
      positions[b * P + t] = static_cast<int32_t>(t - pad[b]);
    }
    next_position[b] = static_cast<int64_t>(p.size());
  }

  GenerationResult result;
  result.tokens.resize(B);
  result.logprobs.resize(B);
  result.stopped.assign(B, false);
  if (config.max_new_tokens == 0) return result;

  Generator gen(config.seed);
  std::vector<bool> finished(B, false);
  KVCache cache = model.make_cache();
  std::vector<int32_t> all_ids = ids, all_mask = mask, all_positions = positions;
  int64_t columns = P;

  // Prefill: the whole prompt batch.
  ForwardOptions prefill{.positions = ints(positions, B, P, device),
                         .key_padding_mask = ints(mask, B, P, device),
                         .cache = config.use_cache ? &cache : nullptr};
  Tensor logits = last_column(model.forward(ints(ids, B, P, device), prefill));

  for (int64_t step = 0; step < config.max_new_tokens; ++step) {
    SampledTokens next = sample_next(logits, config.sampling, gen);
    std::vector<int32_t> fed(B, 0), fed_positions(B, 0), fed_mask(B, 1);
    bool any_active = false;
    for (int64_t b = 0; b < B; ++b) {
      fed_positions[b] = static_cast<int32_t>(next_position[b]++);
      if (finished[b]) continue;
      int32_t token = next.tokens[b];
      result.tokens[b].push_back(token);
      result.logprobs[b].push_back(next.logprobs[b]);
      ++result.generated_tokens;
      fed[b] = token;
      bool is_stop = std::find(config.stop_tokens.begin(), config.stop_tokens.end(), token) !=
                     config.stop_tokens.end();
      if (is_stop) {
        finished[b] = true;
        result.stopped[b] = true;
      } else {
        any_active = true;
      }
    }
    if (!any_active || step + 1 == config.max_new_tokens) break;

    // Append the fed column to the running mask (and, without a cache, to the full sequence).
    std::vector<int32_t> grown_mask(B * (columns + 1)), grown_ids, grown_positions;
    if (!config.use_cache) {
      grown_ids.resize(B * (columns + 1));
      grown_positions.resize(B * (columns + 1));
    }
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t < columns; ++t) {
        grown_mask[b * (columns + 1) + t] = all_mask[b * columns + t];
        if (!config.use_cache) {
          grown_ids[b * (columns + 1) + t] = all_ids[b * columns + t];
          grown_positions[b * (columns + 1) + t] = all_positions[b * columns + t];
        }
      }
      grown_mask[b * (columns + 1) + columns] = fed_mask[b];
      if (!config.use_cache) {
        grown_ids[b * (columns + 1) + columns] = fed[b];
        grown_positions[b * (columns + 1) + columns] = fed_positions[b];
      }
    }
    ++columns;
    all_mask = std::move(grown_mask);
    if (config.use_cache) {
      ForwardOptions decode{.positions = ints(fed_positions, B, 1, device),
                            .key_padding_mask = ints(all_mask, B, columns, device),
                            .cache = &cache};
      logits = last_column(model.forward(ints(fed, B, 1, device), decode));
    } else {
      all_ids = std::move(grown_ids);
      all_positions = std::move(grown_positions);
      ForwardOptions full{.positions = ints(all_positions, B, columns, device),
                          .key_padding_mask = ints(all_mask, B, columns, device)};
      logits = last_column(model.forward(ints(all_ids, B, columns, device), full));
    }
  }
  return result;
}

}  // namespace tiller::rl
