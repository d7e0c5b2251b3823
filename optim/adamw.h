// AdamW (decoupled weight decay) over a model's parameters, one fused multi-tensor step.
//
//   g = grad * grad_scale
//   m = beta1 m + (1 - beta1) g            v = beta2 v + (1 - beta2) g^2
//   w = w (1 - lr wd)                      w -= (lr / (1 - beta1^t)) m / (sqrt(v / (1 - beta2^t)) +
//   eps)
// which is torch.optim.AdamW's update, in the same order, so tiller tracks PyTorch step by step.
//
// Parameter groups: each group carries its own weight decay. The convenience constructor builds
// two groups from NamedParameter::decay (matrices decay; biases, norm gains and embeddings do not,
// unless the caller flips the flag or passes groups explicitly).
//
// Precision: moments are f32. A bf16 parameter gets an f32 master copy that the update is applied
// to; the kernel then writes the bf16 parameter from the master with stochastic rounding. An f32
// parameter is its own master. Parameters whose grad is undefined are skipped that step (their
// moments do not decay), as in PyTorch.
//
// The optimizer holds the parameter tensors it is given and copies bf16 masters at construction:
// build it after loading weights and after Transformer::to().
//
// Resume: state() captures step count, moments and masters; load_state() into an optimizer built
// over the same parameters reproduces later steps bit for bit.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor/parameter.h"

namespace tiller::optim {

struct AdamWOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.01f;  // used by the decaying group of the convenience constructor
  uint64_t seed = 0;           // stochastic rounding of bf16 parameters
};

struct ParamGroup {
  ParameterList params;
  float weight_decay = 0.f;
};

// Two groups from the parameters' decay flags: {decay: weight_decay} and {no decay: 0}.
std::vector<ParamGroup> default_param_groups(const ParameterList& params, float weight_decay);

struct AdamWState {
  int64_t step = 0;
  // "<param>.exp_avg", "<param>.exp_avg_sq" and, for bf16 parameters, "<param>.master".
  std::map<std::string, Tensor> tensors;
};

class AdamW {
 public:
  AdamW(const ParameterList& params, AdamWOptions options = {});
  AdamW(std::vector<ParamGroup> groups, AdamWOptions options = {});

  // One update of every parameter that has a gradient. grad_scale multiplies the gradients first
  // (the clip factor from optim/clip.h, or 1 / loss scale), so clipping costs no extra pass.
  void step(float grad_scale = 1.f);
  // Drops every gradient (the next backward writes fresh ones).
  void zero_grad();

  float lr() const { return options_.lr; }
  void set_lr(float lr) { options_.lr = lr; }  // called each step by a schedule
  int64_t step_count() const { return step_; }
  const AdamWOptions& options() const { return options_; }

  AdamWState state() const;  // deep copies
  void load_state(const AdamWState& state);

 private:
  struct Slot {
    std::string name;
    Tensor param;
    Tensor master;  // f32; the same tensor as param when param is f32
    Tensor exp_avg;
    Tensor exp_avg_sq;
    float weight_decay = 0.f;
  };
  std::vector<Slot> slots_;
  AdamWOptions options_;
  int64_t step_ = 0;
};

}  // namespace tiller::optim
