// CPU reference for kernels/elementwise.h. Plain loops the compiler vectorises; OpenMP over
// contiguous chunks.
//
// Unary activations pick their op once per chunk (a switch outside the loop, never per element)
// and compute tanh/exp/sigmoid with kernels/cpu/vector_math.h, so GELU, SiLU and friends run as
// SIMD loops; the span functions are compiled for AVX-512, AVX2 and baseline x86-64 and chosen at
// load time (target_clones), because the library itself targets baseline x86-64.
#include "kernels/elementwise.h"

#include <cmath>
#include <cstring>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vector_math.h"
#include "kernels/random.h"

namespace tiller::kernels {

using cpu::parallel_for;
using cpu::require_f32;

namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

template <typename Op>
void binary_loop(const float* a, const float* b, float* out, const BroadcastShape& s, Op op) {
  int64_t n = s.numel();
  int nd = s.ndim;
  int64_t inner = nd ? s.shape[nd - 1] : 1;
  int64_t a_inner = nd ? s.a_stride[nd - 1] : 0;
  int64_t b_inner = nd ? s.b_stride[nd - 1] : 0;
  int64_t rows = inner ? n / inner : 0;
  parallel_for(rows, inner, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      // Offsets of row r from its multi-index over the leading dims.
      int64_t ia = 0, ib = 0, rem = r;
      for (int d = nd - 2; d >= 0; --d) {
        int64_t idx = rem % s.shape[d];
        rem /= s.shape[d];
        ia += idx * s.a_stride[d];
        ib += idx * s.b_stride[d];
      }
      float* o = out + r * inner;
      const float* pa = a + ia;
      const float* pb = b + ib;
      if (a_inner == 1 && b_inner == 1) {
        for (int64_t i = 0; i < inner; ++i) o[i] = op(pa[i], pb[i]);
      } else {
        for (int64_t i = 0; i < inner; ++i) o[i] = op(pa[i * a_inner], pb[i * b_inner]);
      }
    }
  });
}

using cpu::vector_exp;
using cpu::vector_sigmoid;
using cpu::vector_tanh;

TILLER_ALWAYS_INLINE float gelu_value(float x) {
  float u = kSqrt2OverPi * (x + kGeluCubic * x * x * x);
  return 0.5f * x * (1.f + vector_tanh(u));
}

TILLER_ALWAYS_INLINE float gelu_grad(float x) {
  float u = kSqrt2OverPi * (x + kGeluCubic * x * x * x);
  float t = vector_tanh(u);
  float du = kSqrt2OverPi * (1.f + 3.f * kGeluCubic * x * x);
  return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * du;
}

// out[i] = op(x[i]) for i < n: one vectorisable loop per op.
TILLER_SIMD_CLONES void unary_span(UnaryOp op, const float* x, float* out, int64_t n) {
#define TILLER_UNARY_LOOP(expr)                         \
  _Pragma("omp simd") for (int64_t i = 0; i < n; ++i) { \
    [[maybe_unused]] float v = x[i];                    \
    out[i] = (expr);                                    \
  }                                                     \
  return
  switch (op) {
    case UnaryOp::neg:
      TILLER_UNARY_LOOP(-v);
    case UnaryOp::exp:
      TILLER_UNARY_LOOP(vector_exp(v));
    case UnaryOp::log:
      TILLER_UNARY_LOOP(std::log(v));
    case UnaryOp::sqrt:
      TILLER_UNARY_LOOP(std::sqrt(v));
    case UnaryOp::square:
      TILLER_UNARY_LOOP(v * v);
    case UnaryOp::abs:
      TILLER_UNARY_LOOP(std::fabs(v));
    case UnaryOp::tanh:
      TILLER_UNARY_LOOP(vector_tanh(v));
    case UnaryOp::sigmoid:
      TILLER_UNARY_LOOP(vector_sigmoid(v));
    case UnaryOp::logsigmoid:  // log1p keeps it accurate far from 0; rare, so scalar is fine
      TILLER_UNARY_LOOP(v < 0 ? v - std::log1p(std::exp(v)) : -std::log1p(std::exp(-v)));
    case UnaryOp::relu:
      TILLER_UNARY_LOOP(v > 0 ? v : 0.f);
    case UnaryOp::gelu:
      TILLER_UNARY_LOOP(gelu_value(v));
    case UnaryOp::silu:
      TILLER_UNARY_LOOP(v * vector_sigmoid(v));
  }
#undef TILLER_UNARY_LOOP
}

