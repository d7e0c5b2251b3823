// Reductions: sum and mean, over everything or over one dim.
//
// The backward of a sum broadcasts the upstream gradient back over the reduced dim; it is an add
// of zeros and g under broadcasting, which reuses the binary kernel instead of adding an
// "expand" kernel.
#include "core/tensor/dispatch.h"
#include "core/tensor/op_checks.h"
#include "core/ops/ops.h"
#include "kernels/reduce.h"

namespace tiller {

using detail::check_float;
using detail::empty_like;

namespace {
// g (with the reduced dim kept as size 1) broadcast to `shape`.
Tensor expand_to(const Tensor& g, const Shape& shape) {
  NoGradGuard no_grad;
  return add(Tensor::zeros(shape, {.dtype = g.dtype(), .device = g.device()}), g);
}
}  // namespace

Tensor sum(const Tensor& x, int64_t dim, bool keepdim) {
  check_float("sum", "x", x);
  int64_t d = detail::normalize_dim("sum", dim, x.dim());
  int64_t outer = 1, inner = 1, n = x.size(d);
  for (int64_t i = 0; i < d; ++i) outer *= x.size(i);
  for (int64_t i = d + 1; i < x.dim(); ++i) inner *= x.size(i);
  Shape kept = x.shape();
  kept[d] = 1;
  Tensor out = empty_like(x, kept);
  TILLER_DISPATCH(x.device(), kernels::sum_dim, x.data_ptr(), out.data_ptr(), outer, n, inner,
                  x.dtype());
  Shape in_shape = x.shape();
  out = record(out, "sum", {x}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{expand_to(g, in_shape)};
  });
  if (keepdim) return out;
  Shape squeezed = x.shape();
  squeezed.erase(squeezed.begin() + d);
  return out.reshape(squeezed);
}

Tensor sum(const Tensor& x) {
  check_float("sum", "x", x);
  Tensor flat = x.reshape({1, x.numel()});
  return sum(flat, 1, false).reshape({});
}

Tensor mean(const Tensor& x, int64_t dim, bool keepdim) {
  int64_t d = detail::normalize_dim("mean", dim, x.dim());
  TILLER_CHECK(x.size(d) > 0, "mean: dim {} of {} is empty", dim, shape_str(x.shape()));
  return scale(sum(x, d, keepdim), 1.f / static_cast<float>(x.size(d)));
}

Tensor mean(const Tensor& x) {
  TILLER_CHECK(x.numel() > 0, "mean: tensor {} is empty", shape_str(x.shape()));
  return scale(sum(x), 1.f / static_cast<float>(x.numel()));
}

}  // namespace tiller
