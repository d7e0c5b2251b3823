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
//
// Data parallelism (optim/adamw_distributed.cpp): with a communicator of more than one rank,
// reduce_gradients() averages the gradients over the ranks and returns the global norm of the
// average. zero_stage 0 all-reduces them in buckets of bucket_elements; zero_stage 1 (ZeRO-1)
// reduce-scatters them instead: each rank keeps moments (and bf16 masters) only for its 1/N slice
// of the flattened parameters, step() updates that slice and all-gathers the parameters, and the
// norm is the square root of the sum of the slices' squared norms. state() then gathers the full
// moments (a collective: every rank calls it) and load_state() takes this rank's slice, so a
// checkpoint has one layout whatever the number of ranks or the stage, and resumes on any.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dist/communicator.h"
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

// Data parallelism (see the header comment). A null communicator or one of one rank: one process.
struct DataParallelOptions {
  std::shared_ptr<dist::Communicator> communicator;
  int zero_stage = 0;                 // 0 or 1
  int64_t bucket_elements = 1 << 22;  // zero_stage 0: gradients per all-reduce
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
  AdamW(const ParameterList& params, AdamWOptions options = {}, DataParallelOptions parallel = {});
  AdamW(std::vector<ParamGroup> groups, AdamWOptions options = {},
        DataParallelOptions parallel = {});

  // One update of every parameter that has a gradient. grad_scale multiplies the gradients first
  // (the clip factor from optim/clip.h, or 1 / loss scale), so clipping costs no extra pass.
  void step(float grad_scale = 1.f);
  // Drops every gradient (the next backward writes fresh ones).
  void zero_grad();
  // Averages the gradients over the communicator's ranks (a collective; nothing on one rank).
  // ZeRO-1 returns the global norm of the average (from the shards); otherwise every rank holds
  // the whole averaged gradients and the caller computes the norm (optim/clip.h), in its order.
  std::optional<float> reduce_gradients();
  bool distributed() const { return world_size() > 1; }
  int world_size() const;
  dist::Communicator* communicator() const { return parallel_.communicator.get(); }

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
    // ZeRO-1: this rank updates elements [shard_begin, shard_end) of the parameter, at
    // flat_offset + shard_begin of the flattened parameters; master/exp_avg/exp_avg_sq then hold
    // only those elements (views into the flat shards below).
    int64_t flat_offset = 0;
    int64_t shard_begin = 0;
    int64_t shard_end = 0;
    bool has_grad = false;  // in this step on some rank (zero_stage 1)
  };
  // adamw_distributed.cpp
  void build_shards();
  void all_reduce_gradients();
  float reduce_scatter_gradients();
  void sharded_step(float grad_scale);
  AdamWState gathered_state() const;
  std::vector<int32_t> agree_on_gradients() const;

  std::vector<Slot> slots_;
  AdamWOptions options_;
  DataParallelOptions parallel_;
  int64_t step_ = 0;
  // ZeRO-1: the flattened parameters padded to a multiple of the world size, split in equal shards
  // of shard_size_ elements; this rank owns [rank * shard_size_, (rank + 1) * shard_size_).
  int64_t flat_size_ = 0;
  int64_t shard_size_ = 0;
  Tensor shard_exp_avg_, shard_exp_avg_sq_, shard_master_;  // (shard_size_) f32
  Tensor grad_shard_;  // the averaged gradient of this rank's shard, set by reduce_gradients()
};

}  // namespace tiller::optim
