// Prompt + completion rows as one model input, and the per-token log-probs of the completion
// tokens: what DPO (prompt + chosen / rejected) and GRPO (prompt + sampled completion) score.
//
// Layout: each row is prompt ++ completion, padded to the longest row on the LEFT or the RIGHT
// (both give the same log-probs: a key-padding mask hides pad keys and positions count real
// tokens only, so a row's numbers never depend on its padding — tested). Per-token tensors are in
// "target" layout, (n, T - 1): column t holds the log-prob of ids[:, t + 1] given ids[:, :t + 1],
// and `mask` is 1 exactly where that target is a completion token. The policy, the reference and
// the generation-time ("old") log-probs of one batch share this layout, so they align by column.
#pragma once

#include <cstdint>
#include <vector>

#include "core/models/model.h"
#include "rl/data/reward_data.h"

namespace tiller::rl {

struct CompletionBatch {
  Tensor ids;              // (n, T) i32
  ForwardOptions options;  // key_padding_mask and positions
  Tensor targets;          // (n, T - 1) i32, ids shifted by one
  Tensor mask;             // (n, T - 1) f32, 1 on completion targets
  Tensor lengths;          // (n) f32 completion token counts
  int64_t rows = 0;
};

// Every prompt must be non-empty (its last token predicts the first completion token); a
// completion may be empty (it then contributes nothing).
CompletionBatch make_completion_batch(const std::vector<std::vector<int32_t>>& prompts,
                                      const std::vector<std::vector<int32_t>>& completions,
                                      PaddingSide side, Device device);

// Per-token log-probs of the targets under softmax(logits / temperature), (n, T - 1), 0 outside
// the mask. When `entropy` is given it receives the per-token entropy of the same distribution
// (detached). Differentiable w.r.t. the model's parameters unless under NoGradGuard.
Tensor completion_token_logps(Transformer& model, const CompletionBatch& batch,
                              float temperature = 1.f, Tensor* entropy = nullptr);

}  // namespace tiller::rl
