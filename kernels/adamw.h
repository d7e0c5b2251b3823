// AdamW over many parameter tensors in one call (one launch on CUDA: multi-tensor).
//
// Master weights, moments and the update are f32. When a tensor's `param` is bf16 (CUDA mixed
// precision) the kernel also writes param = bf16(master) with stochastic rounding (counter-based,
// seeded per step) so tiny updates are not systematically lost; when `param` is f32 the master
// weight IS the parameter (master == param).
// Decoupled weight decay: master -= lr * weight_decay * master, applied per tensor.
// Per parameter: reads master, grad, m, v (+param), writes master, m, v (+param): 28 bytes with
// f32 master/moments and bf16 param/grad... see bench/ for the exact count.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/backend.h"

namespace tiller::kernels {

struct AdamWTensor {
  float* master = nullptr;     // f32 weights (n)
  void* param = nullptr;       // the model's copy when it is bf16, else == master or null
  const void* grad = nullptr;  // (n), dtype grad_dtype
  float* m = nullptr;          // first moment (n)
  float* v = nullptr;          // second moment (n)
  int64_t n = 0;
  float weight_decay = 0.f;
  DType param_dtype = DType::f32;
  DType grad_dtype = DType::f32;
};

struct AdamWHyper {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  int64_t step = 1;          // 1-based, for bias correction
  float grad_scale = 1.f;    // gradients are multiplied by this first (clipping, loss scaling)
  uint64_t seed = 0;         // stochastic rounding seed for this step
};

template <Backend B>
void adamw_step(const std::vector<AdamWTensor>& tensors, const AdamWHyper& hyper);

}  // namespace tiller::kernels
