// CUDA elementwise kernels for kernels/elementwise.h.
//
// Every contiguous map (unary, backward, affine, clamp, swiglu, accumulate, fills, dropout) goes
// through one grid-stride kernel, map_kernel<T, V, inputs, outputs, Fn>: each thread moves V
// elements per 16-byte load (V = 4 f32 or 8 bf16) when all pointers are 16-byte aligned, else
// V = 1; a scalar tail covers n % V. Math is f32 in registers whatever T is, with the same
// formulas as the CPU reference (kernels/cpu/elementwise.cpp) so the backends agree to rounding.
// Functors carry the op as a runtime value: the branch is uniform across the grid and costs
// nothing next to the memory traffic, and it keeps the instantiation count (and nvcc time) low.
// Random fills and dropout draw from kernels/random.h by element index, so they produce exactly
// the CPU's numbers (Box-Muller may differ by an ulp in logf/cosf).
// Bytes: (inputs + outputs) * n * sizeof(T); FLOPs: a few per element — memory-bound.
// Binary ops with broadcasting take the vector path when neither side broadcasts; otherwise one
// thread per output element walks the strides (at most kMaxDims divisions).
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/helpers.cuh"
#include "kernels/elementwise.h"
#include "kernels/random.h"

namespace tiller::kernels {

using namespace cuda_detail;

namespace {

constexpr int kThreads = 256;
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

// ---- the generic map ------------------------------------------------------------------------

template <int kIn, int kOut>
struct MapPointers {
  const void* in[kIn > 0 ? kIn : 1];
  void* out[kOut];
};

// fn(i, in, out): element index, kIn f32 inputs, kOut f32 outputs.
template <typename T, int V, int kIn, int kOut, typename Fn>
__global__ void map_kernel(MapPointers<kIn, kOut> ptrs, int64_t n, Fn fn) {
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t packs = n / V;
  for (int64_t p = first; p < packs; p += stride) {
    Pack<T, V> in[kIn > 0 ? kIn : 1];
#pragma unroll
    for (int k = 0; k < kIn; ++k) in[k] = static_cast<const Pack<T, V>*>(ptrs.in[k])[p];
    Pack<T, V> out[kOut];
#pragma unroll
    for (int v = 0; v < V; ++v) {
      float a[kIn > 0 ? kIn : 1], r[kOut];
#pragma unroll
      for (int k = 0; k < kIn; ++k) a[k] = to_float(in[k].values[v]);
      fn(p * V + v, a, r);
#pragma unroll
      for (int k = 0; k < kOut; ++k) out[k].values[v] = from_float<T>(r[k]);
    }
#pragma unroll
    for (int k = 0; k < kOut; ++k) static_cast<Pack<T, V>*>(ptrs.out[k])[p] = out[k];
  }
  for (int64_t i = packs * V + first; i < n; i += stride) {
    float a[kIn > 0 ? kIn : 1], r[kOut];
#pragma unroll
    for (int k = 0; k < kIn; ++k) a[k] = load_f32(static_cast<const T*>(ptrs.in[k]), i);
    fn(i, a, r);
#pragma unroll
    for (int k = 0; k < kOut; ++k) store_f32(static_cast<T*>(ptrs.out[k]), i, r[k]);
  }
}

template <typename T, int kIn, int kOut, typename Fn>
void launch_map(const MapPointers<kIn, kOut>& ptrs, int64_t n, Fn fn) {
  if (n == 0) return;
  bool vector = true;
  for (int k = 0; k < kIn; ++k) vector = vector && aligned16(ptrs.in[k]);
  for (int k = 0; k < kOut; ++k) vector = vector && aligned16(ptrs.out[k]);
  if (vector) {
    constexpr int V = kPackWidth<T>;
    map_kernel<T, V, kIn, kOut><<<grid_for(n / V + 1, kThreads), kThreads>>>(ptrs, n, fn);
  } else {
    map_kernel<T, 1, kIn, kOut><<<grid_for(n, kThreads), kThreads>>>(ptrs, n, fn);
  }
  TILLER_CUDA_CHECK_LAUNCH();
}

// ---- math, mirroring the CPU reference ------------------------------------------------------

__device__ __forceinline__ float sigmoid_value(float x) { return 1.f / (1.f + expf(-x)); }

__device__ float unary_value(UnaryOp op, float x) {
  switch (op) {
    case UnaryOp::neg: return -x;
    case UnaryOp::exp: return expf(x);
    case UnaryOp::log: return logf(x);
    case UnaryOp::sqrt: return sqrtf(x);
    case UnaryOp::square: return x * x;
    case UnaryOp::abs: return fabsf(x);
    case UnaryOp::tanh: return tanhf(x);
    case UnaryOp::sigmoid: return sigmoid_value(x);
    case UnaryOp::logsigmoid: return x < 0 ? x - log1pf(expf(x)) : -log1pf(expf(-x));
    case UnaryOp::relu: return x > 0 ? x : 0.f;
    case UnaryOp::gelu: {
      float u = kSqrt2OverPi * (x + kGeluCubic * x * x * x);
      return 0.5f * x * (1.f + tanhf(u));
    }
    case UnaryOp::silu: return x * sigmoid_value(x);
  }
  return 0.f;
}

__device__ float unary_derivative(UnaryOp op, float x) {
  switch (op) {
    case UnaryOp::neg: return -1.f;
    case UnaryOp::exp: return expf(x);
    case UnaryOp::log: return 1.f / x;
    case UnaryOp::sqrt: return 0.5f / sqrtf(x);
    case UnaryOp::square: return 2.f * x;
    case UnaryOp::abs: return x > 0 ? 1.f : (x < 0 ? -1.f : 0.f);
    case UnaryOp::tanh: {
      float t = tanhf(x);
      return 1.f - t * t;
    }
    case UnaryOp::sigmoid: {
      float s = sigmoid_value(x);
      return s * (1.f - s);
    }
    case UnaryOp::logsigmoid: return sigmoid_value(-x);
    case UnaryOp::relu: return x > 0 ? 1.f : 0.f;
    case UnaryOp::gelu: {
      float u = kSqrt2OverPi * (x + kGeluCubic * x * x * x);
      float t = tanhf(u);
      float du = kSqrt2OverPi * (1.f + 3.f * kGeluCubic * x * x);
      return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * du;
    }
    case UnaryOp::silu: {
      float s = sigmoid_value(x);
      return s * (1.f + x * (1.f - s));
    }
  }
  return 0.f;
}

__device__ __forceinline__ float binary_value(BinaryOp op, float x, float y) {
  switch (op) {
    case BinaryOp::add: return x + y;
    case BinaryOp::sub: return x - y;
    case BinaryOp::mul: return x * y;
    case BinaryOp::div: return x / y;
    case BinaryOp::maximum: return x >= y ? x : y;
    case BinaryOp::minimum: return x <= y ? x : y;
    case BinaryOp::greater_equal: return x >= y ? 1.f : 0.f;
    case BinaryOp::less_equal: return x <= y ? 1.f : 0.f;
  }
  return 0.f;
}

// ---- functors -------------------------------------------------------------------------------

struct BinaryFn {
  BinaryOp op;
  __device__ void operator()(int64_t, const float* a, float* r) const {
    r[0] = binary_value(op, a[0], a[1]);
  }
};
struct UnaryFn {
  UnaryOp op;
  __device__ void operator()(int64_t, const float* a, float* r) const {
    r[0] = unary_value(op, a[0]);
  }
};
struct UnaryBackwardFn {  // inputs: x, dy
  UnaryOp op;
  __device__ void operator()(int64_t, const float* a, float* r) const {
    r[0] = a[1] * unary_derivative(op, a[0]);
  }
};
struct AffineFn {
  float scale, shift;
  __device__ void operator()(int64_t, const float* a, float* r) const {
    r[0] = a[0] * scale + shift;
  }
};
struct ClampFn {
  float low, high;
  __device__ void operator()(int64_t, const float* a, float* r) const {
    r[0] = a[0] < low ? low : (a[0] > high ? high : a[0]);
  }
};
struct ClampBackwardFn {  // inputs: x, dy
  float low, high;
  __device__ void operator()(int64_t, const float* a, float* r) const {
    r[0] = (a[0] > low && a[0] < high) ? a[1] : 0.f;
  }
};
struct SwigluFn {  // inputs: gate, up
  __device__ void operator()(int64_t, const float* a, float* r) const {
    r[0] = a[0] * sigmoid_value(a[0]) * a[1];
  }
};
struct SwigluBackwardFn {  // inputs: gate, up, dout; outputs: dgate, dup
  __device__ void operator()(int64_t, const float* a, float* r) const {
    float g = a[0], s = sigmoid_value(g);
    r[1] = a[2] * g * s;
    r[0] = a[2] * a[1] * s * (1.f + g * (1.f - s));
  }
};
struct AccumulateFn {  // inputs: dst, src; output: dst
  __device__ void operator()(int64_t, const float* a, float* r) const { r[0] = a[0] + a[1]; }
};
struct FillFn {
  float value;
  __device__ void operator()(int64_t, const float*, float* r) const { r[0] = value; }
};
struct NormalFn {
  uint64_t seed, offset;
  float mean, std;
  __device__ void operator()(int64_t i, const float*, float* r) const {
    r[0] = mean + std * random::normal(seed, offset + i);
  }
};
struct UniformFn {
  uint64_t seed, offset;
  float low, high;
  __device__ void operator()(int64_t i, const float*, float* r) const {
    r[0] = low + (high - low) * random::uniform(seed, offset + i);
  }
};
struct DropoutFn {
  float p, keep_scale;
  uint64_t seed, offset;
  __device__ void operator()(int64_t i, const float* a, float* r) const {
    r[0] = random::uniform(seed, offset + i) >= p ? a[0] * keep_scale : 0.f;
  }
};

// ---- broadcasting binary --------------------------------------------------------------------

template <typename T>
__global__ void broadcast_binary_kernel(BinaryOp op, const T* a, const T* b, T* out,
                                        BroadcastShape shape, int64_t n) {
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    int64_t ia = 0, ib = 0, rem = i;
    for (int d = shape.ndim - 1; d >= 0; --d) {
      int64_t index = rem % shape.shape[d];
      rem /= shape.shape[d];
      ia += index * shape.a_stride[d];
      ib += index * shape.b_stride[d];
    }
    store_f32(out, i, binary_value(op, load_f32(a, ia), load_f32(b, ib)));
  }
}

bool is_dense(const BroadcastShape& shape, const int64_t* strides) {
  int64_t expected = 1;
  for (int d = shape.ndim - 1; d >= 0; --d) {
    if (shape.shape[d] != 1 && strides[d] != expected) return false;
    expected *= shape.shape[d];
  }
  return true;
}

// ---- casts ----------------------------------------------------------------------------------

__device__ __forceinline__ float load_any(const void* p, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::bf16: return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
    case DType::i32: return static_cast<float>(static_cast<const int32_t*>(p)[i]);
  }
  return 0.f;
}

