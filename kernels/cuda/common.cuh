// Shared by every CUDA kernel file: the check macros, dtype traits and launch arithmetic.
//
// Every CUDA runtime / cuBLAS call goes through TILLER_CUDA_CHECK / TILLER_CUBLAS_CHECK, which
// throw tiller::Error with the call, file and line; every launch is followed by
// TILLER_CUDA_CHECK_LAUNCH() so a bad configuration is reported where it happened.
// Rule (from MLX): .cu/.cuh files hold GPU code and its launchers only.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/error.h"
#include "kernels/dtype.h"

namespace tiller::kernels::cuda_detail {

[[noreturn]] inline void throw_cuda(cudaError_t status, const char* call, const char* file,
                                    int line) {
  fail("CUDA error {} ({}) in {} at {}:{}", cudaGetErrorName(status),
       cudaGetErrorString(status), call, file, line);
}

[[noreturn]] inline void throw_cublas(cublasStatus_t status, const char* call, const char* file,
                                      int line) {
  fail("cuBLAS error {} ({}) in {} at {}:{}", cublasGetStatusName(status),
       cublasGetStatusString(status), call, file, line);
}

// Blocks needed to cover n items with `per_block` items each.
inline unsigned blocks_for(int64_t n, int64_t per_block) {
  return static_cast<unsigned>((n + per_block - 1) / per_block);
}

// Loads and stores that convert to/from f32, so one kernel template serves f32 and bf16.
__device__ __forceinline__ float load_f32(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load_f32(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
__device__ __forceinline__ void store_f32(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store_f32(__nv_bfloat16* p, int64_t i, float v) {
  p[i] = __float2bfloat16(v);
}

// The first out-of-range token id found on the device since the last check (kernels/token_check.h).
// Lives in device memory; synchronize() and device-to-host copies read it back (memory.cu).
struct TokenFault {
  int32_t flag;   // 0: none; the first bad id sets 1 (atomicCAS) and fills the rest
  int32_t value;  // the bad id
  int64_t index;  // its position in the checked ids
  int64_t V;      // the range it had to lie in: [0, V)
  const char* op;    // string literals from the host (never dereferenced on the device)
  const char* name;
};

// The current device's record, allocated (zeroed) on first use.
TokenFault* token_fault_record();

}  // namespace tiller::kernels::cuda_detail

#define TILLER_CUDA_CHECK(call)                                                         \
  do {                                                                                  \
    cudaError_t tiller_status_ = (call);                                                \
    if (tiller_status_ != cudaSuccess)                                                  \
      ::tiller::kernels::cuda_detail::throw_cuda(tiller_status_, #call, __FILE__, __LINE__); \
  } while (0)

#define TILLER_CUBLAS_CHECK(call)                                                           \
  do {                                                                                      \
    cublasStatus_t tiller_status_ = (call);                                                 \
    if (tiller_status_ != CUBLAS_STATUS_SUCCESS)                                            \
      ::tiller::kernels::cuda_detail::throw_cublas(tiller_status_, #call, __FILE__, __LINE__); \
  } while (0)

#define TILLER_CUDA_CHECK_LAUNCH() TILLER_CUDA_CHECK(cudaGetLastError())

// Calls body with `T` bound to float or __nv_bfloat16 according to a DType.
#define TILLER_DISPATCH_FLOAT(dtype, kernel_name, ...)                                  \
  do {                                                                                  \
    if ((dtype) == ::tiller::DType::f32) {                                              \
      using T = float;                                                                  \
      __VA_ARGS__;                                                                      \
    } else if ((dtype) == ::tiller::DType::bf16) {                                      \
      using T = __nv_bfloat16;                                                          \
      __VA_ARGS__;                                                                      \
    } else {                                                                            \
      ::tiller::fail("{}: CUDA kernels take f32 or bf16, got {}", kernel_name,          \
                     ::tiller::dtype_name(dtype));                                      \
    }                                                                                   \
  } while (0)
