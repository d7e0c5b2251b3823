// CUDA multi-tensor fused AdamW for kernels/adamw.h: one launch updates every parameter tensor.
//
// A model has hundreds of parameter tensors, many small (biases, norms); one launch per tensor
// would be launch-bound. Instead the host builds two small arrays — one descriptor per tensor
// (pointers, length, weight decay, dtypes) and one (tensor, start) entry per kChunk-element chunk
// — uploads them in one copy, and block b updates chunk b of its tensor. The tables hold nothing
// that changes between steps (lr and the bias corrections travel as kernel arguments), so they
// are uploaded once and reused while they stay byte-identical: a training step makes no blocking
// host-to-device copy here (the upload is a host synchronisation, kernels/memory.h).
// Arithmetic mirrors the CPU reference (kernels/cpu/adamw.cpp, torch.optim.AdamW's order) with
// explicitly rounded intrinsics (__fmul_rn, __fadd_rn, ...): nvcc would otherwise contract
// a * b + c into FMAs and the two backends would drift apart by an ulp per step.
// bf16 parameters are written from the f32 master with stochastic rounding, using the CPU's
// counter (tensor index << 40 | element index) and kernels/random.h, so CUDA and CPU round the
// same elements the same way.
// Bytes per element (f32 master/moments, bf16 grad and param): read 2 + 4 * 3, write 4 * 3 + 2
// = 28; FLOPs ~ 15.
#include <cmath>
#include <cstring>
#include <mutex>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/helpers.cuh"
#include "kernels/memory.h"
#include "kernels/random.h"

namespace tiller::kernels {

using namespace cuda_detail;

namespace {

constexpr int kThreads = 256;
constexpr int64_t kChunk = kThreads * 8;  // elements per block: 8 per thread
constexpr int kTensorIndexShift = 40;     // must match kernels/cpu/adamw.cpp

struct TensorDescriptor {
  float* master;
  uint16_t* param_bf16;  // null when the master is the parameter
  const void* grad;
  float* m;
  float* v;
  int64_t n;
  uint64_t counter_base;
  float weight_decay;  // the kernel computes 1 - lr * weight_decay, as the CPU does on the host
  int grad_is_bf16;
};

struct ChunkRef {
  int64_t tensor;
  int64_t start;
};

struct StepScalars {
  float lr;
  float step_size;              // lr / (1 - beta1^t)
  float bias_correction2_sqrt;  // sqrt(1 - beta2^t)
  float one_minus_beta1, beta2, one_minus_beta2, eps, grad_scale;
  uint64_t seed;
};

__device__ __forceinline__ uint16_t stochastic_bf16(float value, uint64_t seed,
                                                    uint64_t counter) {
  uint32_t u = __float_as_uint(value);
  if ((u & 0x7f800000u) == 0x7f800000u) return float_to_bf16(value);  // inf/NaN: no dithering
  uint32_t dither = static_cast<uint32_t>(random::bits(seed, counter) & 0xffffu);
  return static_cast<uint16_t>((static_cast<uint64_t>(u) + dither) >> 16);
}

__global__ void adamw_kernel(const TensorDescriptor* tensors, const ChunkRef* chunks,
                             StepScalars s) {
  ChunkRef chunk = chunks[blockIdx.x];
  const TensorDescriptor x = tensors[chunk.tensor];
  int64_t end = chunk.start + kChunk < x.n ? chunk.start + kChunk : x.n;
  for (int64_t i = chunk.start + threadIdx.x; i < end; i += blockDim.x) {
    float raw = x.grad_is_bf16 ? bf16_to_float(static_cast<const uint16_t*>(x.grad)[i])
                               : static_cast<const float*>(x.grad)[i];
    float g = __fmul_rn(raw, s.grad_scale);
    float m_old = x.m[i], v_old = x.v[i];
    float m = __fadd_rn(m_old, __fmul_rn(s.one_minus_beta1, __fsub_rn(g, m_old)));  // lerp
    float v = __fadd_rn(__fmul_rn(v_old, s.beta2), __fmul_rn(__fmul_rn(s.one_minus_beta2, g), g));
    float w = __fmul_rn(x.master[i], __fsub_rn(1.f, __fmul_rn(s.lr, x.weight_decay)));
    float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), s.bias_correction2_sqrt), s.eps);
    w = __fsub_rn(w, __fmul_rn(s.step_size, __fdiv_rn(m, denom)));
    x.m[i] = m;
    x.v[i] = v;
    x.master[i] = w;
    if (x.param_bf16 != nullptr) x.param_bf16[i] = stochastic_bf16(w, s.seed, x.counter_base + i);
  }
}

