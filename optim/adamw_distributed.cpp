// AdamW across data-parallel ranks: gradient averaging (bucketed all-reduce) and ZeRO-1 (see the
// data-parallelism paragraph of adamw.h).
//
// Both stages first agree on which parameters have a gradient this step (one all-reduce of a
// flag per parameter): a rank whose batch never reached a parameter contributes zeros for it, and
// a parameter no rank reached is skipped everywhere, as a single process would skip it. The
// buffers every collective sees are laid out by the parameter list alone, never by what one rank
// happens to hold, so the ranks' calls always match.
//
// ZeRO-1 layout: the parameters, in slot order, are concatenated into one flat vector of
// flat_size_ elements (padded with zeros to a multiple of the world size) and cut into equal
// shards; rank r owns [r * shard_size_, (r + 1) * shard_size_). A slot's moments are views into
// this rank's flat moment shards; an f32 parameter is its own master (the update writes the
// parameter's owned elements in place), a bf16 one has an f32 master view. One step:
//   flat gradient (zeros where absent) -> reduce_scatter(average) -> this rank's gradient shard
//   -> norm^2 of the shard, all-reduced -> AdamW kernel on the owned pieces
//   -> owned parameter elements into a shard buffer -> all_gather -> copied into every parameter.
// The update of each element is the same arithmetic as the unsharded optimizer's, on the same
// averaged gradient; only the norm's summation order differs.
#include <cmath>

#include "core/dist/communicator.h"
#include "core/tensor/autograd.h"
#include "core/tensor/dispatch.h"
#include "kernels/adamw.h"
#include "kernels/random.h"
#include "kernels/reduce.h"
#include "optim/adamw.h"

namespace tiller::optim {

namespace {

// A view of `count` elements of `base` from element `offset`, shaped `shape` (no autograd).
Tensor view(const Tensor& base, int64_t offset, const Shape& shape) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = base.dtype();
  impl->device = base.device();
  impl->storage = base.impl()->storage;
  impl->offset = base.impl()->offset + static_cast<size_t>(offset) * dtype_size(base.dtype());
  return Tensor(impl);
}

Tensor flat(const Tensor& base) {
  return view(base, 0, {base.numel()});
}

}  // namespace

std::vector<int32_t> AdamW::agree_on_gradients() const {
  std::vector<int32_t> flags(slots_.size());
  for (size_t i = 0; i < slots_.size(); ++i) flags[i] = slots_[i].param.grad().defined() ? 1 : 0;
  dist::Communicator& comm = *parallel_.communicator;
  // One host round trip per step for a handful of integers: the decision is made on the host.
  Tensor box = Tensor::from_ints(flags, {static_cast<int64_t>(flags.size())}).to(comm.device());
  comm.all_reduce(box, dist::ReduceOp::sum);
  return box.to_int_vector();
}

std::optional<float> AdamW::reduce_gradients() {
  if (!distributed()) return std::nullopt;
  if (shard_size_ > 0) return reduce_scatter_gradients();
  all_reduce_gradients();
  return std::nullopt;
}

void AdamW::all_reduce_gradients() {
  NoGradGuard no_grad;
  dist::Communicator& comm = *parallel_.communicator;
  const std::vector<int32_t> reached = agree_on_gradients();
  std::vector<Tensor> grads;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (reached[i] == 0) continue;
    const Tensor& p = slots_[i].param;
    if (!p.grad().defined())
      p.set_grad(Tensor::zeros(p.shape(), {.dtype = p.dtype(), .device = p.device()}));
    grads.push_back(p.grad());
  }
  // Buckets of consecutive gradients of one dtype, up to bucket_elements each; a bucket of one
  // gradient is reduced in place, a larger one through a flat buffer.
  size_t first = 0;
  while (first < grads.size()) {
    size_t last = first + 1;
    int64_t elements = grads[first].numel();
    while (last < grads.size() && grads[last].dtype() == grads[first].dtype() &&
           elements + grads[last].numel() <= parallel_.bucket_elements)
      elements += grads[last++].numel();
    if (last - first == 1) {
      comm.all_reduce(flat(grads[first]), dist::ReduceOp::average);
    } else {
      Tensor bucket = Tensor::empty(
          {elements}, {.dtype = grads[first].dtype(), .device = grads[first].device()});
      int64_t offset = 0;
      for (size_t i = first; i < last; ++i) {
        view(bucket, offset, {grads[i].numel()}).copy_(flat(grads[i]));
        offset += grads[i].numel();
      }
      comm.all_reduce(bucket, dist::ReduceOp::average);
      offset = 0;
      for (size_t i = first; i < last; ++i) {
        flat(grads[i]).copy_(view(bucket, offset, {grads[i].numel()}));
        offset += grads[i].numel();
      }
    }
    first = last;
  }
}

