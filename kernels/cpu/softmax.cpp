// CPU reference for kernels/softmax.h: softmax, log-softmax and the losses built on a row's
// log-sum-exp (cross-entropy, token log-probs, entropy).
//
// Every row is independent: OpenMP over rows, no cross-thread sums, so results never depend on
// the thread count. Each row's lse = max + log(sum exp(x - max)) is computed with the max
// subtracted (exp never overflows; the vectorised exp of kernels/cpu/vector_math.h, rel. error
// ~1e-7) and the sum accumulated in double; forwards use x - max and
// log(sum) separately, and only the saved lse is the rounded f32 sum of the two. The loss backwards
// rebuild p_j = exp(x_j - lse) from the saved f32 lse instead of storing a (rows, V) probability
// matrix.
#include <algorithm>
#include "kernels/softmax.h"

#include <cmath>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vector_math.h"

namespace tiller::kernels {

using cpu::parallel_for;
using cpu::require_f32;

namespace {

constexpr int64_t kFlopsPerElement = 16;  // exp dominates; rough cost for parallel_for's cutoff

// A row's log-sum-exp split as max + log_sum: callers work with (x - max) - log_sum, which keeps
// full precision at large logits where x - lse would lose the low bits of a rounded lse.
struct RowLse {
  float max;
  float log_sum;  // log(sum_j exp(x_j - max))
  float lse() const { return max + log_sum; }
};

// out[j] = scale * exp((in[j] - shift) - log_sum), shifts applied one at a time (see RowLse).
TILLER_SIMD_CLONES void scaled_exp_span(const float* in, float shift, float log_sum, float scale,
                                        float* out, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) out[j] = scale * cpu::vector_exp((in[j] - shift) - log_sum);
}

TILLER_SIMD_CLONES RowLse row_lse(const float* row, int64_t cols) {
  float max_value = -INFINITY;
  for (int64_t j = 0; j < cols; ++j) max_value = row[j] > max_value ? row[j] : max_value;
  double sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < cols; ++j) sum += cpu::vector_exp(row[j] - max_value);
  return {max_value, static_cast<float>(std::log(sum))};
}

// fn(r, row_in, row_out) for every row, in parallel.
template <typename Fn>
void for_rows(int64_t rows, int64_t cols, Fn&& fn) {
  parallel_for(rows, cols * kFlopsPerElement, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) fn(r);
  });
}

}  // namespace

template <>
void softmax_forward<Backend::cpu>(const void* x_, void* y_, int64_t rows, int64_t cols,
                                   DType dtype) {
  require_f32(dtype, "softmax_forward");
  auto x = static_cast<const float*>(x_);
  auto y = static_cast<float*>(y_);
  for_rows(rows, cols, [&](int64_t r) {
    const float* in = x + r * cols;
    float* out = y + r * cols;
    RowLse s = row_lse(in, cols);
    scaled_exp_span(in, s.max, s.log_sum, 1.f, out, cols);
  });
}

template <>
void softmax_backward<Backend::cpu>(const void* y_, const void* dy_, void* dx_, int64_t rows,
                                    int64_t cols, DType dtype) {
  require_f32(dtype, "softmax_backward");
  auto y = static_cast<const float*>(y_);
  auto dy = static_cast<const float*>(dy_);
  auto dx = static_cast<float*>(dx_);
  for_rows(rows, cols, [&](int64_t r) {
    const float* yr = y + r * cols;
    const float* dyr = dy + r * cols;
    double dot = 0;
    for (int64_t j = 0; j < cols; ++j) dot += static_cast<double>(dyr[j]) * yr[j];
    float dot_f = static_cast<float>(dot);
    for (int64_t j = 0; j < cols; ++j) dx[r * cols + j] = yr[j] * (dyr[j] - dot_f);
  });
}

template <>
void log_softmax_forward<Backend::cpu>(const void* x_, void* y_, int64_t rows, int64_t cols,
                                       DType dtype) {
  require_f32(dtype, "log_softmax_forward");
  auto x = static_cast<const float*>(x_);
  auto y = static_cast<float*>(y_);
  for_rows(rows, cols, [&](int64_t r) {
    const float* in = x + r * cols;
    RowLse s = row_lse(in, cols);
    for (int64_t j = 0; j < cols; ++j) y[r * cols + j] = (in[j] - s.max) - s.log_sum;
  });
}

template <>
void log_softmax_backward<Backend::cpu>(const void* y_, const void* dy_, void* dx_, int64_t rows,
                                        int64_t cols, DType dtype) {
  require_f32(dtype, "log_softmax_backward");
  auto y = static_cast<const float*>(y_);
  auto dy = static_cast<const float*>(dy_);
  auto dx = static_cast<float*>(dx_);
  for_rows(rows, cols, [&](int64_t r) {
    const float* yr = y + r * cols;
    const float* dyr = dy + r * cols;
    double total = 0;
    for (int64_t j = 0; j < cols; ++j) total += dyr[j];
    float total_f = static_cast<float>(total);
    for (int64_t j = 0; j < cols; ++j) dx[r * cols + j] = dyr[j] - std::exp(yr[j]) * total_f;
  });
}

