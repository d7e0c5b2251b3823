// Tensor creation, metadata, conversion and printing.
#include "core/tensor/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ostream>
#include <sstream>

#include "core/tensor/autograd.h"
#include "core/tensor/dispatch.h"
#include "kernels/elementwise.h"
#include "kernels/memory.h"

namespace tiller {

std::string shape_str(const Shape& shape) { return fmt::format("({})", fmt::join(shape, ",")); }

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    try {
      return cuda(std::stoi(text.substr(5)));
    } catch (const std::exception&) {
    }
  }
  fail("Device: cannot parse '{}' (expected cpu, cuda or cuda:N)", text);
}

std::string Device::str() const { return is_cpu() ? "cpu" : fmt::format("cuda:{}", index); }

bool cuda_available() { return kernels::cuda::available(); }

Storage::Storage(size_t n, Device d) : bytes(n), device(d) {
  if (d.is_cpu()) {
    data = kernels::cpu::allocate(n);
  } else {
    TILLER_CHECK(cuda_available(), "Tensor: cannot allocate on {}: no CUDA device available",
                 d.str());
    data = kernels::cuda::allocate(n, d.index);
  }
}

Storage::~Storage() {
  if (!data) return;
  if (device.is_cpu()) {
    kernels::cpu::release(data);
  } else {
    kernels::cuda::release(data, device.index);
  }
}

// --- creation ---------------------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, TensorOptions options) {
  for (int64_t s : shape) TILLER_CHECK(s >= 0, "Tensor: negative size in shape {}", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = options.dtype;
  impl->device = options.device;
  impl->storage = std::make_shared<Storage>(
      std::max<size_t>(1, shape_numel(shape) * dtype_size(options.dtype)), options.device);
  impl->requires_grad = options.requires_grad;
  return Tensor(impl);
}

Tensor Tensor::zeros(const Shape& shape, TensorOptions options) { return full(shape, 0.f, options); }
Tensor Tensor::ones(const Shape& shape, TensorOptions options) { return full(shape, 1.f, options); }

Tensor Tensor::full(const Shape& shape, float value, TensorOptions options) {
  Tensor t = empty(shape, options);
  t.fill_(value);
  return t;
}

Tensor Tensor::arange(int64_t n, TensorOptions options) {
  std::vector<float> values(n);
  for (int64_t i = 0; i < n; ++i) values[i] = static_cast<float>(i);
  return from_vector(values, {n}, options);
}

namespace {
// Builds a CPU tensor of `src_dtype` over host data, then converts to the requested options.
Tensor from_host(const void* data, DType src_dtype, const Shape& shape, TensorOptions options) {
  Tensor host = Tensor::empty(shape, {.dtype = src_dtype});
  if (host.nbytes() > 0) std::memcpy(host.data_ptr(), data, host.nbytes());  // data may be null
  Tensor t = host.to(options.dtype).to(options.device);
  t.impl()->requires_grad = options.requires_grad;
  return t;
}
}  // namespace

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape,
                           TensorOptions options) {
  TILLER_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape),
               "Tensor::from_vector: {} values do not fill shape {}", values.size(),
               shape_str(shape));
  return from_host(values.data(), DType::f32, shape, options);
}

Tensor Tensor::from_ints(const std::vector<int32_t>& values, const Shape& shape,
                         TensorOptions options) {
  TILLER_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape),
               "Tensor::from_ints: {} values do not fill shape {}", values.size(),
               shape_str(shape));
  return from_host(values.data(), DType::i32, shape, options);
}

Tensor Tensor::randn(const Shape& shape, Generator& gen, float mean, float std,
                     TensorOptions options) {
  TILLER_CHECK(options.dtype != DType::i32, "Tensor::randn: dtype must be floating, got i32");
  Tensor t = empty(shape, options);
  uint64_t offset = gen.take(static_cast<uint64_t>(t.numel()));
  TILLER_DISPATCH(t.device(), kernels::fill_normal, t.data_ptr(), t.numel(), gen.seed, offset,
                  mean, std, t.dtype());
  return t;
}

