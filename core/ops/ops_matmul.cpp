// matmul and linear. Both lower to one strided-batched GEMM call (kernels/matmul.h).
//
// linear is one autograd node rather than matmul + add: its backward needs exactly two GEMMs and
// one column sum, and the forward adds the bias in place.
#include "core/tensor/dispatch.h"
#include "core/tensor/op_checks.h"
#include "core/ops/ops.h"
#include "kernels/matmul.h"

namespace tiller {

using detail::check_pair;
using detail::empty_like;

namespace {

// Unrecorded C = op(a) @ op(b) for a (..., *, *) and b (..., *, *) or 2-D b shared by the batch.
Tensor gemm_raw(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const char* op = "matmul";
  check_pair(op, a, "a", b, "b");
  TILLER_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: a {} and b {} must both be at least 2-d",
               shape_str(a.shape()), shape_str(b.shape()));
  int64_t M = ta ? a.size(-1) : a.size(-2);
  int64_t K = ta ? a.size(-2) : a.size(-1);
  int64_t Kb = tb ? b.size(-1) : b.size(-2);
  int64_t N = tb ? b.size(-2) : b.size(-1);
  TILLER_CHECK(K == Kb, "matmul: a {}{} and b {}{} have inner dims {} and {}",
               shape_str(a.shape()), ta ? "^T" : "", shape_str(b.shape()), tb ? "^T" : "", K, Kb);
  Shape batch_shape(a.shape().begin(), a.shape().end() - 2);
  bool shared_b = b.dim() == 2;
  if (!shared_b) {
    Shape b_batch(b.shape().begin(), b.shape().end() - 2);
    TILLER_CHECK(b_batch == batch_shape, "matmul: batch dims of a {} and b {} differ",
                 shape_str(a.shape()), shape_str(b.shape()));
  }
  int64_t batch = shape_numel(batch_shape);
  Shape out_shape = batch_shape;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = empty_like(a, out_shape);
  kernels::GemmShape s{.batch = batch, .M = M, .N = N, .K = K, .trans_a = ta, .trans_b = tb,
                       .stride_a = M * K, .stride_b = shared_b ? 0 : K * N, .stride_c = M * N};
  if (!ta && shared_b) {  // fold the batch into M: one big GEMM instead of `batch` small ones
    s.M = batch * M;
    s.batch = 1;
  }
  if (out.numel() > 0)
    TILLER_DISPATCH(a.device(), kernels::gemm, s, a.data_ptr(), b.data_ptr(), out.data_ptr(),
                    a.dtype());
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  TILLER_CHECK(!(ta && b.dim() == 2 && a.dim() > 2),
               "matmul: transpose_a with a batched a {} and a shared 2-d b {} is not supported; "
               "transpose a first",
               shape_str(a.shape()), shape_str(b.shape()));
  Tensor out = gemm_raw(a, b, ta, tb);
  return record(out, "matmul", {a, b}, [a, b, ta, tb](const Tensor& g) {
    Tensor da, db;
    if (a.requires_grad()) da = ta ? gemm_raw(b, g, tb, true) : gemm_raw(g, b, false, !tb);
    if (b.requires_grad()) {
      db = tb ? gemm_raw(g, a, true, ta) : gemm_raw(a, g, !ta, false);
      if (b.dim() == 2 && db.dim() > 2) db = sum(db.reshape({-1, b.size(0) * b.size(1)}), 0);
      db = db.reshape(b.shape());
    }
    return std::vector<Tensor>{da, db};
  });
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const char* op = "linear";
  check_pair(op, x, "x", weight, "weight");
  TILLER_CHECK(weight.dim() == 2, "linear: weight must be (out, in), got {}",
               shape_str(weight.shape()));
  TILLER_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1),
               "linear: x is {} but weight is {} (expects last dim {})", shape_str(x.shape()),
               shape_str(weight.shape()), weight.size(1));
  int64_t out_features = weight.size(0), in_features = weight.size(1);
  if (bias.defined()) {
    check_pair(op, weight, "weight", bias, "bias");
    TILLER_CHECK(bias.dim() == 1 && bias.size(0) == out_features,
                 "linear: bias is {} but weight has {} outputs", shape_str(bias.shape()),
                 out_features);
  }
  Tensor x2 = x.detach().reshape({-1, in_features});
  Tensor y = gemm_raw(x2, weight, false, true);
  if (bias.defined())
    TILLER_DISPATCH(x.device(), kernels::add_bias, y.data_ptr(), bias.data_ptr(), y.size(0),
                    out_features, y.dtype());
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  Tensor out = y.reshape(out_shape);
  std::vector<Tensor> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  return record(out, "linear", inputs, [x2, x_shape = x.shape(), x, weight, bias](const Tensor& g) {
    Tensor g2 = g.reshape({-1, weight.size(0)});
    std::vector<Tensor> grads(bias.defined() ? 3 : 2);
    if (x.requires_grad()) grads[0] = gemm_raw(g2, weight, false, false).reshape(x_shape);
    if (weight.requires_grad()) grads[1] = gemm_raw(g2, x2, true, false);
    if (bias.defined() && bias.requires_grad()) grads[2] = sum(g2, 0);
    return grads;
  });
}

}  // namespace tiller
