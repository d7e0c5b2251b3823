// ValueModel: a Transformer backbone plus a scalar head read at EVERY token — PPO's critic.
//
// values(ids) = hidden_states(ids) @ head_weight^T + head_bias, shape (B, T): the value of the
// state "everything up to and including this token". The reward model (rl/reward.h) has the same
// backbone + Linear(C -> 1) shape but reads one position per sequence; a value model initialised
// from it starts from the reward model's backbone and head, as TRL does. Without a reward model
// the critic starts from the policy's backbone with a ZERO head, so its first estimates are 0
// (the baseline GAE assumes after the episode) rather than noise the first updates must undo.
//
// Invariants: the backbone and the head live on one device; every parameter is a leaf that
// requires grad. Copies made by copy_transformer share nothing with their source.
#pragma once

#include "core/models/model.h"
#include "core/tensor/parameter.h"

namespace tiller::rl {

// A deep copy: same config, device, dtype and weights, no shared storage (a frozen reference or
// a critic backbone must not move when the policy does).
Transformer copy_transformer(const Transformer& source);

class ValueModel {
 public:
  // Deep-copies `backbone` and gives it a zero-initialised head.
  static ValueModel from_backbone(const Transformer& backbone);
  // Deep-copies `backbone`; head_weight (1, C) and head_bias (1) are copied (a reward model's).
  ValueModel(const Transformer& backbone, const Tensor& head_weight, const Tensor& head_bias);

  // ids (B, T) i32 -> values (B, T) f32. Same options as Transformer::forward.
  Tensor values(const Tensor& ids, const ForwardOptions& options = {});

  Transformer& backbone() { return backbone_; }
  const Tensor& head_weight() const { return head_weight_; }
  const Tensor& head_bias() const { return head_bias_; }
  // Backbone parameters then "v_head.weight" and "v_head.bias" (no weight decay on the head bias).
  const ParameterList& parameters() const { return params_; }
  Device device() const { return backbone_.device(); }

 private:
  explicit ValueModel(Transformer backbone);

  Transformer backbone_;
  Tensor head_weight_;  // (1, C)
  Tensor head_bias_;    // (1)
  ParameterList params_;
};

}  // namespace tiller::rl
