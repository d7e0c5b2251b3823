// layernorm and rmsnorm over the last dim (kernels/layernorm.h).
//
// Leading dims are flattened to N rows of C. Each op is one autograd node: the forward saves the
// per-row f32 statistics (mean and 1/std, or 1/rms) and the backward kernel produces dx,
// dweight and dbias in one call. The kernel always writes all of them, so a gradient is returned
// only for inputs that require one. The fused residual variant of the kernel has no op of its
// own here: the model code that wants it calls it when it adds that layer.
#include "core/tensor/dispatch.h"
#include "core/tensor/op_checks.h"
#include "core/ops/ops.h"
#include "kernels/layernorm.h"

namespace tiller {

using detail::check_pair;
using detail::empty_f32;
using detail::empty_like;

namespace {

// Checks x (..., C) against a (C) parameter and returns C.
int64_t check_norm_param(const char* op, const Tensor& x, const Tensor& param, const char* name) {
  check_pair(op, x, "x", param, name);
  TILLER_CHECK(x.dim() >= 1 && x.size(-1) > 0, "{}: x must have a non-empty last dim, got {}", op,
               shape_str(x.shape()));
  int64_t C = x.size(-1);
  TILLER_CHECK(param.dim() == 1 && param.size(0) == C, "{}: {} is {} but x has last dim {}", op,
               name, shape_str(param.shape()), C);
  return C;
}

void check_eps(const char* op, float eps) {
  TILLER_CHECK(eps >= 0.f, "{}: eps must be >= 0, got {}", op, eps);
}

}  // namespace

Tensor layernorm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  const char* op = "layernorm";
  int64_t C = check_norm_param(op, x, weight, "weight");
  if (bias.defined()) check_norm_param(op, x, bias, "bias");
  check_eps(op, eps);
  int64_t N = x.numel() / C;
  Tensor y = empty_like(x);
  Tensor mean = empty_f32(x, {N}), rstd = empty_f32(x, {N});
  if (N > 0)
    TILLER_DISPATCH(x.device(), kernels::layernorm_forward, x.data_ptr(), weight.data_ptr(),
                    bias.defined() ? bias.data_ptr() : nullptr, y.data_ptr(), mean.data<float>(),
                    rstd.data<float>(), N, C, eps, x.dtype());
  std::vector<Tensor> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  return record(y, op, inputs, [x, weight, bias, mean, rstd, N, C](const Tensor& g) {
    Tensor dx = empty_like(x), dweight = empty_like(weight);
    Tensor dbias = bias.defined() ? empty_like(bias) : Tensor();
    Tensor dy = g.to(x.dtype());
    TILLER_DISPATCH(x.device(), kernels::layernorm_backward, dy.data_ptr(), x.data_ptr(),
                    weight.data_ptr(), mean.data<float>(), rstd.data<float>(), dx.data_ptr(),
                    dweight.data_ptr(), dbias.defined() ? dbias.data_ptr() : nullptr, N, C,
                    x.dtype());
    std::vector<Tensor> grads{x.requires_grad() ? dx : Tensor(),
                              weight.requires_grad() ? dweight : Tensor()};
    if (bias.defined()) grads.push_back(bias.requires_grad() ? dbias : Tensor());
    return grads;
  });
}

Tensor rmsnorm(const Tensor& x, const Tensor& weight, float eps) {
  const char* op = "rmsnorm";
  int64_t C = check_norm_param(op, x, weight, "weight");
  check_eps(op, eps);
  int64_t N = x.numel() / C;
  Tensor y = empty_like(x);
  Tensor rrms = empty_f32(x, {N});
  if (N > 0)
    TILLER_DISPATCH(x.device(), kernels::rmsnorm_forward, x.data_ptr(), weight.data_ptr(),
                    y.data_ptr(), rrms.data<float>(), N, C, eps, x.dtype());
  return record(y, op, {x, weight}, [x, weight, rrms, N, C](const Tensor& g) {
    Tensor dx = empty_like(x), dweight = empty_like(weight);
    Tensor dy = g.to(x.dtype());
    TILLER_DISPATCH(x.device(), kernels::rmsnorm_backward, dy.data_ptr(), x.data_ptr(),
                    weight.data_ptr(), rrms.data<float>(), dx.data_ptr(), dweight.data_ptr(), N,
                    C, x.dtype());
    return std::vector<Tensor>{x.requires_grad() ? dx : Tensor(),
                               weight.requires_grad() ? dweight : Tensor()};
  });
}

}  // namespace tiller