template <>
void cross_entropy_forward<Backend::cpu>(const void* logits_, const int32_t* targets, float* loss,
                                         float* lse, int64_t rows, int64_t V, int32_t ignore_index,
                                         DType dtype) {
  require_f32(dtype, "cross_entropy_forward");
  auto logits = static_cast<const float*>(logits_);
  for_rows(rows, V, [&](int64_t r) {
    const float* row = logits + r * V;
    RowLse s = row_lse(row, V);
    lse[r] = s.lse();
    loss[r] = targets[r] == ignore_index ? 0.f : (s.max - row[targets[r]]) + s.log_sum;
  });
}

template <>
void argmax_hits<Backend::cpu>(const void* logits_, const int32_t* targets, float* hits,
                               int64_t rows, int64_t V, int32_t ignore_index, DType dtype) {
  require_f32(dtype, "argmax_hits");
  auto logits = static_cast<const float*>(logits_);
  for_rows(rows, V, [&](int64_t r) {
    const int32_t t = targets[r];
    if (t == ignore_index || t < 0 || t >= V) {
      hits[r] = 0.f;
      return;
    }
    const float* row = logits + r * V;
    hits[r] = std::max_element(row, row + V) - row == t ? 1.f : 0.f;
  });
}

template <>
void cross_entropy_backward<Backend::cpu>(const void* logits_, const int32_t* targets,
                                          const float* lse, const float* dloss, void* dlogits_,
                                          int64_t rows, int64_t V, int32_t ignore_index,
                                          DType dtype) {
  require_f32(dtype, "cross_entropy_backward");
  auto logits = static_cast<const float*>(logits_);
  auto dlogits = static_cast<float*>(dlogits_);
  for_rows(rows, V, [&](int64_t r) {
    const float* row = logits + r * V;
    float* out = dlogits + r * V;
    if (targets[r] == ignore_index) {
      for (int64_t j = 0; j < V; ++j) out[j] = 0.f;
      return;
    }
    scaled_exp_span(row, lse[r], 0.f, dloss[r], out, V);
    out[targets[r]] -= dloss[r];
  });
}

template <>
void token_logprobs_forward<Backend::cpu>(const void* logits_, const int32_t* tokens, float* logp,
                                          float* lse, int64_t rows, int64_t V, DType dtype) {
  require_f32(dtype, "token_logprobs_forward");
  auto logits = static_cast<const float*>(logits_);
  for_rows(rows, V, [&](int64_t r) {
    const float* row = logits + r * V;
    RowLse s = row_lse(row, V);
    lse[r] = s.lse();
    logp[r] = (row[tokens[r]] - s.max) - s.log_sum;
  });
}

template <>
void token_logprobs_backward<Backend::cpu>(const void* logits_, const int32_t* tokens,
                                           const float* lse, const float* dlogp, void* dlogits_,
                                           int64_t rows, int64_t V, DType dtype) {
  require_f32(dtype, "token_logprobs_backward");
  auto logits = static_cast<const float*>(logits_);
  auto dlogits = static_cast<float*>(dlogits_);
  for_rows(rows, V, [&](int64_t r) {
    const float* row = logits + r * V;
    float* out = dlogits + r * V;
    for (int64_t j = 0; j < V; ++j) out[j] = -dlogp[r] * std::exp(row[j] - lse[r]);
    out[tokens[r]] += dlogp[r];
  });
}

template <>
void entropy_forward<Backend::cpu>(const void* logits_, float* entropy, float* lse, int64_t rows,
                                   int64_t V, DType dtype) {
  require_f32(dtype, "entropy_forward");
  auto logits = static_cast<const float*>(logits_);
  for_rows(rows, V, [&](int64_t r) {
    const float* row = logits + r * V;
    RowLse s = row_lse(row, V);
    // -sum p log p; a p that underflows to 0 contributes 0, never NaN.
    double h = 0;
    for (int64_t j = 0; j < V; ++j) {
      double log_p = static_cast<double>(row[j] - s.max) - s.log_sum;
      h -= std::exp(log_p) * log_p;
    }
    lse[r] = s.lse();
    entropy[r] = static_cast<float>(h);
  });
}

template <>
void entropy_backward<Backend::cpu>(const void* logits_, const float* lse, const float* entropy,
                                    const float* dentropy, void* dlogits_, int64_t rows, int64_t V,
                                    DType dtype) {
  require_f32(dtype, "entropy_backward");
  auto logits = static_cast<const float*>(logits_);
  auto dlogits = static_cast<float*>(dlogits_);
  for_rows(rows, V, [&](int64_t r) {
    const float* row = logits + r * V;
    float* out = dlogits + r * V;
    for (int64_t j = 0; j < V; ++j) {
      float log_p = row[j] - lse[r];
      out[j] = -dentropy[r] * std::exp(log_p) * (log_p + entropy[r]);
    }
  });
}

}  // namespace tiller::kernels
