// Element types and the bf16 <-> f32 conversions shared by every backend.
//
// Lives in kernels/ (the lowest layer) because kernels take raw buffers plus a DType. The helpers
// are host+device so CUDA kernels and the CPU reference round identically (round-to-nearest-even).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define TILLER_HD __host__ __device__ __forceinline__
#else
#define TILLER_HD inline
#endif

namespace tiller {

enum class DType : uint8_t { f32, bf16, i32 };

inline size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32: return 4;
    case DType::bf16: return 2;
    case DType::i32: return 4;
  }
  return 0;
}

inline const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
  }
  return "?";
}

// bf16 stored as its raw 16 bits on the host; CUDA code uses __nv_bfloat16 with the same layout.
struct bf16_bits {
  uint16_t bits;
};

TILLER_HD float bf16_to_float(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
#if defined(__CUDA_ARCH__)
  f = __uint_as_float(u);
#else
  std::memcpy(&f, &u, 4);
#endif
  return f;
}

TILLER_HD uint16_t float_to_bf16(float f) {
  uint32_t u;
#if defined(__CUDA_ARCH__)
  u = __float_as_uint(f);
#else
  std::memcpy(&u, &f, 4);
#endif
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return 0x7fc0;  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                          // nearest even
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace tiller
