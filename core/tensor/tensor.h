// Tensor: a shared handle to an n-dimensional, row-major, contiguous array on one device.
//
// Design choice: every tensor is contiguous. `reshape` is the only view (it shares storage);
// `transpose`, `permute`, `slice` (along any dim, dim 0 included) and `concat` (core/ops/ops.h)
// materialise a new tensor. A transformer needs few views, and contiguous-only
// kernels are simpler and faster than stride-generic ones.
//
// Autograd state (requires_grad, grad, the node that produced the tensor) lives on the impl, so
// every handle to the same impl sees the same gradient — PyTorch semantics.
//
// Invariants: storage->bytes >= offset + numel * dtype_size; shape entries are >= 0.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/dtype.h"

namespace tiller {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& shape);  // "(2,4,128,64)"
int64_t shape_numel(const Shape& shape);

struct Device {
  enum class Kind : uint8_t { cpu, cuda };
  Kind kind = Kind::cpu;
  int index = 0;

  static Device cpu() { return {}; }
  static Device cuda(int index = 0) { return {Kind::cuda, index}; }
  static Device parse(const std::string& text);  // "cpu", "cuda", "cuda:1"
  bool is_cpu() const { return kind == Kind::cpu; }
  bool is_cuda() const { return kind == Kind::cuda; }
  std::string str() const;
  bool operator==(const Device&) const = default;
};

bool cuda_available();

struct TensorOptions {
  DType dtype = DType::f32;
  Device device = Device::cpu();
  bool requires_grad = false;

  TensorOptions with(DType d) const { auto o = *this; o.dtype = d; return o; }
  TensorOptions with(Device d) const { auto o = *this; o.device = d; return o; }
  TensorOptions grad(bool r = true) const { auto o = *this; o.requires_grad = r; return o; }
};

// Owns one allocation. Freed through the device's allocator when the last tensor lets go.
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device;

  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct Node;
struct TensorImpl;

// Counter-based generator state: (seed, offset). Each draw of n numbers uses counters
// [offset, offset + n) and advances offset by n, so saving these two integers is a full resume.
struct Generator {
  uint64_t seed = 0;
  uint64_t offset = 0;

  explicit Generator(uint64_t s = 0) : seed(s) {}
  uint64_t take(uint64_t n) { uint64_t o = offset; offset += n; return o; }
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // --- creation -------------------------------------------------------------------------------
  static Tensor empty(const Shape& shape, TensorOptions options = {});
  static Tensor zeros(const Shape& shape, TensorOptions options = {});
  static Tensor ones(const Shape& shape, TensorOptions options = {});
  static Tensor full(const Shape& shape, float value, TensorOptions options = {});
  static Tensor arange(int64_t n, TensorOptions options = {});  // 0, 1, ..., n-1
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape,
                            TensorOptions options = {});
  static Tensor from_ints(const std::vector<int32_t>& values, const Shape& shape,
                          TensorOptions options = {.dtype = DType::i32});
  static Tensor randn(const Shape& shape, Generator& gen, float mean = 0.f, float std = 1.f,
                      TensorOptions options = {});
  static Tensor rand(const Shape& shape, Generator& gen, float low = 0.f, float high = 1.f,
                     TensorOptions options = {});

  // --- metadata -------------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  bool is_cuda() const { return device().is_cuda(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  std::string str() const;  // "Tensor(2,3) f32 cpu"

  // --- data -----------------------------------------------------------------------------------
  void* data_ptr() const;
  template <typename T>
  T* data() const { return static_cast<T*>(data_ptr()); }  // raw pointer; no device check
  float item() const;                                         // one element, as float
  std::vector<float> to_vector() const;                      // copy to host, as float
  std::vector<int32_t> to_int_vector() const;                // copy to host, i32 only

  // --- conversion (never recorded by autograd except `to(dtype)` on float tensors) ------------
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  Tensor clone() const;  // a contiguous copy on the same device, not recorded
  void copy_(const Tensor& src) const;  // in-place copy of same shape (any dtype/device), not recorded
  void zero_() const;
  void fill_(float value) const;

  // Views sharing storage (recorded by autograd like any op).
  Tensor reshape(const Shape& shape) const;  // one entry may be -1
  Tensor flatten(int64_t start_dim = 0) const;

  // --- autograd -------------------------------------------------------------------------------
  bool requires_grad() const;
  Tensor& requires_grad_(bool value = true);
  Tensor grad() const;          // undefined until a backward reaches this tensor
  void set_grad(const Tensor& grad) const;
  void zero_grad() const;       // drops the gradient (next backward writes a fresh one)
  std::shared_ptr<Node> grad_fn() const;
  bool is_leaf() const { return grad_fn() == nullptr; }
  Tensor detach() const;        // same storage, no history
  void backward(const Tensor& grad_output = Tensor()) const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  Shape shape;
  DType dtype = DType::f32;
  Device device;
  std::shared_ptr<Storage> storage;
  size_t offset = 0;  // bytes from storage->data to element 0

  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);  // shape, dtype and values
std::string format_values(const Tensor& t, int64_t max_elements = 16);

}  // namespace tiller