// The device copy of the last tables uploaded, reused while a step's tables are byte-identical.
// One entry: a process trains one model at a time; another optimizer just replaces it.
class TableCache {
 public:
  const unsigned char* device_copy(const std::vector<unsigned char>& tables) {
    std::lock_guard<std::mutex> lock(mutex_);
    int device = 0;
    TILLER_CUDA_CHECK(cudaGetDevice(&device));
    if (device_ != nullptr && device == device_index_ && tables == host_)
      return static_cast<const unsigned char*>(device_);
    if (device_ == nullptr || device != device_index_ || capacity_ < tables.size()) {
      if (device_ != nullptr) cuda::release(device_, device_index_);  // queued kernels first
      device_ = cuda::allocate(tables.size(), device);
      device_index_ = device;
      capacity_ = tables.size();
    }
    cuda::copy_host_to_device(device_, tables.data(), tables.size());
    host_ = tables;
    return static_cast<const unsigned char*>(device_);
  }

 private:
  std::mutex mutex_;
  std::vector<unsigned char> host_;
  void* device_ = nullptr;
  int device_index_ = -1;
  size_t capacity_ = 0;
};

TableCache& table_cache() {
  static auto* cache = new TableCache();  // never destroyed, like the allocator it draws from
  return *cache;
}

}  // namespace

template <>
void adamw_step<Backend::cuda>(const std::vector<AdamWTensor>& tensors, const AdamWHyper& h) {
  TILLER_CHECK(h.step >= 1, "adamw_step: step is 1-based, got {}", h.step);
  std::vector<TensorDescriptor> descriptors;
  std::vector<ChunkRef> chunks;
  descriptors.reserve(tensors.size());
  for (size_t t = 0; t < tensors.size(); ++t) {
    const AdamWTensor& x = tensors[t];
    TILLER_CHECK(x.grad_dtype != DType::i32 && x.param_dtype != DType::i32,
                 "adamw_step: tensor {} has i32 parameter or gradient", t);
    bool write_param = x.param != nullptr && x.param != x.master;
    TILLER_CHECK(!write_param || x.param_dtype == DType::bf16,
                 "adamw_step: tensor {} has a separate {} param; only bf16 params have masters", t,
                 dtype_name(x.param_dtype));
    descriptors.push_back({x.master, write_param ? static_cast<uint16_t*>(x.param) : nullptr,
                           x.grad, x.m, x.v, x.n, static_cast<uint64_t>(t) << kTensorIndexShift,
                           x.weight_decay, x.grad_dtype == DType::bf16 ? 1 : 0});
    for (int64_t start = 0; start < x.n; start += kChunk)
      chunks.push_back({static_cast<int64_t>(t), start});
  }
  if (chunks.empty()) return;
  TILLER_CHECK(chunks.size() <= static_cast<size_t>(INT32_MAX), "adamw_step: {} chunks exceed one grid dimension",
               chunks.size());

  // Same host arithmetic as the CPU reference: bias corrections in double, rounded once.
  double bias_correction1 = 1.0 - std::pow(static_cast<double>(h.beta1), h.step);
  double bias_correction2 = 1.0 - std::pow(static_cast<double>(h.beta2), h.step);
  StepScalars scalars{h.lr,
                      static_cast<float>(h.lr / bias_correction1),
                      static_cast<float>(std::sqrt(bias_correction2)),
                      1.f - h.beta1,
                      h.beta2,
                      1.f - h.beta2,
                      h.eps,
                      h.grad_scale,
                      h.seed};

  // One upload when the tables changed: descriptors, then the chunk map (both 8-byte aligned
  // structs without padding, so equal tables compare equal byte for byte).
  static_assert(sizeof(TensorDescriptor) == 64 && sizeof(ChunkRef) == 16, "padding bytes");
  size_t descriptor_bytes = descriptors.size() * sizeof(TensorDescriptor);
  size_t chunk_bytes = chunks.size() * sizeof(ChunkRef);
  std::vector<unsigned char> staging(descriptor_bytes + chunk_bytes);
  std::memcpy(staging.data(), descriptors.data(), descriptor_bytes);
  std::memcpy(staging.data() + descriptor_bytes, chunks.data(), chunk_bytes);
  const unsigned char* device_tables = table_cache().device_copy(staging);
  auto* device_descriptors = reinterpret_cast<const TensorDescriptor*>(device_tables);
  auto* device_chunks = reinterpret_cast<const ChunkRef*>(device_tables + descriptor_bytes);
  adamw_kernel<<<static_cast<unsigned>(chunks.size()), kThreads>>>(device_descriptors,
                                                                    device_chunks, scalars);
  TILLER_CUDA_CHECK_LAUNCH();
}

}  // namespace tiller::kernels