void AdamW::build_shards() {
  dist::Communicator& comm = *parallel_.communicator;
  const int64_t world = comm.world_size();
  int64_t offset = 0;
  bool any_bf16 = false;
  for (Slot& s : slots_) {
    s.flat_offset = offset;
    offset += s.param.numel();
    any_bf16 = any_bf16 || s.param.dtype() != DType::f32;
  }
  flat_size_ = (offset + world - 1) / world * world;
  shard_size_ = flat_size_ / world;
  TILLER_CHECK(shard_size_ > 0, "AdamW: ZeRO-1 over {} ranks needs parameters", world);
  const Device device = slots_.front().param.device();
  const TensorOptions f32{.dtype = DType::f32, .device = device};
  shard_exp_avg_ = Tensor::zeros({shard_size_}, f32);
  shard_exp_avg_sq_ = Tensor::zeros({shard_size_}, f32);
  if (any_bf16) shard_master_ = Tensor::zeros({shard_size_}, f32);
  const int64_t begin = comm.rank() * shard_size_, end = begin + shard_size_;
  for (Slot& s : slots_) {
    const int64_t numel = s.param.numel();
    s.shard_begin = std::clamp<int64_t>(begin - s.flat_offset, 0, numel);
    s.shard_end = std::clamp<int64_t>(end - s.flat_offset, s.shard_begin, numel);
    const int64_t local = s.flat_offset + s.shard_begin - begin;
    const Shape owned{s.shard_end - s.shard_begin};
    s.exp_avg = view(shard_exp_avg_, local, owned);
    s.exp_avg_sq = view(shard_exp_avg_sq_, local, owned);
    if (s.param.dtype() == DType::f32) {
      s.master = view(s.param, s.shard_begin, owned);
    } else {
      s.master = view(shard_master_, local, owned);
      s.master.copy_(view(s.param, s.shard_begin, owned));
    }
  }
}

float AdamW::reduce_scatter_gradients() {
  NoGradGuard no_grad;
  dist::Communicator& comm = *parallel_.communicator;
  const std::vector<int32_t> reached = agree_on_gradients();
  const Device device = slots_.front().param.device();
  DType grad_dtype = slots_.front().param.dtype();
  for (size_t i = 0; i < slots_.size(); ++i) {
    slots_[i].has_grad = reached[i] > 0;
    Tensor g = slots_[i].param.grad();
    if (g.defined()) grad_dtype = g.dtype();
  }
  Tensor flat_grad = Tensor::zeros({flat_size_}, {.dtype = grad_dtype, .device = device});
  for (const Slot& s : slots_) {
    Tensor g = s.param.grad();
    if (!g.defined()) continue;
    TILLER_CHECK(g.dtype() == grad_dtype && g.shape() == s.param.shape(),
                 "AdamW (ZeRO-1): gradient of '{}' is {} {}; every gradient must be {} and "
                 "shaped like its parameter {}",
                 s.name, dtype_name(g.dtype()), shape_str(g.shape()), dtype_name(grad_dtype),
                 shape_str(s.param.shape()));
    view(flat_grad, s.flat_offset, {g.numel()}).copy_(flat(g));
  }
  grad_shard_ = Tensor::empty({shard_size_}, {.dtype = grad_dtype, .device = device});
  comm.reduce_scatter(flat_grad, grad_shard_, dist::ReduceOp::average);

  Tensor squares = Tensor::zeros({1}, {.dtype = DType::f32, .device = device});
  const int64_t begin = comm.rank() * shard_size_;
  for (const Slot& s : slots_) {
    const int64_t n = s.shard_end - s.shard_begin;
    if (!s.has_grad || n == 0) continue;
    Tensor piece = view(grad_shard_, s.flat_offset + s.shard_begin - begin, {n});
    TILLER_DISPATCH(device, kernels::sum_squares, piece.data_ptr(), n, squares.data<float>(),
                    grad_dtype);
  }
  comm.all_reduce(squares, dist::ReduceOp::sum);
  return std::sqrt(squares.item());
}