Tensor Tensor::rand(const Shape& shape, Generator& gen, float low, float high,
                    TensorOptions options) {
  TILLER_CHECK(options.dtype != DType::i32, "Tensor::rand: dtype must be floating, got i32");
  Tensor t = empty(shape, options);
  uint64_t offset = gen.take(static_cast<uint64_t>(t.numel()));
  TILLER_DISPATCH(t.device(), kernels::fill_uniform, t.data_ptr(), t.numel(), gen.seed, offset,
                  low, high, t.dtype());
  return t;
}

// --- metadata ---------------------------------------------------------------------------------

const Shape& Tensor::shape() const {
  TILLER_CHECK(impl_, "Tensor: use of an undefined tensor");
  return impl_->shape;
}

int64_t Tensor::size(int64_t d) const {
  int64_t n = dim();
  int64_t i = d < 0 ? d + n : d;
  TILLER_CHECK(i >= 0 && i < n, "Tensor::size: dim {} out of range for shape {}", d,
               shape_str(shape()));
  return impl_->shape[i];
}

int64_t Tensor::numel() const { return shape_numel(shape()); }
DType Tensor::dtype() const {
  TILLER_CHECK(impl_, "Tensor::dtype: use of an undefined tensor");
  return impl_->dtype;
}
Device Tensor::device() const {
  TILLER_CHECK(impl_, "Tensor::device: use of an undefined tensor");
  return impl_->device;
}

std::string Tensor::str() const {
  if (!impl_) return "Tensor(undefined)";
  return fmt::format("Tensor{} {} {}", shape_str(shape()), dtype_name(dtype()), device().str());
}

void* Tensor::data_ptr() const {
  TILLER_CHECK(impl_, "Tensor: use of an undefined tensor");
  return static_cast<char*>(impl_->storage->data) + impl_->offset;
}

float Tensor::item() const {
  TILLER_CHECK(numel() == 1, "Tensor::item: tensor has {} elements, shape {}", numel(),
               shape_str(shape()));
  return to_vector()[0];
}

std::vector<float> Tensor::to_vector() const {
  Tensor host = to(Device::cpu()).to(DType::f32);
  const float* p = host.data<float>();
  return std::vector<float>(p, p + host.numel());
}

std::vector<int32_t> Tensor::to_int_vector() const {
  TILLER_CHECK(dtype() == DType::i32, "Tensor::to_int_vector: dtype is {}, expected i32",
               dtype_name(dtype()));
  Tensor host = to(Device::cpu());
  const int32_t* p = host.data<int32_t>();
  return std::vector<int32_t>(p, p + host.numel());
}

// --- conversion -------------------------------------------------------------------------------

Tensor Tensor::to(Device target) const {
  if (device() == target) return *this;
  Tensor out = empty(shape(), {.dtype = dtype(), .device = target});
  if (nbytes() == 0) return out;
  if (device().is_cpu() && target.is_cuda()) {
    kernels::cuda::set_device(target.index);
    kernels::cuda::copy_host_to_device(out.data_ptr(), data_ptr(), nbytes());
  } else if (device().is_cuda() && target.is_cpu()) {
    kernels::cuda::copy_device_to_host(out.data_ptr(), data_ptr(), nbytes());
  } else {
    // Peer copy between two CUDA devices goes through the host: rare, and always correct.
    to(Device::cpu()).to(target).impl()->storage.swap(out.impl()->storage);
  }
  return out;
}

Tensor Tensor::to(DType target) const {
  if (dtype() == target) return *this;
  Tensor out = empty(shape(), {.dtype = target, .device = device()});
  TILLER_DISPATCH(device(), kernels::cast, data_ptr(), dtype(), out.data_ptr(), target, numel());
  bool float_to_float = dtype() != DType::i32 && target != DType::i32;
  if (float_to_float && needs_grad({this})) {
    DType source = dtype();
    return record(out, "to", {*this}, [source](const Tensor& g) -> std::vector<Tensor> {
      return {g.to(source)};
    });
  }
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), {.dtype = dtype(), .device = device()});
  out.copy_(*this);
  return out;
}

