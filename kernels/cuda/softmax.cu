// CUDA softmax, log-softmax and the losses built on them, for kernels/softmax.h.
//
// One block per row. A row is read once for its log-sum-exp with the online (max, sum) update of
// Milakov & Gimelshein: each thread keeps a running max m and sum s = sum exp(x - m), rescaling
// s when m grows, and the block merges the (m, s) pairs in a fixed order (lane tree, then warps
// by index), so results are deterministic. Vocabulary rows (V ~ 50k) get 1024 threads, short
// rows 256, so a block never idles most of its threads.
// Losses keep only lse (f32, one per row) for the backward, which recomputes p = exp(x - lse)
// on the fly instead of storing a (rows, V) probability matrix:
//   cross-entropy  fwd: 1 read of the row (+1 element);  bwd: 1 read + 1 write.
//   token logprobs: same as cross-entropy.  entropy fwd: 2 reads (lse, then -sum p log p).
// Bytes for CE fwd+bwd ~ 3 * rows * V * sizeof(T); FLOPs ~ 5 per element (exp dominates).
// Rows with a -inf logit are fine (exp(-inf) = 0); an all -inf row has no distribution and
// produces NaN, as on the CPU.
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/helpers.cuh"
#include "kernels/softmax.h"

namespace tiller::kernels {

using namespace cuda_detail;

namespace {

struct MaxSum {
  float max;
  float sum;  // of exp(x - max)
};

__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
  if (a.max == -INFINITY) return b;
  if (b.max == -INFINITY) return a;
  float m = fmaxf(a.max, b.max);
  return {m, a.sum * expf(a.max - m) + b.sum * expf(b.max - m)};
}

// (max, sum exp(x - max)) of the row, returned to every thread of the block.
template <typename T>
__device__ MaxSum row_max_sum(const T* row, int64_t cols) {
  __shared__ MaxSum shared[32];
  MaxSum acc{-INFINITY, 0.f};
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    float v = load_f32(row, j);
    if (v == -INFINITY) continue;
    if (v > acc.max) {
      acc.sum = acc.sum * expf(acc.max - v) + 1.f;
      acc.max = v;
    } else {
      acc.sum += expf(v - acc.max);
    }
  }
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    MaxSum other{__shfl_xor_sync(0xffffffffu, acc.max, offset),
                 __shfl_xor_sync(0xffffffffu, acc.sum, offset)};
    acc = merge(acc, other);
  }
  int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  if (lane == 0) shared[warp] = acc;
  __syncthreads();
  MaxSum total{-INFINITY, 0.f};
  for (int w = 0; w < static_cast<int>(blockDim.x / kWarpSize); ++w) total = merge(total, shared[w]);
  __syncthreads();
  return total;
}

// A row's log-sum-exp kept as max + log_sum, as on the CPU: outputs are formed as
// (x - max) - log_sum, exact at large logits where x - lse would lose the low bits of lse.
struct RowLse {
  float max;
  float log_sum;
  __device__ float lse() const { return max + log_sum; }
};

template <typename T>
__device__ __forceinline__ RowLse row_lse(const T* row, int64_t cols) {
  MaxSum ms = row_max_sum(row, cols);
  return {ms.max, logf(ms.sum)};
}

template <typename T, bool kLog>
__global__ void softmax_forward_kernel(const T* x, T* y, int64_t cols) {
  int64_t base = static_cast<int64_t>(blockIdx.x) * cols;
  RowLse s = row_lse(x + base, cols);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    float shifted = (load_f32(x, base + j) - s.max) - s.log_sum;
    store_f32(y, base + j, kLog ? shifted : expf(shifted));
  }
}

template <typename T, bool kLog>
__global__ void softmax_backward_kernel(const T* y, const T* dy, T* dx, int64_t cols) {
  __shared__ float shared[32];
  int64_t base = static_cast<int64_t>(blockIdx.x) * cols;
  float acc = 0.f;  // softmax: sum dy * y; log-softmax: sum dy
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    float d = load_f32(dy, base + j);
    acc += kLog ? d : d * load_f32(y, base + j);
  }
  float total = block_sum(acc, shared);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    float d = load_f32(dy, base + j), v = load_f32(y, base + j);
    store_f32(dx, base + j, kLog ? d - expf(v) * total : v * (d - total));
  }
}