__global__ void cast_kernel(const void* src, DType src_dtype, void* dst, DType dst_dtype,
                            int64_t n) {
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    float v = load_any(src, src_dtype, i);
    switch (dst_dtype) {
      case DType::f32: static_cast<float*>(dst)[i] = v; break;
      case DType::bf16: static_cast<uint16_t*>(dst)[i] = float_to_bf16(v); break;
      case DType::i32: static_cast<int32_t*>(dst)[i] = __float2int_rn(v); break;  // = lrint
    }
  }
}

__global__ void fill_i32_kernel(int32_t* out, int64_t n, int32_t value) {
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    out[i] = value;
}

}  // namespace

template <>
void binary<Backend::cuda>(BinaryOp op, const void* a, const void* b, void* out,
                           const BroadcastShape& shape, DType dtype) {
  int64_t n = shape.numel();
  if (n == 0) return;
  bool dense = is_dense(shape, shape.a_stride) && is_dense(shape, shape.b_stride);
  TILLER_DISPATCH_FLOAT(dtype, "binary", {
    if (dense) {
      launch_map<T, 2, 1>({{a, b}, {out}}, n, BinaryFn{op});
    } else {
      broadcast_binary_kernel<T><<<grid_for(n, kThreads), kThreads>>>(
          op, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out), shape,
          n);
      TILLER_CUDA_CHECK_LAUNCH();
    }
  });
}