// dx[i] = dy[i] * op'(x[i]) for i < n.
TILLER_SIMD_CLONES void unary_backward_span(UnaryOp op, const float* x, const float* dy, float* dx,
                                            int64_t n) {
#define TILLER_UNARY_GRAD_LOOP(expr)                    \
  _Pragma("omp simd") for (int64_t i = 0; i < n; ++i) { \
    [[maybe_unused]] float v = x[i];                    \
    dx[i] = dy[i] * (expr);                             \
  }                                                     \
  return
  switch (op) {
    case UnaryOp::neg:
      TILLER_UNARY_GRAD_LOOP(-1.f);
    case UnaryOp::exp:
      TILLER_UNARY_GRAD_LOOP(vector_exp(v));
    case UnaryOp::log:
      TILLER_UNARY_GRAD_LOOP(1.f / v);
    case UnaryOp::sqrt:
      TILLER_UNARY_GRAD_LOOP(0.5f / std::sqrt(v));
    case UnaryOp::square:
      TILLER_UNARY_GRAD_LOOP(2.f * v);
    case UnaryOp::abs:
      TILLER_UNARY_GRAD_LOOP(v > 0 ? 1.f : (v < 0 ? -1.f : 0.f));
    case UnaryOp::tanh:
      TILLER_UNARY_GRAD_LOOP(1.f - vector_tanh(v) * vector_tanh(v));
    case UnaryOp::sigmoid:
      TILLER_UNARY_GRAD_LOOP(vector_sigmoid(v) * (1.f - vector_sigmoid(v)));
    case UnaryOp::logsigmoid:
      TILLER_UNARY_GRAD_LOOP(vector_sigmoid(-v));
    case UnaryOp::relu:
      TILLER_UNARY_GRAD_LOOP(v > 0 ? 1.f : 0.f);
    case UnaryOp::gelu:
      TILLER_UNARY_GRAD_LOOP(gelu_grad(v));
    case UnaryOp::silu:
      TILLER_UNARY_GRAD_LOOP(vector_sigmoid(v) * (1.f + v * (1.f - vector_sigmoid(v))));
  }
#undef TILLER_UNARY_GRAD_LOOP
}

TILLER_SIMD_CLONES void swiglu_span(const float* gate, const float* up, float* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] * vector_sigmoid(gate[i]) * up[i];
}

TILLER_SIMD_CLONES void swiglu_backward_span(const float* gate, const float* up, const float* dout,
                                             float* dgate, float* dup, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float g = gate[i], s = vector_sigmoid(g);
    dup[i] = dout[i] * g * s;
    dgate[i] = dout[i] * up[i] * s * (1.f + g * (1.f - s));
  }
}

template <typename Fn>
void map_n(int64_t n, int64_t cost, Fn&& fn) {
  parallel_for(n, cost, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) fn(i);
  });
}

}  // namespace

template <>
void binary<Backend::cpu>(BinaryOp op, const void* a_, const void* b_, void* out_,
                          const BroadcastShape& shape, DType dtype) {
  require_f32(dtype, "binary");
  auto a = static_cast<const float*>(a_);
  auto b = static_cast<const float*>(b_);
  auto out = static_cast<float*>(out_);
  switch (op) {
    case BinaryOp::add:
      return binary_loop(a, b, out, shape, [](float x, float y) { return x + y; });
    case BinaryOp::sub:
      return binary_loop(a, b, out, shape, [](float x, float y) { return x - y; });
    case BinaryOp::mul:
      return binary_loop(a, b, out, shape, [](float x, float y) { return x * y; });
    case BinaryOp::div:
      return binary_loop(a, b, out, shape, [](float x, float y) { return x / y; });
    case BinaryOp::maximum:
      return binary_loop(a, b, out, shape, [](float x, float y) { return x >= y ? x : y; });
    case BinaryOp::minimum:
      return binary_loop(a, b, out, shape, [](float x, float y) { return x <= y ? x : y; });
    case BinaryOp::greater_equal:
      return binary_loop(a, b, out, shape, [](float x, float y) { return x >= y ? 1.f : 0.f; });
    case BinaryOp::less_equal:
      return binary_loop(a, b, out, shape, [](float x, float y) { return x <= y ? 1.f : 0.f; });
  }
}

