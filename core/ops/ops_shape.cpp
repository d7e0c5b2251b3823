// Layout ops that copy: transpose, permute, slice and concat; plus the squeeze/unsqueeze views.
//
// Slicing along dim 0 could be a view, but a copy keeps every tensor contiguous and the rule
// simple (core/tensor.h); slices in a transformer are small next to the matmuls around them.
#include <numeric>

#include "core/tensor/dispatch.h"
#include "core/tensor/op_checks.h"
#include "core/ops/ops.h"
#include "kernels/reduce.h"

namespace tiller {

using detail::empty_like;
using detail::normalize_dim;

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  detail::check_defined("permute", "x", x);
  int64_t n = x.dim();
  TILLER_CHECK(static_cast<int64_t>(dims.size()) == n, "permute: {} dims given for shape {}",
               dims.size(), shape_str(x.shape()));
  TILLER_CHECK(n <= kernels::kMaxDims, "permute: at most {} dims", kernels::kMaxDims);
  std::vector<int> perm(n);
  std::vector<bool> seen(n, false);
  Shape out_shape(n);
  for (int64_t i = 0; i < n; ++i) {
    int64_t d = normalize_dim("permute", dims[i], n);
    TILLER_CHECK(!seen[d], "permute: dim {} repeated in ({})", d, fmt::join(dims, ","));
    seen[d] = true;
    perm[i] = static_cast<int>(d);
    out_shape[i] = x.size(d);
  }
  Tensor out = empty_like(x, out_shape);
  TILLER_DISPATCH(x.device(), kernels::permute, x.data_ptr(), out.data_ptr(), static_cast<int>(n),
                  x.shape().data(), perm.data(), x.dtype());
  std::vector<int64_t> inverse(n);
  for (int64_t i = 0; i < n; ++i) inverse[perm[i]] = i;
  return record(out, "permute", {x}, [inverse](const Tensor& g) {
    return std::vector<Tensor>{permute(g, inverse)};
  });
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  detail::check_defined("transpose", "x", x);
  std::vector<int64_t> dims(x.dim());
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[normalize_dim("transpose", dim0, x.dim())],
            dims[normalize_dim("transpose", dim1, x.dim())]);
  return permute(x, dims);
}

namespace {
// Views x as (outer, size(dim) * inner) rows for copy_rows.
void outer_inner(const Tensor& x, int64_t d, int64_t& outer, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= x.size(i);
  for (int64_t i = d + 1; i < x.dim(); ++i) inner *= x.size(i);
}
}  // namespace

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end) {
  detail::check_defined("slice", "x", x);
  int64_t d = normalize_dim("slice", dim, x.dim());
  int64_t size = x.size(d);
  TILLER_CHECK(0 <= start && start <= end && end <= size,
               "slice: [{}, {}) is not inside dim {} of size {} (shape {})", start, end, d, size,
               shape_str(x.shape()));
  int64_t outer, inner;
  outer_inner(x, d, outer, inner);
  Shape out_shape = x.shape();
  out_shape[d] = end - start;
  Tensor out = empty_like(x, out_shape);
  if (out.numel() > 0)
    TILLER_DISPATCH(x.device(), kernels::copy_rows,
                    static_cast<const char*>(x.data_ptr()) + start * inner * dtype_size(x.dtype()),
                    size * inner, out.data_ptr(), (end - start) * inner, outer,
                    (end - start) * inner, x.dtype());
  Shape in_shape = x.shape();
  return record(out, "slice", {x}, [in_shape, d, start, end, outer, inner](const Tensor& g) {
    Tensor dx = Tensor::zeros(in_shape, {.dtype = g.dtype(), .device = g.device()});
    if (g.numel() > 0)
      TILLER_DISPATCH(g.device(), kernels::copy_rows, g.data_ptr(), (end - start) * inner,
                      static_cast<char*>(dx.data_ptr()) + start * inner * dtype_size(g.dtype()),
                      in_shape[d] * inner, outer, (end - start) * inner, g.dtype());
    return std::vector<Tensor>{dx};
  });
}

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  TILLER_CHECK(!xs.empty(), "concat: no tensors given");
  const Tensor& first = xs[0];
  detail::check_defined("concat", "xs[0]", first);
  int64_t d = normalize_dim("concat", dim, first.dim());
  Shape out_shape = first.shape();
  out_shape[d] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    detail::check_defined("concat", "a tensor", x);
    bool compatible = x.dim() == first.dim() && x.dtype() == first.dtype() &&
                      x.device() == first.device();
    for (int64_t k = 0; compatible && k < x.dim(); ++k)
      compatible = k == d || x.size(k) == first.size(k);
    TILLER_CHECK(compatible, "concat: tensor {} is {} {} {} but tensor 0 is {} {} {} (dim {})", i,
                 shape_str(x.shape()), dtype_name(x.dtype()), x.device().str(),
                 shape_str(first.shape()), dtype_name(first.dtype()), first.device().str(), d);
    out_shape[d] += x.size(d);
  }
  int64_t outer, inner;
  outer_inner(first, d, outer, inner);
  Tensor out = empty_like(first, out_shape);
  int64_t out_row = out_shape[d] * inner, offset = 0;
  size_t elem = dtype_size(first.dtype());
  for (const Tensor& x : xs) {
    int64_t row = x.size(d) * inner;
    if (x.numel() > 0)
      TILLER_DISPATCH(x.device(), kernels::copy_rows, x.data_ptr(), row,
                      static_cast<char*>(out.data_ptr()) + offset * elem, out_row, outer, row,
                      x.dtype());
    offset += row;
  }
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs) sizes.push_back(x.size(d));
  return record(out, "concat", xs, [sizes, d](const Tensor& g) {
    std::vector<Tensor> grads;
    int64_t start = 0;
    for (int64_t s : sizes) {
      grads.push_back(slice(g, d, start, start + s));
      start += s;
    }
    return grads;
  });
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  int64_t d = normalize_dim("unsqueeze", dim, x.dim() + 1);
  Shape s = x.shape();
  s.insert(s.begin() + d, 1);
  return x.reshape(s);
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  int64_t d = normalize_dim("squeeze", dim, x.dim());
  TILLER_CHECK(x.size(d) == 1, "squeeze: dim {} of {} has size {}, not 1", d,
               shape_str(x.shape()), x.size(d));
  Shape s = x.shape();
  s.erase(s.begin() + d);
  return x.reshape(s);
}

}  // namespace tiller
