// CPU reference for kernels/adamw.h.
//
// Mirrors torch.optim.AdamW's arithmetic order (decay, lerp of m, v update, addcdiv with the bias
// corrections folded into the step size and the denominator) so the CPU backend is a faithful
// reference. Bias corrections are computed once per step in double, like PyTorch's Python floats.
// bf16 parameters are written from the f32 master with stochastic rounding: 16 random bits from
// counter (tensor index << 40 | element index) are added below the bf16 mantissa before
// truncation, so rounding up happens with probability equal to the discarded fraction.
// Each element is independent: results do not depend on the thread count.
#include "kernels/adamw.h"

#include <cmath>

#include "kernels/cpu/parallel.h"
#include "kernels/random.h"

namespace tiller::kernels {

namespace {

constexpr int kTensorIndexShift = 40;  // tensors up to 2^40 elements get disjoint counters

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

}  // namespace

template <>
void adamw_step<Backend::cpu>(const std::vector<AdamWTensor>& tensors, const AdamWHyper& h) {
  TILLER_CHECK(h.step >= 1, "adamw_step: step is 1-based, got {}", h.step);
  double bias_correction1 = 1.0 - std::pow(static_cast<double>(h.beta1), h.step);
  double bias_correction2 = 1.0 - std::pow(static_cast<double>(h.beta2), h.step);
  float step_size = static_cast<float>(h.lr / bias_correction1);
  float bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  float one_minus_beta1 = 1.f - h.beta1, one_minus_beta2 = 1.f - h.beta2;
  for (size_t t = 0; t < tensors.size(); ++t) {
    const AdamWTensor& x = tensors[t];
    TILLER_CHECK(x.grad_dtype != DType::i32 && x.param_dtype != DType::i32,
                 "adamw_step: tensor {} has i32 parameter or gradient", t);
    float decay = 1.f - h.lr * x.weight_decay;
    bool write_param = x.param != nullptr && x.param != x.master;
    TILLER_CHECK(!write_param || x.param_dtype == DType::bf16,
                 "adamw_step: tensor {} has a separate {} param; only bf16 params have masters", t,
                 dtype_name(x.param_dtype));
    uint64_t counter_base = static_cast<uint64_t>(t) << kTensorIndexShift;
    cpu::parallel_for(x.n, 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        float g = load(x.grad, i, x.grad_dtype) * h.grad_scale;
        float m = x.m[i] + one_minus_beta1 * (g - x.m[i]);  // torch lerp_
        float v = x.v[i] * h.beta2 + one_minus_beta2 * g * g;
        float w = x.master[i] * decay;
        float denom = std::sqrt(v) / bias_correction2_sqrt + h.eps;
        w -= step_size * (m / denom);
        x.m[i] = m;
        x.v[i] = v;
        x.master[i] = w;
        if (write_param)
          static_cast<uint16_t*>(x.param)[i] = stochastic_bf16(w, h.seed, counter_base + i);
      }
    });
  }
}

}  // namespace tiller::kernels