template <>
void unary<Backend::cuda>(UnaryOp op, const void* x, void* out, int64_t n, DType dtype) {
  TILLER_DISPATCH_FLOAT(dtype, "unary", launch_map<T, 1, 1>({{x}, {out}}, n, UnaryFn{op}));
}

template <>
void unary_backward<Backend::cuda>(UnaryOp op, const void* x, const void* dy, void* dx, int64_t n,
                                   DType dtype) {
  TILLER_DISPATCH_FLOAT(dtype, "unary_backward",
                        launch_map<T, 2, 1>({{x, dy}, {dx}}, n, UnaryBackwardFn{op}));
}

template <>
void affine<Backend::cuda>(const void* x, void* out, int64_t n, float scale, float shift,
                           DType dtype) {
  TILLER_DISPATCH_FLOAT(dtype, "affine",
                        launch_map<T, 1, 1>({{x}, {out}}, n, AffineFn{scale, shift}));
}

template <>
void clamp<Backend::cuda>(const void* x, void* out, int64_t n, float low, float high,
                          DType dtype) {
  TILLER_DISPATCH_FLOAT(dtype, "clamp", launch_map<T, 1, 1>({{x}, {out}}, n, ClampFn{low, high}));
}

template <>
void clamp_backward<Backend::cuda>(const void* x, const void* dy, void* dx, int64_t n, float low,
                                   float high, DType dtype) {
  TILLER_DISPATCH_FLOAT(dtype, "clamp_backward",
                        launch_map<T, 2, 1>({{x, dy}, {dx}}, n, ClampBackwardFn{low, high}));
}

