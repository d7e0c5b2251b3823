// ValueModel and deep Transformer copies (see rl/value_model.h).
#include "rl/heads/value_model.h"

#include "core/ops/ops.h"

namespace tiller::rl {

Transformer copy_transformer(const Transformer& source) {
  Transformer copy(source.config());
  const ParameterList& from = source.parameters();
  TILLER_CHECK(!from.empty(), "copy_transformer: the source model has no parameters");
  copy.to(from.front().tensor.dtype());
  copy.to(source.device());
  const ParameterList& to = copy.parameters();
  TILLER_CHECK(to.size() == from.size(),
               "copy_transformer: the source has {} parameters but its config builds {}",
               from.size(), to.size());
  for (size_t i = 0; i < from.size(); ++i) to[i].tensor.copy_(from[i].tensor);
  return copy;
}

ValueModel::ValueModel(Transformer backbone) : backbone_(std::move(backbone)) {}

ValueModel ValueModel::from_backbone(const Transformer& backbone) {
  ValueModel model(copy_transformer(backbone));
  const int64_t C = backbone.config().n_embd;
  TensorOptions options{.dtype = backbone.parameters().front().tensor.dtype(),
                        .device = backbone.device(),
                        .requires_grad = true};
  model.head_weight_ = Tensor::zeros({1, C}, options);
  model.head_bias_ = Tensor::zeros({1}, options);
  model.params_ = model.backbone_.parameters();
  model.params_.push_back({"v_head.weight", model.head_weight_, true});
  model.params_.push_back({"v_head.bias", model.head_bias_, false});
  return model;
}

ValueModel::ValueModel(const Transformer& backbone, const Tensor& head_weight,
                       const Tensor& head_bias)
    : ValueModel(from_backbone(backbone)) {
  const int64_t C = backbone.config().n_embd;
  TILLER_CHECK(head_weight.defined() && head_weight.shape() == Shape({1, C}),
               "ValueModel: head weight must be (1, {}), got {}", C,
               head_weight.defined() ? shape_str(head_weight.shape()) : "undefined");
  TILLER_CHECK(head_bias.defined() && head_bias.numel() == 1,
               "ValueModel: head bias must have one element, got {}",
               head_bias.defined() ? shape_str(head_bias.shape()) : "undefined");
  head_weight_.copy_(head_weight);
  head_bias_.copy_(head_bias.reshape({1}));
}

Tensor ValueModel::values(const Tensor& ids, const ForwardOptions& options) {
  Tensor hidden = backbone_.hidden_states(ids, options);     // (B, T, C)
  Tensor values = linear(hidden, head_weight_, head_bias_);  // (B, T, 1)
  if (values.dtype() != DType::f32) values = values.to(DType::f32);
  return values.reshape({ids.size(0), ids.size(1)});
}

}  // namespace tiller::rl