// Cross-entropy (kTokenLogprob = false: value = lse - x[t], ignore_index honoured) and token
// log-probs (true: value = x[t] - lse).
template <typename T, bool kTokenLogprob>
__global__ void gather_loss_forward_kernel(const T* logits, const int32_t* targets, float* value,
                                           float* lse_out, int64_t V, int32_t ignore_index) {
  int64_t r = blockIdx.x;
  const T* row = logits + r * V;
  RowLse s = row_lse(row, V);
  if (threadIdx.x == 0) {
    int32_t t = targets[r];
    lse_out[r] = s.lse();
    // An out-of-range t (reported by check_token_ids) counts as absent: no value, no gradient.
    if (t < 0 || t >= V) value[r] = 0.f;
    else if (kTokenLogprob) value[r] = (load_f32(row, t) - s.max) - s.log_sum;
    else value[r] = t == ignore_index ? 0.f : (s.max - load_f32(row, t)) + s.log_sum;
  }
}

// d logits = scale * p - scale * onehot(t), scale = +upstream for cross-entropy and -upstream
// for log-probs (the CPU's operation order, so the backends agree to the last bit or two).
template <typename T, bool kTokenLogprob>
__global__ void gather_loss_backward_kernel(const T* logits, const int32_t* targets,
                                            const float* lse, const float* upstream, T* dlogits,
                                            int64_t V, int32_t ignore_index) {
  int64_t r = blockIdx.x;
  int64_t base = r * V;
  int32_t t = targets[r];
  bool ignored = (!kTokenLogprob && t == ignore_index) || t < 0 || t >= V;
  float scale = ignored ? 0.f : (kTokenLogprob ? -upstream[r] : upstream[r]);
  float row_lse_value = lse[r];
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    float p = expf(load_f32(logits, base + j) - row_lse_value);
    float grad = scale * p;
    if (j == t) grad -= scale;
    store_f32(dlogits, base + j, ignored ? 0.f : grad);
  }
}

// H = -sum_j p_j log p_j with log p_j = (x_j - max) - log_sum (second pass once lse is known).
template <typename T>
__global__ void entropy_forward_kernel(const T* logits, float* entropy, float* lse_out,
                                       int64_t V) {
  __shared__ float shared[32];
  int64_t base = static_cast<int64_t>(blockIdx.x) * V;
  RowLse s = row_lse(logits + base, V);
  float acc = 0.f;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    float log_p = (load_f32(logits, base + j) - s.max) - s.log_sum;
    float p = expf(log_p);
    if (p > 0.f) acc -= p * log_p;  // an underflowed p contributes 0, never 0 * -inf = NaN
  }
  float h = block_sum(acc, shared);
  if (threadIdx.x == 0) {
    lse_out[blockIdx.x] = s.lse();
    entropy[blockIdx.x] = h;
  }
}

template <typename T>
__global__ void entropy_backward_kernel(const T* logits, const float* lse, const float* entropy,
                                        const float* dentropy, T* dlogits, int64_t V) {
  int64_t r = blockIdx.x;
  int64_t base = r * V;
  float row_lse_value = lse[r], h = entropy[r], d = dentropy[r];
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    float logp = load_f32(logits, base + j) - row_lse_value;
    float p = expf(logp);
    store_f32(dlogits, base + j, p > 0.f ? -d * p * (logp + h) : 0.f);
  }
}

int threads_for(int64_t cols) {
  constexpr int64_t kWideRow = 4096;  // from here a row keeps 1024 threads busy (4+ each)
  return cols >= kWideRow ? 1024 : 256;
}

unsigned row_grid(int64_t rows, const char* name) {
  TILLER_CHECK(rows <= INT32_MAX, "{}: {} rows exceed one grid dimension", name, rows);
  return static_cast<unsigned>(rows);
}

}  // namespace

template <>
void softmax_forward<Backend::cuda>(const void* x, void* y, int64_t rows, int64_t cols,
                                    DType dtype) {
  if (rows == 0 || cols == 0) return;
  TILLER_DISPATCH_FLOAT(dtype, "softmax_forward", {
    softmax_forward_kernel<T, false><<<row_grid(rows, "softmax_forward"), threads_for(cols)>>>(
        static_cast<const T*>(x), static_cast<T*>(y), cols);
    TILLER_CUDA_CHECK_LAUNCH();
  });
}

template <>
void softmax_backward<Backend::cuda>(const void* y, const void* dy, void* dx, int64_t rows,
                                     int64_t cols, DType dtype) {
  if (rows == 0 || cols == 0) return;
  TILLER_DISPATCH_FLOAT(dtype, "softmax_backward", {
    softmax_backward_kernel<T, false><<<row_grid(rows, "softmax_backward"), threads_for(cols)>>>(
        static_cast<const T*>(y), static_cast<const T*>(dy), static_cast<T*>(dx), cols);
    TILLER_CUDA_CHECK_LAUNCH();
  });
}

