// Prompt + completion batches and completion log-probs (see rl/trainers/completion_batch.h).
#include "rl/trainers/completion_batch.h"

#include <algorithm>

#include "core/ops/ops.h"

namespace tiller::rl {

CompletionBatch make_completion_batch(const std::vector<std::vector<int32_t>>& prompts,
                                      const std::vector<std::vector<int32_t>>& completions,
                                      PaddingSide side, Device device) {
  TILLER_CHECK(!prompts.empty() && prompts.size() == completions.size(),
               "make_completion_batch: {} prompts for {} completions (need as many, at least one)",
               prompts.size(), completions.size());
  const auto n = static_cast<int64_t>(prompts.size());
  int64_t T = 2;  // at least one target column
  for (int64_t i = 0; i < n; ++i) {
    TILLER_CHECK(!prompts[i].empty(), "make_completion_batch: prompt {} is empty", i);
    T = std::max<int64_t>(T, static_cast<int64_t>(prompts[i].size() + completions[i].size()));
  }
  std::vector<int32_t> ids(n * T, 0), key_mask(n * T, 0), positions(n * T, 0);
  std::vector<int32_t> targets(n * (T - 1), 0);
  std::vector<float> mask(n * (T - 1), 0.f), lengths(n, 0.f);
  for (int64_t i = 0; i < n; ++i) {
    const auto& prompt = prompts[i];
    const auto& completion = completions[i];
    const auto P = static_cast<int64_t>(prompt.size());
    const auto length = P + static_cast<int64_t>(completion.size());
    const int64_t start = side == PaddingSide::left ? T - length : 0;
    for (int64_t t = 0; t < length; ++t) {
      ids[i * T + start + t] = t < P ? prompt[t] : completion[t - P];
      key_mask[i * T + start + t] = 1;
      positions[i * T + start + t] = static_cast<int32_t>(t);
    }
    // Right padding continues the position count (masked, causally after every real token).
    for (int64_t t = length; side == PaddingSide::right && t < T; ++t)
      positions[i * T + t] = static_cast<int32_t>(t);
    for (int64_t t = P; t < length; ++t) mask[i * (T - 1) + start + t - 1] = 1.f;
    for (int64_t t = 0; t + 1 < T; ++t) targets[i * (T - 1) + t] = ids[i * T + t + 1];
    lengths[i] = static_cast<float>(completion.size());
  }
  TensorOptions i32{.dtype = DType::i32, .device = device};
  CompletionBatch batch;
  batch.ids = Tensor::from_ints(ids, {n, T}, i32);
  batch.options.key_padding_mask = Tensor::from_ints(key_mask, {n, T}, i32);
  batch.options.positions = Tensor::from_ints(positions, {n, T}, i32);
  batch.targets = Tensor::from_ints(targets, {n, T - 1}, i32);
  batch.mask = Tensor::from_vector(mask, {n, T - 1}, {.device = device});
  batch.lengths = Tensor::from_vector(lengths, {n}, {.device = device});
  batch.rows = n;
  return batch;
}

Tensor completion_token_logps(Transformer& model, const CompletionBatch& batch, float temperature,
                              Tensor* entropy) {
  TILLER_CHECK(temperature > 0.f, "completion_token_logps: temperature must be > 0, got {}",
               temperature);
  const int64_t T = batch.ids.size(1);
  Tensor logits = slice(model.forward(batch.ids, batch.options), 1, 0, T - 1);  // (n, T-1, V)
  if (temperature != 1.f) logits = scale(logits, 1.f / temperature);
  if (logits.dtype() != DType::f32) logits = logits.to(DType::f32);
  if (entropy != nullptr) {
    NoGradGuard no_grad;
    *entropy = mul(tiller::entropy(logits.detach()), batch.mask);
  }
  return mul(token_logprobs(logits, batch.targets), batch.mask);
}

}  // namespace tiller::rl
