// CUDA GEMM for kernels/matmul.h: cublasGemmStridedBatchedEx, plus the bias kernel.
//
// Row-major through a column-major library: a row-major (M, N) C is a column-major (N, M) C^T,
// and C^T = op(B)^T op(A)^T, so we ask cuBLAS for an (N x M) product with the operands swapped
// (B first) and the same transpose flags. Leading dimensions are the row lengths as stored.
// Precision: f32 uses CUBLAS_COMPUTE_32F with the default math mode, i.e. no TF32 — parity tests
// compare against the CPU at 1e-5 and TF32 would not pass them. bf16 reads and writes bf16 and
// accumulates in f32 (CUBLAS_COMPUTE_32F), the mixed-precision training contract.
// Handles: one per device, created lazily under a mutex and never destroyed (process exit tears
// the context down; destroying a handle after the runtime is gone would crash).
// FLOPs = 2 * batch * M * N * K; add_bias: bytes = 2 * rows * cols + cols.
#include <mutex>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/helpers.cuh"
#include "kernels/elementwise.h"
#include "kernels/matmul.h"

namespace tiller::kernels {

using namespace cuda_detail;

namespace {

cublasHandle_t cublas_handle() {
  static std::mutex mutex;
  static std::vector<cublasHandle_t> handles;  // by device index; nullptr until first use
  int device = current_device();
  std::lock_guard<std::mutex> lock(mutex);
  if (handles.size() <= static_cast<size_t>(device)) handles.resize(device + 1, nullptr);
  if (handles[device] == nullptr) {
    TILLER_CUBLAS_CHECK(cublasCreate(&handles[device]));
    TILLER_CUBLAS_CHECK(cublasSetStream(handles[device], 0));  // the legacy default stream
  }
  return handles[device];
}

int checked_int(int64_t value, const char* what) {
  TILLER_CHECK(value >= 0 && value <= INT32_MAX,
               "gemm: {} = {} does not fit cuBLAS's 32-bit int arguments", what, value);
  return static_cast<int>(value);
}

template <typename T>
__global__ void add_bias_kernel(T* out, const T* bias, int64_t rows, int64_t cols) {
  int64_t n = rows * cols;
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    store_f32(out, i, load_f32(out, i) + load_f32(bias, i % cols));
}

}  // namespace

template <>
void gemm<Backend::cuda>(const GemmShape& s, const void* a, const void* b, void* c, DType dtype) {
  TILLER_CHECK(dtype == DType::f32 || dtype == DType::bf16, "gemm: CUDA takes f32 or bf16, got {}",
               dtype_name(dtype));
  if (s.M == 0 || s.N == 0 || s.batch == 0) return;
  if (s.K == 0) {
    // An empty sum: C = beta * C (cuBLAS's k = 0 behaviour is not documented, so do it here).
    for (int64_t i = 0; i < s.batch; ++i) {
      void* ci = static_cast<char*>(c) + i * s.stride_c * dtype_size(dtype);
      if (s.beta == 0.f) fill<Backend::cuda>(ci, s.M * s.N, 0.f, dtype);
      else affine<Backend::cuda>(ci, ci, s.M * s.N, s.beta, 0.f, dtype);
    }
    return;
  }
  int M = checked_int(s.M, "M"), N = checked_int(s.N, "N"), K = checked_int(s.K, "K");
  int batch = checked_int(s.batch, "batch");
  int lda = s.trans_a ? M : K;  // row length of A as stored
  int ldb = s.trans_b ? K : N;
  cublasOperation_t op_a = s.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_b = s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cudaDataType_t type = dtype == DType::f32 ? CUDA_R_32F : CUDA_R_16BF;
  float alpha = s.alpha, beta = s.beta;
  TILLER_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      cublas_handle(), op_b, op_a, N, M, K, &alpha, b, type, ldb, s.stride_b, a, type, lda,
      s.stride_a, &beta, c, type, N, s.stride_c, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

template <>
void add_bias<Backend::cuda>(void* out, const void* bias, int64_t rows, int64_t cols,
                             DType dtype) {
  if (rows == 0 || cols == 0) return;
  constexpr int kThreads = 256;
  TILLER_DISPATCH_FLOAT(dtype, "add_bias", {
    add_bias_kernel<T><<<grid_for(rows * cols, kThreads), kThreads>>>(
        static_cast<T*>(out), static_cast<const T*>(bias), rows, cols);
    TILLER_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace tiller::kernels