template <>
void log_softmax_forward<Backend::cuda>(const void* x, void* y, int64_t rows, int64_t cols,
                                        DType dtype) {
  if (rows == 0 || cols == 0) return;
  TILLER_DISPATCH_FLOAT(dtype, "log_softmax_forward", {
    softmax_forward_kernel<T, true><<<row_grid(rows, "log_softmax_forward"), threads_for(cols)>>>(
        static_cast<const T*>(x), static_cast<T*>(y), cols);
    TILLER_CUDA_CHECK_LAUNCH();
  });
}

template <>
void log_softmax_backward<Backend::cuda>(const void* y, const void* dy, void* dx, int64_t rows,
                                         int64_t cols, DType dtype) {
  if (rows == 0 || cols == 0) return;
  TILLER_DISPATCH_FLOAT(dtype, "log_softmax_backward", {
    softmax_backward_kernel<T, true>
        <<<row_grid(rows, "log_softmax_backward"), threads_for(cols)>>>(
            static_cast<const T*>(y), static_cast<const T*>(dy), static_cast<T*>(dx), cols);
    TILLER_CUDA_CHECK_LAUNCH();
  });
}

template <>
void cross_entropy_forward<Backend::cuda>(const void* logits, const int32_t* targets, float* loss,
                                          float* lse, int64_t rows, int64_t V,
                                          int32_t ignore_index, DType dtype) {
  if (rows == 0) return;
  TILLER_DISPATCH_FLOAT(dtype, "cross_entropy_forward", {
    gather_loss_forward_kernel<T, false>
        <<<row_grid(rows, "cross_entropy_forward"), threads_for(V)>>>(
            static_cast<const T*>(logits), targets, loss, lse, V, ignore_index);
    TILLER_CUDA_CHECK_LAUNCH();
  });
}

template <>
void cross_entropy_backward<Backend::cuda>(const void* logits, const int32_t* targets,
                                           const float* lse, const float* dloss, void* dlogits,
                                           int64_t rows, int64_t V, int32_t ignore_index,
                                           DType dtype) {
  if (rows == 0) return;
  TILLER_DISPATCH_FLOAT(dtype, "cross_entropy_backward", {
    gather_loss_backward_kernel<T, false>
        <<<row_grid(rows, "cross_entropy_backward"), threads_for(V)>>>(
            static_cast<const T*>(logits), targets, lse, dloss, static_cast<T*>(dlogits), V,
            ignore_index);
    TILLER_CUDA_CHECK_LAUNCH();
  });
}

template <>
void token_logprobs_forward<Backend::cuda>(const void* logits, const int32_t* tokens, float* logp,
                                           float* lse, int64_t rows, int64_t V, DType dtype) {
  if (rows == 0) return;
  TILLER_DISPATCH_FLOAT(dtype, "token_logprobs_forward", {
    gather_loss_forward_kernel<T, true>
        <<<row_grid(rows, "token_logprobs_forward"), threads_for(V)>>>(
            static_cast<const T*>(logits), tokens, logp, lse, V, 0);
    TILLER_CUDA_CHECK_LAUNCH();
  });
}

template <>
void token_logprobs_backward<Backend::cuda>(const void* logits, const int32_t* tokens,
                                            const float* lse, const float* dlogp, void* dlogits,
                                            int64_t rows, int64_t V, DType dtype) {
  if (rows == 0) return;
  TILLER_DISPATCH_FLOAT(dtype, "token_logprobs_backward", {
    gather_loss_backward_kernel<T, true>
        <<<row_grid(rows, "token_logprobs_backward"), threads_for(V)>>>(
            static_cast<const T*>(logits), tokens, lse, dlogp, static_cast<T*>(dlogits), V, 0);
    TILLER_CUDA_CHECK_LAUNCH();
  });
}

template <>
void entropy_forward<Backend::cuda>(const void* logits, float* entropy, float* lse, int64_t rows,
                                    int64_t V, DType dtype) {
  if (rows == 0) return;
  TILLER_DISPATCH_FLOAT(dtype, "entropy_forward", {
    entropy_forward_kernel<T><<<row_grid(rows, "entropy_forward"), threads_for(V)>>>(
        static_cast<const T*>(logits), entropy, lse, V);
    TILLER_CUDA_CHECK_LAUNCH();
  });
}

template <>
void entropy_backward<Backend::cuda>(const void* logits, const float* lse, const float* entropy,
                                     const float* dentropy, void* dlogits, int64_t rows,
                                     int64_t V, DType dtype) {
  if (rows == 0) return;
  TILLER_DISPATCH_FLOAT(dtype, "entropy_backward", {
    entropy_backward_kernel<T><<<row_grid(rows, "entropy_backward"), threads_for(V)>>>(
        static_cast<const T*>(logits), lse, entropy, dentropy, static_cast<T*>(dlogits), V);
    TILLER_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace tiller::kernels
