// Validation helpers shared by the op implementations (private to tiller's sources).
//
// Each throws tiller::Error whose message starts with the op name, so a user sees
// "layernorm: weight is (32) but x has C = 64" rather than a failed assertion deep in a kernel.
#pragma once

#include <string>

#include "core/tensor/tensor.h"

namespace tiller::detail {

inline void check_defined(const char* op, const char* name, const Tensor& t) {
  TILLER_CHECK(t.defined(), "{}: {} is undefined", op, name);
}

// A floating tensor the backend can compute on: f32 on CPU, f32 or bf16 on CUDA.
inline void check_float(const char* op, const char* name, const Tensor& t) {
  check_defined(op, name, t);
  TILLER_CHECK(t.dtype() != DType::i32, "{}: {} must be floating point, got i32 {}", op, name,
               shape_str(t.shape()));
  TILLER_CHECK(t.is_cuda() || t.dtype() == DType::f32,
               "{}: the CPU backend computes in f32 but {} is {}; convert with .to(DType::f32)",
               op, name, dtype_name(t.dtype()));
}

inline void check_i32(const char* op, const char* name, const Tensor& t) {
  check_defined(op, name, t);
  TILLER_CHECK(t.dtype() == DType::i32, "{}: {} must be i32 token ids, got {} {}", op, name,
               dtype_name(t.dtype()), shape_str(t.shape()));
}

inline void check_same_device(const char* op, const Tensor& a, const char* a_name,
                              const Tensor& b, const char* b_name) {
  TILLER_CHECK(a.device() == b.device(), "{}: {} is on {} but {} is on {}", op, a_name,
               a.device().str(), b_name, b.device().str());
}

inline void check_same_dtype(const char* op, const Tensor& a, const char* a_name,
                             const Tensor& b, const char* b_name) {
  TILLER_CHECK(a.dtype() == b.dtype(), "{}: {} is {} but {} is {}", op, a_name,
               dtype_name(a.dtype()), b_name, dtype_name(b.dtype()));
}

// Both float, same device, same dtype.
inline void check_pair(const char* op, const Tensor& a, const char* a_name, const Tensor& b,
                       const char* b_name) {
  check_float(op, a_name, a);
  check_float(op, b_name, b);
  check_same_device(op, a, a_name, b, b_name);
  check_same_dtype(op, a, a_name, b, b_name);
}

inline int64_t normalise_dim(const char* op, int64_t dim, int64_t ndim) {
  int64_t d = dim < 0 ? dim + ndim : dim;
  TILLER_CHECK(d >= 0 && d < ndim, "{}: dim {} out of range for a {}-d tensor", op, dim, ndim);
  return d;
}

// All token ids in [0, V), or equal to `allowed` when given, checked where the ids live
// (kernels/token_check.h): on the CPU at once, on CUDA without copying them to the host (a bad id
// is raised at the next host synchronisation). With `want_divisor`, returns an f32 scalar on the
// ids' device holding max(1, number of ids that are not `allowed`) — cross_entropy's mean divides
// by it; otherwise an undefined tensor.
Tensor check_token_range(const char* op, const char* name, const Tensor& ids, int64_t V,
                         const int32_t* allowed = nullptr, bool want_divisor = false);

// A new uninitialised tensor like `t` (same dtype and device) with the given shape.
inline Tensor empty_like(const Tensor& t, const Shape& shape) {
  return Tensor::empty(shape, {.dtype = t.dtype(), .device = t.device()});
}
inline Tensor empty_like(const Tensor& t) { return empty_like(t, t.shape()); }

// A new f32 tensor on t's device.
inline Tensor empty_f32(const Tensor& t, const Shape& shape) {
  return Tensor::empty(shape, {.dtype = DType::f32, .device = t.device()});
}

}  // namespace tiller::detail
