// Elementwise ops: broadcasting binary arithmetic, unary functions and activations.
//
// Binary ops follow numpy broadcasting; their backward reduces the upstream gradient back to
// each input's shape with sum_to_shape. Unary backward re-reads the saved input (not the output),
// which keeps one rule for every function, including non-invertible ones (relu, abs).
#include <algorithm>

#include "core/tensor/dispatch.h"
#include "core/tensor/op_checks.h"
#include "core/ops/ops.h"
#include "kernels/elementwise.h"

namespace tiller {

using detail::check_float;
using detail::check_pair;
using detail::empty_like;

namespace {

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    TILLER_CHECK(da == db || da == 1 || db == 1, "{}: shapes {} and {} do not broadcast", op,
                 shape_str(a), shape_str(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

kernels::BroadcastShape make_broadcast(const char* op, const Shape& out, const Shape& a,
                                       const Shape& b) {
  TILLER_CHECK(out.size() <= static_cast<size_t>(kernels::kMaxDims),
               "{}: at most {} dims, got {}", op, kernels::kMaxDims, shape_str(out));
  kernels::BroadcastShape s;
  s.ndim = static_cast<int>(out.size());
  auto strides = [&](const Shape& in, int64_t* dst) {
    int64_t stride = 1;
    for (int d = s.ndim - 1; d >= 0; --d) {
      int64_t k = d - (s.ndim - static_cast<int>(in.size()));
      int64_t size = k >= 0 ? in[k] : 1;
      dst[d] = size == 1 ? 0 : stride;
      stride *= size;
    }
  };
  for (int d = 0; d < s.ndim; ++d) s.shape[d] = out[d];
  strides(a, s.a_stride);
  strides(b, s.b_stride);
  return s;
}

Tensor binary_raw(kernels::BinaryOp op, const char* name, const Tensor& a, const Tensor& b) {
  check_pair(name, a, "a", b, "b");
  Shape shape = broadcast_shapes(name, a.shape(), b.shape());
  Tensor out = empty_like(a, shape);
  if (out.numel() == 0) return out;
  auto bs = make_broadcast(name, shape, a.shape(), b.shape());
  TILLER_DISPATCH(a.device(), kernels::binary, op, a.data_ptr(), b.data_ptr(), out.data_ptr(), bs,
                  a.dtype());
  return out;
}

Tensor unary_raw(kernels::UnaryOp op, const char* name, const Tensor& x) {
  check_float(name, "x", x);
  Tensor out = empty_like(x);
  TILLER_DISPATCH(x.device(), kernels::unary, op, x.data_ptr(), out.data_ptr(), x.numel(),
                  x.dtype());
  return out;
}

Tensor unary_op(kernels::UnaryOp op, const char* name, const Tensor& x) {
  Tensor out = unary_raw(op, name, x);
  return record(out, name, {x}, [op, x](const Tensor& g) -> std::vector<Tensor> {
    Tensor dx = empty_like(x);
    TILLER_DISPATCH(x.device(), kernels::unary_backward, op, x.data_ptr(), g.data_ptr(),
                    dx.data_ptr(), x.numel(), x.dtype());
    return {dx};
  });
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(kernels::BinaryOp::add, "add", a, b);
  return record(out, "add", {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{sum_to_shape(g, sa), sum_to_shape(g, sb)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(kernels::BinaryOp::sub, "sub", a, b);
  return record(out, "sub", {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{sum_to_shape(g, sa), sum_to_shape(neg(g), sb)};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(kernels::BinaryOp::mul, "mul", a, b);
  return record(out, "mul", {a, b}, [a, b](const Tensor& g) {
    Tensor ga = a.requires_grad() ? sum_to_shape(mul(g, b), a.shape()) : Tensor();
    Tensor gb = b.requires_grad() ? sum_to_shape(mul(g, a), b.shape()) : Tensor();
    return std::vector<Tensor>{ga, gb};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(kernels::BinaryOp::div, "div", a, b);
  // The closure keeps a detached handle to the quotient: capturing `out` itself would make out's
  // node own out (a reference cycle that leaks when no backward runs).
  return record(out, "div", {a, b}, [a, b, quotient = out.detach()](const Tensor& g) {
    Tensor ga = a.requires_grad() ? sum_to_shape(div(g, b), a.shape()) : Tensor();
    // d(a/b)/db = -(a/b)/b
    Tensor gb =
        b.requires_grad() ? sum_to_shape(neg(div(mul(g, quotient), b)), b.shape()) : Tensor();
    return std::vector<Tensor>{ga, gb};
  });
}

namespace {
Tensor select_op(bool take_max, const char* name, const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw(take_max ? kernels::BinaryOp::maximum : kernels::BinaryOp::minimum,
                          name, a, b);
  return record(out, name, {a, b}, [take_max, a, b](const Tensor& g) {
    // 1 where a won (ties go to a), 0 where b did.
    Tensor mask = binary_raw(take_max ? kernels::BinaryOp::greater_equal
                                      : kernels::BinaryOp::less_equal,
                             "select_mask", a, b);
    Tensor ga = sum_to_shape(mul(g, mask), a.shape());
    Tensor gb = sum_to_shape(mul(g, add_scalar(neg(mask), 1.f)), b.shape());
    return std::vector<Tensor>{ga, gb};
  });
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return select_op(true, "maximum", a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return select_op(false, "minimum", a, b); }

Tensor scale(const Tensor& x, float factor) {
  check_float("scale", "x", x);
  Tensor out = empty_like(x);
  TILLER_DISPATCH(x.device(), kernels::affine, x.data_ptr(), out.data_ptr(), x.numel(), factor,
                  0.f, x.dtype());
  return record(out, "scale", {x}, [factor](const Tensor& g) {
    return std::vector<Tensor>{scale(g, factor)};
  });
}

Tensor add_scalar(const Tensor& x, float value) {
  check_float("add_scalar", "x", x);
  Tensor out = empty_like(x);
  TILLER_DISPATCH(x.device(), kernels::affine, x.data_ptr(), out.data_ptr(), x.numel(), 1.f,
                  value, x.dtype());
  return record(out, "add_scalar", {x}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor neg(const Tensor& x) { return unary_op(kernels::UnaryOp::neg, "neg", x); }
Tensor exp(const Tensor& x) { return unary_op(kernels::UnaryOp::exp, "exp", x); }
Tensor log(const Tensor& x) { return unary_op(kernels::UnaryOp::log, "log", x); }
Tensor sqrt(const Tensor& x) { return unary_op(kernels::UnaryOp::sqrt, "sqrt", x); }
Tensor square(const Tensor& x) { return unary_op(kernels::UnaryOp::square, "square", x); }
Tensor abs(const Tensor& x) { return unary_op(kernels::UnaryOp::abs, "abs", x); }
Tensor tanh(const Tensor& x) { return unary_op(kernels::UnaryOp::tanh, "tanh", x); }
Tensor sigmoid(const Tensor& x) { return unary_op(kernels::UnaryOp::sigmoid, "sigmoid", x); }
Tensor logsigmoid(const Tensor& x) {
  return unary_op(kernels::UnaryOp::logsigmoid, "logsigmoid", x);
}
Tensor relu(const Tensor& x) { return unary_op(kernels::UnaryOp::relu, "relu", x); }
Tensor gelu(const Tensor& x) { return unary_op(kernels::UnaryOp::gelu, "gelu", x); }
Tensor silu(const Tensor& x) { return unary_op(kernels::UnaryOp::silu, "silu", x); }

Tensor swiglu(const Tensor& gate, const Tensor& up) {
  check_pair("swiglu", gate, "gate", up, "up");
  TILLER_CHECK(gate.shape() == up.shape(), "swiglu: gate is {} but up is {}",
               shape_str(gate.shape()), shape_str(up.shape()));
  Tensor out = empty_like(gate);
  TILLER_DISPATCH(gate.device(), kernels::swiglu, gate.data_ptr(), up.data_ptr(), out.data_ptr(),
                  gate.numel(), gate.dtype());
  return record(out, "swiglu", {gate, up}, [gate, up](const Tensor& g) {
    Tensor dgate = empty_like(gate), dup = empty_like(up);
    TILLER_DISPATCH(gate.device(), kernels::swiglu_backward, gate.data_ptr(), up.data_ptr(),
                    g.data_ptr(), dgate.data_ptr(), dup.data_ptr(), gate.numel(), gate.dtype());
    return std::vector<Tensor>{dgate, dup};
  });
}

Tensor clamp(const Tensor& x, float low, float high) {
  check_float("clamp", "x", x);
  TILLER_CHECK(low <= high, "clamp: low {} > high {}", low, high);
  Tensor out = empty_like(x);
  TILLER_DISPATCH(x.device(), kernels::clamp, x.data_ptr(), out.data_ptr(), x.numel(), low, high,
                  x.dtype());
  return record(out, "clamp", {x}, [x, low, high](const Tensor& g) {
    Tensor dx = empty_like(x);
    TILLER_DISPATCH(x.device(), kernels::clamp_backward, x.data_ptr(), g.data_ptr(),
                    dx.data_ptr(), x.numel(), low, high, x.dtype());
    return std::vector<Tensor>{dx};
  });
}

}  // namespace tiller