template <>
void unary<Backend::cpu>(UnaryOp op, const void* x_, void* out_, int64_t n, DType dtype) {
  require_f32(dtype, "unary");
  auto x = static_cast<const float*>(x_);
  auto out = static_cast<float*>(out_);
  parallel_for(n, 8, [&](int64_t i0, int64_t i1) { unary_span(op, x + i0, out + i0, i1 - i0); });
}

template <>
void unary_backward<Backend::cpu>(UnaryOp op, const void* x_, const void* dy_, void* dx_, int64_t n,
                                  DType dtype) {
  require_f32(dtype, "unary_backward");
  auto x = static_cast<const float*>(x_);
  auto dy = static_cast<const float*>(dy_);
  auto dx = static_cast<float*>(dx_);
  parallel_for(n, 8, [&](int64_t i0, int64_t i1) {
    unary_backward_span(op, x + i0, dy + i0, dx + i0, i1 - i0);
  });
}

template <>
void affine<Backend::cpu>(const void* x_, void* out_, int64_t n, float scale, float shift,
                          DType dtype) {
  require_f32(dtype, "affine");
  auto x = static_cast<const float*>(x_);
  auto out = static_cast<float*>(out_);
  map_n(n, 1, [&](int64_t i) { out[i] = x[i] * scale + shift; });
}

template <>
void clamp<Backend::cpu>(const void* x_, void* out_, int64_t n, float low, float high,
                         DType dtype) {
  require_f32(dtype, "clamp");
  auto x = static_cast<const float*>(x_);
  auto out = static_cast<float*>(out_);
  map_n(n, 1, [&](int64_t i) { out[i] = x[i] < low ? low : (x[i] > high ? high : x[i]); });
}

template <>
void clamp_backward<Backend::cpu>(const void* x_, const void* dy_, void* dx_, int64_t n, float low,
                                  float high, DType dtype) {
  require_f32(dtype, "clamp_backward");
  auto x = static_cast<const float*>(x_);
  auto dy = static_cast<const float*>(dy_);
  auto dx = static_cast<float*>(dx_);
  map_n(n, 1, [&](int64_t i) { dx[i] = (x[i] > low && x[i] < high) ? dy[i] : 0.f; });
}

template <>
void swiglu<Backend::cpu>(const void* gate_, const void* up_, void* out_, int64_t n, DType dtype) {
  require_f32(dtype, "swiglu");
  auto gate = static_cast<const float*>(gate_);
  auto up = static_cast<const float*>(up_);
  auto out = static_cast<float*>(out_);
  parallel_for(n, 8,
               [&](int64_t i0, int64_t i1) { swiglu_span(gate + i0, up + i0, out + i0, i1 - i0); });
}

template <>
void swiglu_backward<Backend::cpu>(const void* gate_, const void* up_, const void* dout_,
                                   void* dgate_, void* dup_, int64_t n, DType dtype) {
  require_f32(dtype, "swiglu_backward");
  auto gate = static_cast<const float*>(gate_);
  auto up = static_cast<const float*>(up_);
  auto dout = static_cast<const float*>(dout_);
  auto dgate = static_cast<float*>(dgate_);
  auto dup = static_cast<float*>(dup_);
  parallel_for(n, 10, [&](int64_t i0, int64_t i1) {
    swiglu_backward_span(gate + i0, up + i0, dout + i0, dgate + i0, dup + i0, i1 - i0);
  });
}

