// CPU reference for kernels/layernorm.h: LayerNorm, fused residual + LayerNorm, RMSNorm.
//
// Rows are independent, so forward and dx run one row per loop iteration with OpenMP over rows.
// Row statistics use two passes (mean, then centred squares) accumulated in double and stored as
// f32: the reference should not carry the cancellation error of E[x^2] - E[x]^2.
// dweight/dbias are reductions over rows. Instead of per-thread partials (whose grouping would
// change with the thread count) they are column-parallel: each thread owns a slice of the C
// columns and walks every row in order, so every column sum is the same serial sum on any thread
// count. x-hat is recomputed from the saved statistics rather than stored.
#include "kernels/layernorm.h"

#include <cmath>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace tiller::kernels {

using cpu::parallel_for;
using cpu::require_f32;

namespace {

constexpr int64_t kFlopsPerElement = 8;  // rough cost per element, for parallel_for's cutoff

struct RowStats {
  float mean;
  float rstd;
};

RowStats layernorm_stats(const float* row, int64_t C, float eps) {
  double sum = 0;
  for (int64_t c = 0; c < C; ++c) sum += row[c];
  double mean = sum / static_cast<double>(C);
  double centred_squares = 0;
  for (int64_t c = 0; c < C; ++c) {
    double d = row[c] - mean;
    centred_squares += d * d;
  }
  double variance = centred_squares / static_cast<double>(C);  // biased, like PyTorch
  return {static_cast<float>(mean), static_cast<float>(1.0 / std::sqrt(variance + eps))};
}

void layernorm_row(const float* x, const float* weight, const float* bias, float* y, int64_t C,
                   float eps, float* mean_out, float* rstd_out) {
  RowStats s = layernorm_stats(x, C, eps);
  for (int64_t c = 0; c < C; ++c) {
    float normalised = (x[c] - s.mean) * s.rstd;
    y[c] = normalised * weight[c] + (bias ? bias[c] : 0.f);
  }
  *mean_out = s.mean;
  *rstd_out = s.rstd;
}

// dx for y = xhat * w (+ b) with xhat = (x - shift) * scale, where shift/scale are the row's
// statistics: dx = scale * (g - mean(g) * centred - xhat * mean(g * xhat)), g = dy * w.
// LayerNorm subtracts mean(g) (the mean depends on x); RMSNorm does not (`centred` false).
void norm_backward_rows(const float* dy, const float* x, const float* weight, const float* shift,
                        const float* scale, float* dx, int64_t N, int64_t C, bool centred) {
  parallel_for(N, C * kFlopsPerElement, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const float* dy_row = dy + n * C;
      const float* x_row = x + n * C;
      float* dx_row = dx + n * C;
      float mu = shift ? shift[n] : 0.f;
      float rs = scale[n];
      double sum_g = 0, sum_g_xhat = 0;
      for (int64_t c = 0; c < C; ++c) {
        double g = static_cast<double>(dy_row[c]) * weight[c];
        sum_g += g;
        sum_g_xhat += g * ((x_row[c] - mu) * rs);
      }
      float mean_g = centred ? static_cast<float>(sum_g / C) : 0.f;
      float mean_g_xhat = static_cast<float>(sum_g_xhat / C);
      for (int64_t c = 0; c < C; ++c) {
        float xhat = (x_row[c] - mu) * rs;
        dx_row[c] = rs * (dy_row[c] * weight[c] - mean_g - xhat * mean_g_xhat);
      }
    }
  });
}

// dweight[c] = sum_n dy[n,c] * xhat[n,c]; dbias[c] = sum_n dy[n,c]. Column-parallel (see top).
void norm_param_grads(const float* dy, const float* x, const float* shift, const float* scale,
                      float* dweight, float* dbias, int64_t N, int64_t C) {
  parallel_for(C, N * 4, [&](int64_t c0, int64_t c1) {
    int64_t width = c1 - c0;
    std::vector<double> weight_acc(width, 0.0), bias_acc(width, 0.0);
    for (int64_t n = 0; n < N; ++n) {
      const float* dy_row = dy + n * C + c0;
      const float* x_row = x + n * C + c0;
      float mu = shift ? shift[n] : 0.f;
      float rs = scale[n];
      for (int64_t i = 0; i < width; ++i) {
        weight_acc[i] += static_cast<double>(dy_row[i]) * ((x_row[i] - mu) * rs);
        bias_acc[i] += dy_row[i];
      }
    }
    for (int64_t i = 0; i < width; ++i) {
      dweight[c0 + i] = static_cast<float>(weight_acc[i]);
      if (dbias) dbias[c0 + i] = static_cast<float>(bias_acc[i]);
    }
  });
}

}  // namespace

