// Batched GEMM, and the bias helpers that go with a linear layer.
//
// C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b] for b in [0, batch), row-major, where op
// transposes when asked. A[b] starts at A + b * stride_a (elements; 0 broadcasts one matrix over
// the batch), likewise B and C. Shapes after op: A (M, K), B (K, N), C (M, N).
// FLOPs = 2 * batch * M * N * K. CPU: OpenBLAS sgemm (or a blocked fallback); CUDA: cuBLAS
// (f32, or bf16 inputs with f32 accumulation).
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace tiller::kernels {

struct GemmShape {
  int64_t batch = 1, M = 0, N = 0, K = 0;
  bool trans_a = false, trans_b = false;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  float alpha = 1.f, beta = 0.f;
};

template <Backend B>
void gemm(const GemmShape& shape, const void* a, const void* b, void* c, DType dtype);

// out (rows, cols) += bias (cols), broadcast over rows.
template <Backend B>
void add_bias(void* out, const void* bias, int64_t rows, int64_t cols, DType dtype);

// True when the CPU GEMM goes through a BLAS library (false: the built-in blocked fallback).
bool cpu_gemm_uses_blas();

}  // namespace tiller::kernels
