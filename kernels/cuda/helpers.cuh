// Device helpers shared by the CUDA kernel files: 16-byte packs, warp/block sums, scratch memory.
//
// Pack<T, V> is V elements of T moved as one load/store; kernels use V = 16 / sizeof(T) when
// every pointer they touch is 16-byte aligned and the row length is a multiple of V, and V = 1
// otherwise (one template, two instantiations, chosen by the launcher with pack_width()).
// block_sum reduces in a fixed order (lanes by shuffle tree, then warps in index order), so the
// same launch on the same data always gives the same bits.
// ScratchBuffer takes temporary device memory from the caching allocator (kernels/memory.h) and
// gives it back when it goes out of scope; because everything runs on the default stream, the
// block may be released right after the launches that use it are queued.
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>

#include "kernels/cuda/common.cuh"
#include "kernels/memory.h"

namespace tiller::kernels::cuda_detail {

template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T values[V];
};

template <typename T>
constexpr int kPackWidth = 16 / static_cast<int>(sizeof(T));

inline bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

// The vector width a launcher may use for rows of `row_elems` elements of `element_bytes` each,
// given the pointers the kernel will access (nullptr entries are ignored).
inline int pack_width(int64_t row_elems, size_t element_bytes,
                      std::initializer_list<const void*> pointers) {
  int width = static_cast<int>(16 / element_bytes);
  if (row_elems % width != 0) return 1;
  for (const void* p : pointers)
    if (p != nullptr && !aligned16(p)) return 1;
  return width;
}

// Register-level conversions, so one kernel template serves f32 and bf16 (load_f32/store_f32 in
// common.cuh are the pointer-level equivalents).
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);
}

// V consecutive elements starting at p[i] (i a multiple of V, p 16-byte aligned when V > 1),
// converted to f32 registers, and back.
template <typename T, int V>
__device__ __forceinline__ void load_pack(const T* p, int64_t i, float (&out)[V]) {
  Pack<T, V> pack = *reinterpret_cast<const Pack<T, V>*>(p + i);
#pragma unroll
  for (int v = 0; v < V; ++v) out[v] = to_float(pack.values[v]);
}
template <typename T, int V>
__device__ __forceinline__ void store_pack(T* p, int64_t i, const float (&in)[V]) {
  Pack<T, V> pack;
#pragma unroll
  for (int v = 0; v < V; ++v) pack.values[v] = from_float<T>(in[v]);
  *reinterpret_cast<Pack<T, V>*>(p + i) = pack;
}

constexpr int kWarpSize = 32;

__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

__device__ __forceinline__ float warp_max(float value) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}

// Sum over the whole block, returned to every thread. blockDim.x must be a multiple of 32 (at
// most 1024). `shared` holds 32 floats. Ends with a barrier, so it can be called repeatedly.
__device__ __forceinline__ float block_sum(float value, float* shared) {
  int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  int warps = blockDim.x / kWarpSize;
  value = warp_sum(value);
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  float total = lane < warps ? shared[lane] : 0.f;
  total = warp_sum(total);
  __syncthreads();
  return total;
}

__device__ __forceinline__ float block_max(float value, float* shared) {
  int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  int warps = blockDim.x / kWarpSize;
  value = warp_max(value);
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  float result = lane < warps ? shared[lane] : -INFINITY;
  result = warp_max(result);
  __syncthreads();
  return result;
}

inline int current_device() {
  int device = 0;
  TILLER_CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

// Grid size for a grid-stride loop over n items: enough blocks to fill the device several times
// over, never more than the items need.
inline unsigned grid_for(int64_t n, int threads) {
  constexpr int64_t kMaxBlocks = 65535;  // plenty for 132 SMs x 16 resident blocks
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  return static_cast<unsigned>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

class ScratchBuffer {
 public:
  explicit ScratchBuffer(size_t bytes)
      : device_(current_device()), ptr_(cuda::allocate(bytes, device_)) {}
  ~ScratchBuffer() { cuda::release(ptr_, device_); }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;

  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }

 private:
  int device_;
  void* ptr_;
};

}  // namespace tiller::kernels::cuda_detail