void AdamW::sharded_step(float grad_scale) {
  NoGradGuard no_grad;
  TILLER_CHECK(grad_shard_.defined(),
               "AdamW (ZeRO-1): step() needs reduce_gradients() first in every step");
  dist::Communicator& comm = *parallel_.communicator;
  const int64_t begin = comm.rank() * shard_size_;
  std::vector<kernels::AdamWTensor> tensors;
  for (Slot& s : slots_) {
    const int64_t n = s.shard_end - s.shard_begin;
    if (!s.has_grad || n == 0) continue;
    const bool separate_master = s.param.dtype() != DType::f32;
    tensors.push_back(
        {.master = s.master.data<float>(),
         .param = separate_master ? view(s.param, s.shard_begin, {n}).data_ptr() : nullptr,
         .grad = view(grad_shard_, s.flat_offset + s.shard_begin - begin, {n}).data_ptr(),
         .m = s.exp_avg.data<float>(),
         .v = s.exp_avg_sq.data<float>(),
         .n = n,
         .weight_decay = s.weight_decay,
         .param_dtype = s.param.dtype(),
         .grad_dtype = grad_shard_.dtype()});
  }
  ++step_;
  const Device device = slots_.front().param.device();
  if (!tensors.empty()) {
    kernels::AdamWHyper hyper{.lr = options_.lr,
                              .beta1 = options_.beta1,
                              .beta2 = options_.beta2,
                              .eps = options_.eps,
                              .step = step_,
                              .grad_scale = grad_scale,
                              .seed = random::mix64(options_.seed + static_cast<uint64_t>(step_))};
    TILLER_DISPATCH(device, kernels::adamw_step, tensors, hyper);
  }
  grad_shard_ = Tensor();

  // Every rank's updated elements to every rank. Parameters share one dtype (checked here).
  const DType dtype = slots_.front().param.dtype();
  Tensor owned = Tensor::zeros({shard_size_}, {.dtype = dtype, .device = device});
  for (const Slot& s : slots_) {
    TILLER_CHECK(s.param.dtype() == dtype, "AdamW (ZeRO-1): '{}' is {} but '{}' is {}", s.name,
                 dtype_name(s.param.dtype()), slots_.front().name, dtype_name(dtype));
    const int64_t n = s.shard_end - s.shard_begin;
    if (n > 0)
      view(owned, s.flat_offset + s.shard_begin - begin, {n})
          .copy_(view(s.param, s.shard_begin, {n}));
  }
  Tensor gathered = Tensor::empty({flat_size_}, {.dtype = dtype, .device = device});
  comm.all_gather(owned, gathered);
  for (const Slot& s : slots_)
    if (s.has_grad) flat(s.param).copy_(view(gathered, s.flat_offset, {s.param.numel()}));
}

AdamWState AdamW::gathered_state() const {
  NoGradGuard no_grad;
  dist::Communicator& comm = *parallel_.communicator;
  auto gather = [&](const Tensor& shard) {
    Tensor whole = Tensor::empty({flat_size_}, {.dtype = DType::f32, .device = shard.device()});
    comm.all_gather(shard, whole);
    return whole;
  };
  AdamWState out{.step = step_, .tensors = {}};
  Tensor exp_avg = gather(shard_exp_avg_), exp_avg_sq = gather(shard_exp_avg_sq_);
  Tensor master = shard_master_.defined() ? gather(shard_master_) : Tensor();
  for (const Slot& s : slots_) {
    out.tensors[s.name + ".exp_avg"] = view(exp_avg, s.flat_offset, s.param.shape()).clone();
    out.tensors[s.name + ".exp_avg_sq"] = view(exp_avg_sq, s.flat_offset, s.param.shape()).clone();
    if (s.param.dtype() != DType::f32)
      out.tensors[s.name + ".master"] = view(master, s.flat_offset, s.param.shape()).clone();
  }
  return out;
}

void AdamW::load_state(const AdamWState& state) {
  // Bounded so that counting on from a hostile file cannot overflow.
  TILLER_CHECK(state.step >= 0 && state.step < (int64_t{1} << 53),
               "AdamW::load_state: step {} is not in [0, 2^53)", state.step);
  NoGradGuard no_grad;
  // Saved state is always whole (a ZeRO-1 optimizer gathers it). Each slot takes its elements
  // [shard_begin, shard_begin + numel): the whole tensor, or a ZeRO-1 rank's slice of it.
  size_t expected = 0;
  auto load = [&](const Slot& s, const std::string& key, const Tensor& dst) {
    auto it = state.tensors.find(key);
    TILLER_CHECK(it != state.tensors.end(), "AdamW::load_state: missing '{}'", key);
    TILLER_CHECK(it->second.shape() == s.param.shape(),
                 "AdamW::load_state: '{}' is {} but expected {}", key,
                 shape_str(it->second.shape()), shape_str(s.param.shape()));
    dst.copy_(view(it->second, s.shard_begin, dst.shape()));  // tensors are contiguous
    ++expected;
  };
  for (const Slot& s : slots_) {
    load(s, s.name + ".exp_avg", s.exp_avg);
    load(s, s.name + ".exp_avg_sq", s.exp_avg_sq);
    // An f32 parameter is its own master: the weights, loaded before the optimizer, hold it.
    if (s.param.dtype() != DType::f32) load(s, s.name + ".master", s.master);
  }
  TILLER_CHECK(expected == state.tensors.size(),
               "AdamW::load_state: the state holds {} tensors but this optimizer has {}; was it "
               "saved from different parameters?",
               state.tensors.size(), expected);
  step_ = state.step;
}

}  // namespace tiller::optim
