// Global gradient norm and clipping; see clip.h.
#include "optim/clip.h"

#include <algorithm>
#include <cmath>

#include "core/tensor/autograd.h"
#include "core/tensor/dispatch.h"
#include "core/ops/ops.h"
#include "kernels/reduce.h"

namespace tiller::optim {

namespace {
constexpr float kClipEpsilon = 1e-6f;  // PyTorch's guard against dividing by a zero norm
}

float global_grad_norm(const ParameterList& params) {
  Tensor total;  // one f32 scalar on the gradients' device, created at the first gradient
  for (const NamedParameter& p : params) {
    Tensor g = p.tensor.grad();
    if (!g.defined()) continue;
    if (!total.defined()) {
      total = Tensor::zeros({1}, {.dtype = DType::f32, .device = g.device()});
    }
    TILLER_CHECK(g.device() == total.device(),
                 "global_grad_norm: gradient of '{}' is on {} but earlier gradients are on {}",
                 p.name, g.device().str(), total.device().str());
    TILLER_CHECK(g.dtype() != DType::i32, "global_grad_norm: gradient of '{}' is i32", p.name);
    if (g.numel() > 0)
      TILLER_DISPATCH(g.device(), kernels::sum_squares, g.data_ptr(), g.numel(),
                      total.data<float>(), g.dtype());
  }
  return total.defined() ? std::sqrt(total.item()) : 0.f;
}

float clip_factor(float norm, float max_norm) {
  TILLER_CHECK(max_norm > 0.f, "clip_factor: max_norm must be positive, got {}", max_norm);
  if (!std::isfinite(norm)) return 1.f;
  return std::min(1.f, max_norm / (norm + kClipEpsilon));
}

GradNorm clip_grad_norm(const ParameterList& params, float max_norm) {
  GradNorm result;
  result.norm = global_grad_norm(params);
  result.finite = std::isfinite(result.norm);
  result.scale = clip_factor(result.norm, max_norm);
  if (!result.finite || result.scale >= 1.f) return result;
  NoGradGuard no_grad;
  for (const NamedParameter& p : params) {
    Tensor g = p.tensor.grad();
    if (g.defined()) p.tensor.set_grad(scale(g, result.scale));
  }
  return result;
}

}  // namespace tiller::optim
