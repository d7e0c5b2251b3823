// NamedParameter: a trainable tensor with its checkpoint name and its weight-decay flag.
//
// Models hand a list of these to the optimizer, the checkpoint writer and the gradient clipper, so
// all three agree on one order and one set of names (Hugging Face names for the built-in models).
// The decay flag is the model's default grouping — matrices decay; biases, norm gains and
// embeddings do not — which an optimizer may override per group.
#pragma once

#include <string>
#include <vector>

#include "core/tensor/tensor.h"

namespace tiller {

struct NamedParameter {
  std::string name;
  Tensor tensor;  // a leaf with requires_grad
  bool decay = true;
};

using ParameterList = std::vector<NamedParameter>;

}  // namespace tiller
