// Define-by-run reverse-mode autograd, with PyTorch semantics, in one page.
//
// The whole idea (micrograd's): every differentiable op that sees an input with requires_grad
// records a Node on its output. The node holds the op's inputs and a closure that maps the
// gradient of the output to the gradients of the inputs, capturing exactly the activations the
// backward needs. `backward(loss)`:
//   1. orders the nodes reachable from loss topologically (iterative DFS, no recursion limit);
//   2. walks them in reverse, calling each closure with the summed gradient of its output;
//   3. adds (+=) each input's gradient into the running sum of the node that produced it, or, for a
//      leaf that requires grad, into leaf.grad — so a tensor used twice gets the sum of both;
//   4. clears each node's inputs and closure as soon as it has run, freeing saved activations.
// Backward closures run with recording off: tiller has no double-backward.
//
// Gradient accumulation into leaves is an explicit choice, PyTorch's: call zero_grad (or the
// optimizer's) between steps unless you mean to accumulate.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor/tensor.h"

namespace tiller {

// Maps the output gradient to one gradient per input (an undefined Tensor for "no gradient").
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

struct Node {
  std::string op;              // op name, for error messages
  std::vector<Tensor> inputs;  // in the order the closure returns their gradients
  BackwardFn backward;
};

bool grad_enabled();

// Turns recording off for its scope (generation, rollouts, evaluation, optimizer steps).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when `out` of an op over `inputs` must record a node.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Called by ops: marks `out` as produced by `op` from `inputs`, when any input requires grad and
// recording is on. Returns `out` for chaining.
Tensor record(Tensor out, std::string op, std::vector<Tensor> inputs, BackwardFn backward);

// Runs backward from `root`. `grad_output` defaults to 1 for a one-element root; any other root
// needs an explicit gradient of its shape.
void backward(const Tensor& root, const Tensor& grad_output = Tensor());

// Reduces a broadcast gradient back to `shape` (sums the broadcast dims). Used by binary ops.
Tensor sum_to_shape(const Tensor& grad, const Shape& shape);

}  // namespace tiller