void Tensor::copy_(const Tensor& src) const {
  TILLER_CHECK(src.shape() == shape(), "Tensor::copy_: source {} but destination {}",
               shape_str(src.shape()), shape_str(shape()));
  Tensor s = src.to(device()).to(dtype());
  if (nbytes() == 0) return;
  if (device().is_cpu()) {
    std::memcpy(data_ptr(), s.data_ptr(), nbytes());
  } else {
    kernels::cuda::copy_device_to_device(data_ptr(), s.data_ptr(), nbytes());
  }
}

void Tensor::zero_() const { fill_(0.f); }

void Tensor::fill_(float value) const {
  TILLER_DISPATCH(device(), kernels::fill, data_ptr(), numel(), value, dtype());
}

Tensor Tensor::reshape(const Shape& target) const {
  Shape resolved = target;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < resolved.size(); ++i) {
    if (resolved[i] == -1) {
      TILLER_CHECK(infer < 0, "reshape: more than one -1 in {}", shape_str(target));
      infer = static_cast<int64_t>(i);
    } else {
      known *= resolved[i];
    }
  }
  if (infer >= 0 && known > 0) resolved[infer] = numel() / known;
  TILLER_CHECK(shape_numel(resolved) == numel(), "reshape: cannot view {} as {}",
               shape_str(shape()), shape_str(target));
  auto impl = std::make_shared<TensorImpl>(*impl_);
  impl->shape = resolved;
  impl->grad = Tensor();
  impl->grad_fn = nullptr;
  impl->requires_grad = false;
  Tensor out(impl);
  if (!needs_grad({this})) return out;
  Shape original = shape();
  return record(out, "reshape", {*this}, [original](const Tensor& g) -> std::vector<Tensor> {
    return {g.reshape(original)};
  });
}

Tensor Tensor::flatten(int64_t start_dim) const {
  int64_t n = dim();
  int64_t s = start_dim < 0 ? start_dim + n : start_dim;
  TILLER_CHECK(s >= 0 && s < std::max<int64_t>(n, 1), "flatten: start_dim {} for shape {}",
               start_dim, shape_str(shape()));
  Shape target(shape().begin(), shape().begin() + s);
  target.push_back(-1);
  return reshape(target);
}

// --- autograd accessors -----------------------------------------------------------------------

bool Tensor::requires_grad() const { return impl_ && impl_->requires_grad; }

Tensor& Tensor::requires_grad_(bool value) {
  TILLER_CHECK(!value || dtype() != DType::i32, "requires_grad_: i32 tensors have no gradient");
  impl_->requires_grad = value;
  return *this;
}

Tensor Tensor::grad() const { return impl_ ? impl_->grad : Tensor(); }

void Tensor::set_grad(const Tensor& g) const {
  TILLER_CHECK(!g.defined() || g.shape() == shape(), "set_grad: gradient {} for tensor {}",
               g.defined() ? shape_str(g.shape()) : "undefined", shape_str(shape()));
  impl_->grad = g;
}

void Tensor::zero_grad() const { impl_->grad = Tensor(); }
std::shared_ptr<Node> Tensor::grad_fn() const { return impl_ ? impl_->grad_fn : nullptr; }

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>(*impl_);
  impl->grad = Tensor();
  impl->grad_fn = nullptr;
  impl->requires_grad = false;
  return Tensor(impl);
}

void Tensor::backward(const Tensor& grad_output) const { tiller::backward(*this, grad_output); }

// --- printing ---------------------------------------------------------------------------------

std::string format_values(const Tensor& t, int64_t max_elements) {
  if (!t.defined()) return "undefined";
  std::vector<float> v = t.to_vector();
  std::string out = "[";
  int64_t n = std::min<int64_t>(max_elements, static_cast<int64_t>(v.size()));
  for (int64_t i = 0; i < n; ++i) out += fmt::format("{}{:.6g}", i ? ", " : "", v[i]);
  if (n < static_cast<int64_t>(v.size())) out += ", ...";
  return out + "]";
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  return os << t.str() << " " << format_values(t);
}

}  // namespace tiller
