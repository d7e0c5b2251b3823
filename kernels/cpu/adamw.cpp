// CPU reference for kernels/adamw.h.
//
// Mirrors torch.optim.AdamW's arithmetic order (decay, lerp of m, v update, addcdiv with the bias
// corrections folded into the step size and the denominator) so the CPU backend is a faithful
// reference. Bias corrections are computed once per step in double, like PyTorch's Python floats.
// bf16 parameters are written from the f32 master with stochastic rounding: 16 random bits from
// counter (tensor index << 40 | element index) are added below the bf16 mantissa before
// truncation, so rounding up happens with probability equal to the discarded fraction.
//
// Multi-tensor, as on CUDA: all tensors' elements form one index space that one parallel region
// cuts into fixed chunks, so a step is one fork/join however many tensors (GPT-2 has 148, most
// of them biases too small to split alone). The common case — f32 gradient,
// f32 parameter that is its own master — runs a branch-free loop the compiler vectorises (AVX-512
// or AVX2 clone picked at load time); it streams 28 bytes per parameter (read grad, m, v, master;
// write m, v, master), so at GPT-2 124M a step is ~3.5 GB of memory traffic. Other dtypes take the
// scalar loop. Both loops compute the same formula; the vector clones may contract a multiply-add
// into an FMA, so the two can differ in the last bit (tests compare with tolerances).
// Each element is independent: results do not depend on the thread count.
#include "kernels/adamw.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vector_math.h"
#include "kernels/random.h"

namespace tiller::kernels {

namespace {

constexpr int kTensorIndexShift = 40;  // tensors up to 2^40 elements get disjoint counters
// Chunks of the shared index space that threads take dynamically: 64k elements stream ~1.8 MB,
// ~0.2 ms, so handing them out costs nothing and a late thread delays the end by one chunk.
constexpr int64_t kChunkElements = int64_t{1} << 16;

uint16_t stochastic_bf16(float value, uint64_t seed, uint64_t counter) {
  uint32_t u;
  std::memcpy(&u, &value, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return float_to_bf16(value);  // inf/NaN: no dithering
  uint32_t dither = static_cast<uint32_t>(random::bits(seed, counter) & 0xffffu);
  uint64_t widened = static_cast<uint64_t>(u) + dither;
  // A carry into the exponent is the correct round-up; overflowing to inf is too (as in bf16 RN).
  return static_cast<uint16_t>(widened >> 16);
}

float load(const void* p, int64_t i, DType dtype) {
  return dtype == DType::bf16 ? bf16_to_float(static_cast<const uint16_t*>(p)[i])
                              : static_cast<const float*>(p)[i];
}

// The per-step constants of the update, shared by every tensor.
struct StepConstants {
  float step_size, bias_correction2_sqrt, one_minus_beta1, beta2, one_minus_beta2, eps, grad_scale;
};

// Elements [begin, end) of an f32 tensor whose master is the parameter: vectorised.
TILLER_SIMD_CLONES void update_f32_span(const float* __restrict grad, float* __restrict master,
                                        float* __restrict m, float* __restrict v, int64_t begin,
                                        int64_t end, float decay, StepConstants k) {
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) {
    float g = grad[i] * k.grad_scale;
    float m_new = m[i] + k.one_minus_beta1 * (g - m[i]);  // torch lerp_
    float v_new = v[i] * k.beta2 + k.one_minus_beta2 * g * g;
    float w = master[i] * decay;
    float denom = std::sqrt(v_new) / k.bias_correction2_sqrt + k.eps;
    w -= k.step_size * (m_new / denom);
    m[i] = m_new;
    v[i] = v_new;
    master[i] = w;
  }
}

// Elements [begin, end) of any tensor (bf16 gradient or bf16 parameter written from its master).
void update_span(const AdamWTensor& x, int64_t begin, int64_t end, float decay, bool write_param,
                 uint64_t counter_base, uint64_t seed, const StepConstants& k) {
  for (int64_t i = begin; i < end; ++i) {
    float g = load(x.grad, i, x.grad_dtype) * k.grad_scale;
    float m = x.m[i] + k.one_minus_beta1 * (g - x.m[i]);
    float v = x.v[i] * k.beta2 + k.one_minus_beta2 * g * g;
    float w = x.master[i] * decay;
    float denom = std::sqrt(v) / k.bias_correction2_sqrt + k.eps;
    w -= k.step_size * (m / denom);
    x.m[i] = m;
    x.v[i] = v;
    x.master[i] = w;
    if (write_param)
      static_cast<uint16_t*>(x.param)[i] = stochastic_bf16(w, seed, counter_base + i);
  }
}

}  // namespace

template <>
void adamw_step<Backend::cpu>(const std::vector<AdamWTensor>& tensors, const AdamWHyper& h) {
  TILLER_CHECK(h.step >= 1, "adamw_step: step is 1-based, got {}", h.step);
  double bias_correction1 = 1.0 - std::pow(static_cast<double>(h.beta1), h.step);
  double bias_correction2 = 1.0 - std::pow(static_cast<double>(h.beta2), h.step);
  const StepConstants k{.step_size = static_cast<float>(h.lr / bias_correction1),
                        .bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2)),
                        .one_minus_beta1 = 1.f - h.beta1,
                        .beta2 = h.beta2,
                        .one_minus_beta2 = 1.f - h.beta2,
                        .eps = h.eps,
                        .grad_scale = h.grad_scale};
  // Checks, then the start of each tensor in the shared index space (offsets[t] .. offsets[t+1]).
  std::vector<int64_t> offsets(tensors.size() + 1, 0);
  std::vector<char> write_param(tensors.size(), 0);
  for (size_t t = 0; t < tensors.size(); ++t) {
    const AdamWTensor& x = tensors[t];
    TILLER_CHECK(x.grad_dtype != DType::i32 && x.param_dtype != DType::i32,
                 "adamw_step: tensor {} has i32 parameter or gradient", t);
    TILLER_CHECK(x.n >= 0, "adamw_step: tensor {} has {} elements", t, x.n);
    write_param[t] = x.param != nullptr && x.param != x.master;
    TILLER_CHECK(!write_param[t] || x.param_dtype == DType::bf16,
                 "adamw_step: tensor {} has a separate {} param; only bf16 params have masters", t,
                 dtype_name(x.param_dtype));
    offsets[t + 1] = offsets[t] + x.n;
  }
  const int64_t total = offsets.back();
  const int64_t chunks = (total + kChunkElements - 1) / kChunkElements;
  cpu::parallel_blocks(chunks, [&](int64_t chunk) {
    const int64_t begin = chunk * kChunkElements, end = std::min(total, begin + kChunkElements);
    // The first tensor that ends after `begin`, then every tensor overlapping [begin, end).
    size_t t = std::upper_bound(offsets.begin(), offsets.end(), begin) - offsets.begin() - 1;
    for (; t < tensors.size() && offsets[t] < end; ++t) {
      const AdamWTensor& x = tensors[t];
      int64_t first = std::max(begin, offsets[t]) - offsets[t];
      int64_t last = std::min(end, offsets[t + 1]) - offsets[t];
      if (first >= last) continue;
      float decay = 1.f - h.lr * x.weight_decay;
      if (x.grad_dtype == DType::f32 && !write_param[t])
        update_f32_span(static_cast<const float*>(x.grad), x.master, x.m, x.v, first, last, decay,
                        k);
      else
        update_span(x, first, last, decay, write_param[t],
                    static_cast<uint64_t>(t) << kTensorIndexShift, h.seed, k);
    }
  });
}

}  // namespace tiller::kernels
