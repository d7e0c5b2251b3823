// Vectorisable exp, tanh and sigmoid for the CPU backend's hot loops (activations, softmax).
//
// libm's expf/tanhf are scalar calls, so a loop over them never vectorises; these are written
// only with +, *, /, comparisons/selects and float<->int bit moves, so GCC turns a loop calling
// them under `#pragma omp simd` into SIMD code without -ffast-math (and at the AVX2/AVX-512
// widths when the caller is compiled with target_clones, see TILLER_SIMD_CLONES).
//   - vector_exp: Cody-Waite reduction x = n ln2 + r (|r| <= ln2/2), Cephes degree-6 polynomial
//     for exp(r), 2^n built in the exponent bits. Max relative error ~1e-7 on the normal range;
//     below ln(FLT_MIN) it returns 0 (no denormals), above ln(FLT_MAX) +inf; NaN stays NaN.
//   - vector_tanh: Eigen's odd rational (degree 13/6) on x clamped to +-7.9053 (where it reaches
//     float 1 - 1ulp); returns x for |x| < 4e-4, where tanh x == x in float. Max rel error ~4e-7.
//   - vector_sigmoid = 1 / (1 + exp(-x)): relative accuracy holds for very negative x too.
// Invariant: pure functions of their argument (no tables, no state). Results may differ in the
// last bit between SIMD widths (FMA contraction on AVX2/AVX-512), so tests compare with
// tolerances, never bitwise across machines.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

namespace tiller::kernels::cpu {

// Compiles a hot function for AVX-512, AVX2 and baseline x86-64 and picks one at load time: the
// library itself targets baseline x86-64, where these loops would run 4 wide at best.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TILLER_SIMD_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TILLER_SIMD_CLONES
#endif

#if defined(__GNUC__)
#define TILLER_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define TILLER_ALWAYS_INLINE inline
#endif

TILLER_ALWAYS_INLINE float vector_exp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2High = 0.693359375f;  // ln 2 split so n * kLn2High is exact
  constexpr float kLn2Low = -2.12194440e-4f;
  constexpr float kRoundMagic = 12582912.f;  // 1.5 * 2^23: adding it rounds to an integer
  constexpr float kMinArg = -87.33654f;      // ln(FLT_MIN)
  constexpr float kMaxArg = 88.72283f;       // ln(FLT_MAX)
  // Clamp so n stays in [-126, 127] and the exponent bits below never overflow.
  float clamped = x < kMinArg ? kMinArg : (x > 88.3f ? 88.3f : x);
  float n = (clamped * kLog2e + kRoundMagic) - kRoundMagic;
  float r = clamped - n * kLn2High;
  r = r - n * kLn2Low;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float exp_r = p * r * r + r + 1.f;
  int32_t exponent_bits = (static_cast<int32_t>(n) + 127) << 23;
  float two_to_n;
  std::memcpy(&two_to_n, &exponent_bits, sizeof two_to_n);
  float result = exp_r * two_to_n;
  result = x < kMinArg ? 0.f : result;
  result = x > kMaxArg ? std::numeric_limits<float>::infinity() : result;
  return x != x ? x : result;
}

TILLER_ALWAYS_INLINE float vector_tanh(float x) {
  constexpr float kClamp = 7.90531110763549805f;
  float c = x < -kClamp ? -kClamp : (x > kClamp ? kClamp : x);
  float x2 = c * c;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * c;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  float tiny = x < 0 ? -x : x;
  return tiny < 0.0004f ? x : p / q;
}

TILLER_ALWAYS_INLINE float vector_sigmoid(float x) {
  return 1.f / (1.f + vector_exp(-x));
}

}  // namespace tiller::kernels::cpu
