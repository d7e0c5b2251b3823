// Reverse-mode autograd: topological order, closures, += into gradients. See core/autograd.h.
#include "core/tensor/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "core/tensor/dispatch.h"
#include "core/ops/ops.h"
#include "kernels/elementwise.h"

namespace tiller {

namespace {
thread_local bool g_grad_enabled = true;

// dst += src, in place (dst is a gradient buffer this module owns).
void accumulate_into(Tensor& dst, const Tensor& src) {
  TILLER_CHECK(dst.shape() == src.shape(), "backward: gradient {} does not match {}",
               shape_str(src.shape()), shape_str(dst.shape()));
  Tensor s = src.to(dst.dtype());
  TILLER_DISPATCH(dst.device(), kernels::accumulate, dst.data_ptr(), s.data_ptr(), dst.numel(),
                  dst.dtype());
}

// True when `t` is the only handle on its memory: no other tensor, view, saved input or gradient
// can see it, so a leaf may keep it as its gradient without a copy (at GPT-2 124M the copies
// were 0.5 GB of memory traffic per step).
bool sole_owner(const Tensor& t) {
  const auto& impl = t.impl_ptr();
  return impl && impl.use_count() == 1 && impl->storage && impl->storage.use_count() == 1;
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }

NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.requires_grad()) return true;
  return false;
}

Tensor record(Tensor out, std::string op, std::vector<Tensor> inputs, BackwardFn backward) {
  if (!needs_grad(inputs)) return out;
  auto node = std::make_shared<Node>();
  node->op = std::move(op);
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
  return out;
}

void backward(const Tensor& root, const Tensor& grad_output) {
  TILLER_CHECK(root.defined(), "backward: called on an undefined tensor");
  TILLER_CHECK(root.requires_grad(),
               "backward: tensor {} does not require grad (no input of its graph requires grad, "
               "or it was computed under NoGradGuard)",
               root.str());
  Tensor seed = grad_output;
  if (!seed.defined()) {
    TILLER_CHECK(root.numel() == 1,
                 "backward: root {} is not a scalar; pass a gradient of its shape", root.str());
    seed = Tensor::ones(root.shape(), {.dtype = root.dtype(), .device = root.device()});
  }
  TILLER_CHECK(seed.shape() == root.shape(), "backward: gradient {} for root {}",
               shape_str(seed.shape()), shape_str(root.shape()));

  NoGradGuard no_grad;  // closures compute plain tensors; tiller has no double-backward
  if (root.is_leaf()) {
    Tensor g = root.grad();
    if (g.defined()) {
      accumulate_into(g, seed);
    } else {
      root.set_grad(seed.to(root.dtype()).clone());
    }
    return;
  }

  // 1. Topological order by iterative post-order DFS over producing nodes. `order` owns the
  // nodes: clearing one node's inputs may drop the last other reference to its producers.
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> visited;
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{root.grad_fn(), 0}};
  visited.insert(root.grad_fn().get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      std::shared_ptr<Node> child = node->inputs[next++].grad_fn();
      if (child && visited.insert(child.get()).second) stack.emplace_back(std::move(child), 0);
    } else {
      order.push_back(std::move(node));
      stack.pop_back();
    }
  }

  // 2-4. Reverse order: run each node once its output gradient is complete, then free it.
  std::unordered_map<Node*, Tensor> grads{{root.grad_fn().get(), seed}};
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = it->get();
    auto found = grads.find(node);
    if (found == grads.end()) continue;  // no gradient flowed here
    Tensor g = std::move(found->second);
    grads.erase(found);
    std::vector<Tensor> input_grads = node->backward(g);
    TILLER_CHECK(input_grads.size() == node->inputs.size(),
                 "backward: op {} returned {} gradients for {} inputs", node->op,
                 input_grads.size(), node->inputs.size());
    for (size_t i = 0; i < node->inputs.size(); ++i) {
      const Tensor& input = node->inputs[i];
      Tensor& ig = input_grads[i];
      if (!input.requires_grad() || !ig.defined()) continue;
      TILLER_CHECK(ig.shape() == input.shape(), "backward: op {} gave gradient {} for input {}",
                   node->op, shape_str(ig.shape()), shape_str(input.shape()));
      if (Node* producer = input.grad_fn().get()) {
        auto [slot, inserted] = grads.try_emplace(producer, ig);
        if (!inserted) slot->second = add(slot->second, ig);
      } else {
        Tensor leaf_grad = input.grad();
        if (leaf_grad.defined()) {
          accumulate_into(leaf_grad, ig);
        } else if (sole_owner(ig) && ig.dtype() == input.dtype()) {
          input.set_grad(std::move(ig));  // a fresh buffer nothing else sees: adopt it
        } else {
          // The closure's result may alias a saved tensor or another gradient: own a copy.
          input.set_grad(ig.to(input.dtype()).clone());
        }
      }
    }
    node->inputs.clear();  // frees saved activations as soon as the node has run
    node->backward = nullptr;
  }
}

Tensor sum_to_shape(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  Tensor g = grad;
  // Leading dims that broadcasting added.
  while (g.dim() > static_cast<int64_t>(shape.size())) g = sum(g, 0, false);
  for (int64_t d = 0; d < g.dim(); ++d) {
    if (shape[d] == 1 && g.size(d) != 1) g = sum(g, d, true);
  }
  return g.reshape(shape);
}

}  // namespace tiller