template <>
void accumulate<Backend::cpu>(void* dst_, const void* src_, int64_t n, DType dtype) {
  require_f32(dtype, "accumulate");
  auto dst = static_cast<float*>(dst_);
  auto src = static_cast<const float*>(src_);
  map_n(n, 1, [&](int64_t i) { dst[i] += src[i]; });
}

template <>
void fill<Backend::cpu>(void* out, int64_t n, float value, DType dtype) {
  switch (dtype) {
    case DType::f32: {
      auto p = static_cast<float*>(out);
      map_n(n, 1, [&](int64_t i) { p[i] = value; });
      break;
    }
    case DType::bf16: {
      auto p = static_cast<uint16_t*>(out);
      uint16_t bits = float_to_bf16(value);
      map_n(n, 1, [&](int64_t i) { p[i] = bits; });
      break;
    }
    case DType::i32: {
      auto p = static_cast<int32_t*>(out);
      auto v = static_cast<int32_t>(value);
      map_n(n, 1, [&](int64_t i) { p[i] = v; });
      break;
    }
  }
}

template <>
void cast<Backend::cpu>(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n) {
  if (src_dtype == dst_dtype) {
    std::memcpy(dst, src, n * dtype_size(src_dtype));
    return;
  }
  auto load = [&](int64_t i) -> float {
    switch (src_dtype) {
      case DType::f32:
        return static_cast<const float*>(src)[i];
      case DType::bf16:
        return bf16_to_float(static_cast<const uint16_t*>(src)[i]);
      case DType::i32:
        return static_cast<float>(static_cast<const int32_t*>(src)[i]);
    }
    return 0.f;
  };
  map_n(n, 2, [&](int64_t i) {
    float v = load(i);
    switch (dst_dtype) {
      case DType::f32:
        static_cast<float*>(dst)[i] = v;
        break;
      case DType::bf16:
        static_cast<uint16_t*>(dst)[i] = float_to_bf16(v);
        break;
      case DType::i32:
        static_cast<int32_t*>(dst)[i] = static_cast<int32_t>(std::lrint(v));
        break;
    }
  });
}

template <>
void fill_normal<Backend::cpu>(void* out_, int64_t n, uint64_t seed, uint64_t offset, float mean,
                               float std, DType dtype) {
  require_f32(dtype == DType::bf16 ? DType::f32 : dtype, "fill_normal");
  map_n(n, 20, [&](int64_t i) {
    float v = mean + std * random::normal(seed, offset + i);
    if (dtype == DType::f32)
      static_cast<float*>(out_)[i] = v;
    else
      static_cast<uint16_t*>(out_)[i] = float_to_bf16(v);
  });
}

template <>
void fill_uniform<Backend::cpu>(void* out_, int64_t n, uint64_t seed, uint64_t offset, float low,
                                float high, DType dtype) {
  require_f32(dtype == DType::bf16 ? DType::f32 : dtype, "fill_uniform");
  map_n(n, 8, [&](int64_t i) {
    float v = low + (high - low) * random::uniform(seed, offset + i);
    if (dtype == DType::f32)
      static_cast<float*>(out_)[i] = v;
    else
      static_cast<uint16_t*>(out_)[i] = float_to_bf16(v);
  });
}

template <>
void dropout<Backend::cpu>(const void* x_, void* out_, int64_t n, float p, uint64_t seed,
                           uint64_t offset, DType dtype) {
  require_f32(dtype, "dropout");
  auto x = static_cast<const float*>(x_);
  auto out = static_cast<float*>(out_);
  float keep_scale = 1.f / (1.f - p);
  map_n(n, 8, [&](int64_t i) {
    out[i] = random::uniform(seed, offset + i) >= p ? x[i] * keep_scale : 0.f;
  });
}

template <>
void dropout_backward<Backend::cpu>(const void* dy, void* dx, int64_t n, float p, uint64_t seed,
                                    uint64_t offset, DType dtype) {
  dropout<Backend::cpu>(dy, dx, n, p, seed, offset, dtype);  // same mask, same scale
}

}  // namespace tiller::kernels