template <>
void layernorm_forward<Backend::cpu>(const void* x_, const void* weight_, const void* bias_,
                                     void* y_, float* mean, float* rstd, int64_t N, int64_t C,
                                     float eps, DType dtype) {
  require_f32(dtype, "layernorm_forward");
  auto x = static_cast<const float*>(x_);
  auto weight = static_cast<const float*>(weight_);
  auto bias = static_cast<const float*>(bias_);
  auto y = static_cast<float*>(y_);
  parallel_for(N, C * kFlopsPerElement, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n)
      layernorm_row(x + n * C, weight, bias, y + n * C, C, eps, mean + n, rstd + n);
  });
}

template <>
void layernorm_backward<Backend::cpu>(const void* dy_, const void* x_, const void* weight_,
                                      const float* mean, const float* rstd, void* dx_,
                                      void* dweight_, void* dbias_, int64_t N, int64_t C,
                                      DType dtype) {
  require_f32(dtype, "layernorm_backward");
  auto dy = static_cast<const float*>(dy_);
  auto x = static_cast<const float*>(x_);
  auto weight = static_cast<const float*>(weight_);
  norm_backward_rows(dy, x, weight, mean, rstd, static_cast<float*>(dx_), N, C, true);
  norm_param_grads(dy, x, mean, rstd, static_cast<float*>(dweight_), static_cast<float*>(dbias_),
                   N, C);
}

template <>
void residual_layernorm_forward<Backend::cpu>(const void* x_, const void* residual_,
                                              void* residual_out_, const void* weight_,
                                              const void* bias_, void* y_, float* mean,
                                              float* rstd, int64_t N, int64_t C, float eps,
                                              DType dtype) {
  require_f32(dtype, "residual_layernorm_forward");
  auto x = static_cast<const float*>(x_);
  auto residual = static_cast<const float*>(residual_);
  auto residual_out = static_cast<float*>(residual_out_);
  auto weight = static_cast<const float*>(weight_);
  auto bias = static_cast<const float*>(bias_);
  auto y = static_cast<float*>(y_);
  parallel_for(N, C * (kFlopsPerElement + 1), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      float* sum_row = residual_out + n * C;
      for (int64_t c = 0; c < C; ++c) sum_row[c] = x[n * C + c] + residual[n * C + c];
      layernorm_row(sum_row, weight, bias, y + n * C, C, eps, mean + n, rstd + n);
    }
  });
}

template <>
void rmsnorm_forward<Backend::cpu>(const void* x_, const void* weight_, void* y_, float* rrms,
                                   int64_t N, int64_t C, float eps, DType dtype) {
  require_f32(dtype, "rmsnorm_forward");
  auto x = static_cast<const float*>(x_);
  auto weight = static_cast<const float*>(weight_);
  auto y = static_cast<float*>(y_);
  parallel_for(N, C * kFlopsPerElement, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const float* row = x + n * C;
      double squares = 0;
      for (int64_t c = 0; c < C; ++c) squares += static_cast<double>(row[c]) * row[c];
      float r = static_cast<float>(1.0 / std::sqrt(squares / static_cast<double>(C) + eps));
      for (int64_t c = 0; c < C; ++c) y[n * C + c] = row[c] * r * weight[c];
      rrms[n] = r;
    }
  });
}

template <>
void rmsnorm_backward<Backend::cpu>(const void* dy_, const void* x_, const void* weight_,
                                    const float* rrms, void* dx_, void* dweight_, int64_t N,
                                    int64_t C, DType dtype) {
  require_f32(dtype, "rmsnorm_backward");
  auto dy = static_cast<const float*>(dy_);
  auto x = static_cast<const float*>(x_);
  auto weight = static_cast<const float*>(weight_);
  norm_backward_rows(dy, x, weight, nullptr, rrms, static_cast<float*>(dx_), N, C, false);
  norm_param_grads(dy, x, nullptr, rrms, static_cast<float*>(dweight_), nullptr, N, C);
}

}  // namespace tiller::kernels
