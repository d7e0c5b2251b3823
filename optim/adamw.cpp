// AdamW: parameter bookkeeping around the kernels::adamw_step multi-tensor kernel.
//
// All parameters must live on one device: a step is one kernel call (one launch on CUDA). The
// per-step stochastic-rounding seed mixes the user seed with the step number, so a resumed run
// rounds exactly as the uninterrupted one did.
#include "optim/adamw.h"

#include "core/tensor/autograd.h"
#include "core/tensor/dispatch.h"
#include "kernels/adamw.h"
#include "kernels/random.h"

namespace tiller::optim {

std::vector<ParamGroup> default_param_groups(const ParameterList& params, float weight_decay) {
  ParamGroup decay{.params = {}, .weight_decay = weight_decay};
  ParamGroup no_decay{.params = {}, .weight_decay = 0.f};
  for (const NamedParameter& p : params) (p.decay ? decay : no_decay).params.push_back(p);
  std::vector<ParamGroup> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!no_decay.params.empty()) groups.push_back(std::move(no_decay));
  return groups;
}

AdamW::AdamW(const ParameterList& params, AdamWOptions options, DataParallelOptions parallel)
    : AdamW(default_param_groups(params, options.weight_decay), options, std::move(parallel)) {}

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions options, DataParallelOptions parallel)
    : options_(options), parallel_(std::move(parallel)) {
  TILLER_CHECK(
      options.beta1 >= 0.f && options.beta1 < 1.f && options.beta2 >= 0.f && options.beta2 < 1.f,
      "AdamW: betas must be in [0, 1), got ({}, {})", options.beta1, options.beta2);
  TILLER_CHECK(options.eps > 0.f, "AdamW: eps must be positive, got {}", options.eps);
  TILLER_CHECK(parallel_.zero_stage == 0 || parallel_.zero_stage == 1,
               "AdamW: zero_stage must be 0 or 1, got {}", parallel_.zero_stage);
  TILLER_CHECK(parallel_.bucket_elements > 0, "AdamW: bucket_elements must be positive, got {}",
               parallel_.bucket_elements);
  // ZeRO-1 allocates only this rank's slice of the state (build_shards), never the whole of it.
  const bool sharded = parallel_.zero_stage == 1 && world_size() > 1;
  NoGradGuard no_grad;
  for (ParamGroup& group : groups) {
    for (NamedParameter& p : group.params) {
      const Tensor& t = p.tensor;
      TILLER_CHECK(t.defined(), "AdamW: parameter '{}' is undefined", p.name);
      TILLER_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::bf16,
                   "AdamW: parameter '{}' is {}; only f32 and bf16 parameters are trainable",
                   p.name, dtype_name(t.dtype()));
      TILLER_CHECK(t.is_leaf(), "AdamW: parameter '{}' {} is not a leaf tensor", p.name,
                   shape_str(t.shape()));
      if (!slots_.empty())
        TILLER_CHECK(t.device() == slots_.front().param.device(),
                     "AdamW: parameter '{}' is on {} but '{}' is on {}; move the model first",
                     p.name, t.device().str(), slots_.front().name,
                     slots_.front().param.device().str());
      std::string name = p.name.empty() ? "param" + std::to_string(slots_.size()) : p.name;
      for (const Slot& s : slots_)
        TILLER_CHECK(!s.param.same(t), "AdamW: parameter '{}' is also listed as '{}'", name,
                     s.name);
      TensorOptions f32{.dtype = DType::f32, .device = t.device()};
      Slot slot;
      slot.name = name;
      slot.param = t;
      slot.weight_decay = group.weight_decay;
      if (!sharded) {
        slot.master = t.dtype() == DType::f32 ? t : t.to(DType::f32);
        slot.exp_avg = Tensor::zeros(t.shape(), f32);
        slot.exp_avg_sq = Tensor::zeros(t.shape(), f32);
      }
      slots_.push_back(std::move(slot));
    }
  }
  if (sharded) build_shards();
}

int AdamW::world_size() const {
  return parallel_.communicator ? parallel_.communicator->world_size() : 1;
}

void AdamW::step(float grad_scale) {
  if (shard_size_ > 0) {
    sharded_step(grad_scale);
    return;
  }
  std::vector<kernels::AdamWTensor> tensors;
  tensors.reserve(slots_.size());
  for (Slot& s : slots_) {
    Tensor g = s.param.grad();
    if (!g.defined()) continue;
    TILLER_CHECK(g.device() == s.param.device() && g.shape() == s.param.shape(),
                 "AdamW: gradient of '{}' is {} on {} but the parameter is {} on {}", s.name,
                 shape_str(g.shape()), g.device().str(), shape_str(s.param.shape()),
                 s.param.device().str());
    bool separate_master = s.param.dtype() != DType::f32;
    tensors.push_back({.master = s.master.data<float>(),
                       .param = separate_master ? s.param.data_ptr() : nullptr,
                       .grad = g.data_ptr(),
                       .m = s.exp_avg.data<float>(),
                       .v = s.exp_avg_sq.data<float>(),
                       .n = s.param.numel(),
                       .weight_decay = s.weight_decay,
                       .param_dtype = s.param.dtype(),
                       .grad_dtype = g.dtype()});
  }
  ++step_;
  if (tensors.empty()) return;
  kernels::AdamWHyper hyper{.lr = options_.lr,
                            .beta1 = options_.beta1,
                            .beta2 = options_.beta2,
                            .eps = options_.eps,
                            .step = step_,
                            .grad_scale = grad_scale,
                            .seed = random::mix64(options_.seed + static_cast<uint64_t>(step_))};
  TILLER_DISPATCH(slots_.front().param.device(), kernels::adamw_step, tensors, hyper);
}

void AdamW::zero_grad() {
  for (Slot& s : slots_) s.param.zero_grad();
}

AdamWState AdamW::state() const {
  if (shard_size_ > 0) return gathered_state();
  AdamWState out{.step = step_, .tensors = {}};
  for (const Slot& s : slots_) {
    out.tensors[s.name + ".exp_avg"] = s.exp_avg.clone();
    out.tensors[s.name + ".exp_avg_sq"] = s.exp_avg_sq.clone();
    if (!s.master.same(s.param)) out.tensors[s.name + ".master"] = s.master.clone();
  }
  return out;
}

// load_state is in adamw_distributed.cpp, beside the shard views it fills on a ZeRO-1 rank.

}  // namespace tiller::optim