template <>
void swiglu<Backend::cuda>(const void* gate, const void* up, void* out, int64_t n, DType dtype) {
  TILLER_DISPATCH_FLOAT(dtype, "swiglu", launch_map<T, 2, 1>({{gate, up}, {out}}, n, SwigluFn{}));
}

template <>
void swiglu_backward<Backend::cuda>(const void* gate, const void* up, const void* dout,
                                    void* dgate, void* dup, int64_t n, DType dtype) {
  TILLER_DISPATCH_FLOAT(dtype, "swiglu_backward",
                        launch_map<T, 3, 2>({{gate, up, dout}, {dgate, dup}}, n,
                                            SwigluBackwardFn{}));
}

template <>
void accumulate<Backend::cuda>(void* dst, const void* src, int64_t n, DType dtype) {
  TILLER_DISPATCH_FLOAT(dtype, "accumulate",
                        launch_map<T, 2, 1>({{dst, src}, {dst}}, n, AccumulateFn{}));
}

template <>
void fill<Backend::cuda>(void* out, int64_t n, float value, DType dtype) {
  if (n == 0) return;
  if (dtype == DType::i32) {
    fill_i32_kernel<<<grid_for(n, kThreads), kThreads>>>(static_cast<int32_t*>(out), n,
                                                         static_cast<int32_t>(value));
    TILLER_CUDA_CHECK_LAUNCH();
    return;
  }
  TILLER_DISPATCH_FLOAT(dtype, "fill", launch_map<T, 0, 1>({{nullptr}, {out}}, n, FillFn{value}));
}

template <>
void cast<Backend::cuda>(const void* src, DType src_dtype, void* dst, DType dst_dtype,
                         int64_t n) {
  if (n == 0) return;
  if (src_dtype == dst_dtype) {
    TILLER_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * dtype_size(src_dtype),
                                      cudaMemcpyDeviceToDevice, 0));
    return;
  }
  cast_kernel<<<grid_for(n, kThreads), kThreads>>>(src, src_dtype, dst, dst_dtype, n);
  TILLER_CUDA_CHECK_LAUNCH();
}

template <>
void fill_normal<Backend::cuda>(void* out, int64_t n, uint64_t seed, uint64_t offset, float mean,
                                float std, DType dtype) {
  TILLER_DISPATCH_FLOAT(dtype, "fill_normal",
                        launch_map<T, 0, 1>({{nullptr}, {out}}, n,
                                            NormalFn{seed, offset, mean, std}));
}

template <>
void fill_uniform<Backend::cuda>(void* out, int64_t n, uint64_t seed, uint64_t offset, float low,
                                 float high, DType dtype) {
  TILLER_DISPATCH_FLOAT(dtype, "fill_uniform",
                        launch_map<T, 0, 1>({{nullptr}, {out}}, n,
                                            UniformFn{seed, offset, low, high}));
}

template <>
void dropout<Backend::cuda>(const void* x, void* out, int64_t n, float p, uint64_t seed,
                            uint64_t offset, DType dtype) {
  DropoutFn fn{p, 1.f / (1.f - p), seed, offset};
  TILLER_DISPATCH_FLOAT(dtype, "dropout", launch_map<T, 1, 1>({{x}, {out}}, n, fn));
}

template <>
void dropout_backward<Backend::cuda>(const void* dy, void* dx, int64_t n, float p, uint64_t seed,
                                     uint64_t offset, DType dtype) {
  dropout<Backend::cuda>(dy, dx, n, p, seed, offset, dtype);  // same mask, same scale
}

}  // namespace tiller::kernels
