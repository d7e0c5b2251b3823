// CUDA LayerNorm / RMSNorm for kernels/layernorm.h (forward, fused residual forward, backward).
//
// Forward: one warp per row (8 rows per 256-thread block), as in llm.c's layernorm_forward
// kernel3. Rows of a transformer are C = 768..8192 wide, so a warp covers a row in a few 16-byte
// loads per lane and needs no shared memory or block barriers. Statistics are f32 whatever the
// dtype; the variance is computed in a second pass over the row (re-read from L1/L2) rather
// than as E[x^2] - E[x]^2, which cancels catastrophically when |mean| >> std.
// The residual variant writes residual_out = x + residual in the first pass and normalises the
// stored (rounded, for bf16) value, so it equals residual add followed by layernorm exactly.
// Backward dx: one warp per row, two passes (row sums of g = dy * w and g * xhat, then dx).
// Backward dweight/dbias are column sums over N rows. They are NOT accumulated with float
// atomics (the result would depend on scheduling): blocks of 32 columns x 8 row-groups each sum
// a fixed chunk of rows into a per-chunk partial (scratch from the caching allocator), and a
// second kernel adds the partials in chunk order. dweight/dbias are overwritten.
// Bytes (bf16): forward 2NC in + 2NC out (+2NC for the residual); backward reads dy and x twice
// (once for dx, once for the weight gradients) and writes dx: ~10NC. FLOPs ~ 10 per element.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/helpers.cuh"
#include "kernels/layernorm.h"

namespace tiller::kernels {

using namespace cuda_detail;

namespace {

constexpr int kRowsPerBlock = 8;  // warps per 256-thread block, one row each
constexpr int kTileColumns = 32;
constexpr int kTileRowGroups = 8;
constexpr int64_t kTargetBlocks = 1024;  // ~8 blocks per SM on a 132-SM H100
constexpr int64_t kMinChunkRows = 32;    // rows per weight-gradient chunk, at least

enum class Norm { layer, rms };

// One warp normalises one row. kResidual: first form and store residual_out = x + residual.
template <typename T, int V, Norm kNorm, bool kResidual>
__global__ void norm_forward_kernel(const T* x, const T* residual, T* residual_out,
                                    const T* weight, const T* bias, T* y, float* mean,
                                    float* rstd, int64_t N, int64_t C, float eps) {
  int lane = threadIdx.x % kWarpSize;
  int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= N) return;
  int64_t base = row * C;
  const T* source = kResidual ? residual_out : x;

  float sum = 0.f;  // of x (layer) or x^2 (rms)
  for (int64_t i = lane * V; i < C; i += kWarpSize * V) {
    float v[V];
    load_pack<T, V>(x, base + i, v);
    if constexpr (kResidual) {
      float r[V];
      load_pack<T, V>(residual, base + i, r);
#pragma unroll
      for (int k = 0; k < V; ++k) v[k] = to_float(from_float<T>(v[k] + r[k]));  // as stored
      store_pack<T, V>(residual_out, base + i, v);
    }
#pragma unroll
    for (int k = 0; k < V; ++k) sum += kNorm == Norm::layer ? v[k] : v[k] * v[k];
  }
  sum = warp_sum(sum);

  float row_mean = 0.f, scale;
  if constexpr (kNorm == Norm::layer) {
    row_mean = sum / C;
    float squares = 0.f;
    for (int64_t i = lane * V; i < C; i += kWarpSize * V) {
      float v[V];
      load_pack<T, V>(source, base + i, v);
#pragma unroll
      for (int k = 0; k < V; ++k) squares += (v[k] - row_mean) * (v[k] - row_mean);
    }
    scale = 1.f / sqrtf(warp_sum(squares) / C + eps);
  } else {
    scale = 1.f / sqrtf(sum / C + eps);
  }

  for (int64_t i = lane * V; i < C; i += kWarpSize * V) {
    float v[V], w[V], b[V] = {};
    load_pack<T, V>(source, base + i, v);
    load_pack<T, V>(weight, i, w);
    if (bias != nullptr) load_pack<T, V>(bias, i, b);
#pragma unroll
    for (int k = 0; k < V; ++k) v[k] = (v[k] - row_mean) * scale * w[k] + b[k];
    store_pack<T, V>(y, base + i, v);
  }
  if (lane == 0) {
    if (mean != nullptr) mean[row] = row_mean;
    rstd[row] = scale;
  }
}

// dx for one row per warp. layer: dx = rstd (g - mean(g) - xhat mean(g xhat)); rms drops mean(g).
template <typename T, int V, Norm kNorm>
__global__ void norm_backward_dx_kernel(const T* dy, const T* x, const T* weight,
                                        const float* mean, const float* rstd, T* dx, int64_t N,
                                        int64_t C) {
  int lane = threadIdx.x % kWarpSize;
  int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= N) return;
  int64_t base = row * C;
  float row_mean = kNorm == Norm::layer ? mean[row] : 0.f;
  float scale = rstd[row];

  float sum_g = 0.f, sum_gx = 0.f;
  for (int64_t i = lane * V; i < C; i += kWarpSize * V) {
    float d[V], v[V], w[V];
    load_pack<T, V>(dy, base + i, d);
    load_pack<T, V>(x, base + i, v);
    load_pack<T, V>(weight, i, w);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      float g = d[k] * w[k];
      sum_g += g;
      sum_gx += g * (v[k] - row_mean) * scale;
    }
  }
  float mean_g = kNorm == Norm::layer ? warp_sum(sum_g) / C : 0.f;
  float mean_gx = warp_sum(sum_gx) / C;

  for (int64_t i = lane * V; i < C; i += kWarpSize * V) {
    float d[V], v[V], w[V], out[V];
    load_pack<T, V>(dy, base + i, d);
    load_pack<T, V>(x, base + i, v);
    load_pack<T, V>(weight, i, w);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      float xhat = (v[k] - row_mean) * scale;
      out[k] = (d[k] * w[k] - mean_g - xhat * mean_gx) * scale;
    }
    store_pack<T, V>(dx, base + i, out);
  }
}

// Per-chunk column sums: partial_w[k, c] = sum dy * xhat, partial_b[k, c] = sum dy over the
// rows of chunk k. Block: 32 columns x 8 row-groups, which meet in shared memory in fixed order.
template <typename T, Norm kNorm>
__global__ void norm_weight_partial_kernel(const T* dy, const T* x, const float* mean,
                                           const float* rstd, float* partial_w, float* partial_b,
                                           int64_t N, int64_t C, int64_t chunk_rows) {
  __shared__ float shared_w[kTileRowGroups][kTileColumns];
  __shared__ float shared_b[kTileRowGroups][kTileColumns];
  int64_t c = static_cast<int64_t>(blockIdx.x) * kTileColumns + threadIdx.x;
  int64_t k = blockIdx.y;
  int64_t begin = k * chunk_rows;
  int64_t end = begin + chunk_rows < N ? begin + chunk_rows : N;
  float acc_w = 0.f, acc_b = 0.f;
  if (c < C) {
    for (int64_t row = begin + threadIdx.y; row < end; row += kTileRowGroups) {
      float d = load_f32(dy, row * C + c);
      float row_mean = kNorm == Norm::layer ? mean[row] : 0.f;
      acc_w += d * (load_f32(x, row * C + c) - row_mean) * rstd[row];
      acc_b += d;
    }
  }
  shared_w[threadIdx.y][threadIdx.x] = acc_w;
  shared_b[threadIdx.y][threadIdx.x] = acc_b;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float total_w = 0.f, total_b = 0.f;
    for (int g = 0; g < kTileRowGroups; ++g) {
      total_w += shared_w[g][threadIdx.x];
      total_b += shared_b[g][threadIdx.x];
    }
    partial_w[k * C + c] = total_w;
    if (partial_b != nullptr) partial_b[k * C + c] = total_b;
  }
}

template <typename T>
__global__ void norm_weight_finish_kernel(const float* partial_w, const float* partial_b,
                                          T* dweight, T* dbias, int64_t C, int64_t chunks) {
  int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float total_w = 0.f, total_b = 0.f;
  for (int64_t k = 0; k < chunks; ++k) {
    total_w += partial_w[k * C + c];
    if (dbias != nullptr) total_b += partial_b[k * C + c];
  }
  store_f32(dweight, c, total_w);
  if (dbias != nullptr) store_f32(dbias, c, total_b);
}

unsigned row_blocks(int64_t N) { return blocks_for(N, kRowsPerBlock); }

template <Norm kNorm, bool kResidual>
void launch_forward(const void* x, const void* residual, void* residual_out, const void* weight,
                    const void* bias, void* y, float* mean, float* rstd, int64_t N, int64_t C,
                    float eps, DType dtype, const char* name) {
  TILLER_CHECK(C > 0, "{}: C must be positive, got {}", name, C);
  if (N == 0) return;
  TILLER_DISPATCH_FLOAT(dtype, name, {
    auto args = [&](auto kernel) {
      kernel<<<row_blocks(N), kRowsPerBlock * kWarpSize>>>(
          static_cast<const T*>(x), static_cast<const T*>(residual), static_cast<T*>(residual_out),
          static_cast<const T*>(weight), static_cast<const T*>(bias), static_cast<T*>(y), mean,
          rstd, N, C, eps);
    };
    if (pack_width(C, sizeof(T), {x, residual, residual_out, weight, bias, y}) > 1)
      args(norm_forward_kernel<T, kPackWidth<T>, kNorm, kResidual>);
    else
      args(norm_forward_kernel<T, 1, kNorm, kResidual>);
    TILLER_CUDA_CHECK_LAUNCH();
  });
}

template <Norm kNorm>
void launch_backward(const void* dy, const void* x, const void* weight, const float* mean,
                     const float* rstd, void* dx, void* dweight, void* dbias, int64_t N,
                     int64_t C, DType dtype, const char* name) {
  if (C == 0) return;
  TILLER_DISPATCH_FLOAT(dtype, name, {
    if (N > 0) {
      auto run_dx = [&](auto kernel) {
        kernel<<<row_blocks(N), kRowsPerBlock * kWarpSize>>>(
            static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<const T*>(weight),
            mean, rstd, static_cast<T*>(dx), N, C);
      };
      if (pack_width(C, sizeof(T), {dy, x, weight, dx}) > 1)
        run_dx(norm_backward_dx_kernel<T, kPackWidth<T>, kNorm>);
      else
        run_dx(norm_backward_dx_kernel<T, 1, kNorm>);
      TILLER_CUDA_CHECK_LAUNCH();
    }

    int64_t tiles = (C + kTileColumns - 1) / kTileColumns;
    int64_t wanted = (kTargetBlocks + tiles - 1) / tiles;
    int64_t most = (N + kMinChunkRows - 1) / kMinChunkRows;
    int64_t chunks = wanted < most ? wanted : most;
    if (chunks < 1) chunks = 1;
    int64_t chunk_rows = (N + chunks - 1) / chunks;
    bool has_bias = dbias != nullptr;
    ScratchBuffer partial((has_bias ? 2 : 1) * chunks * C * sizeof(float));
    float* partial_w = partial.as<float>();
    float* partial_b = has_bias ? partial_w + chunks * C : nullptr;
    dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(chunks));
    norm_weight_partial_kernel<T, kNorm><<<grid, dim3(kTileColumns, kTileRowGroups)>>>(
        static_cast<const T*>(dy), static_cast<const T*>(x), mean, rstd, partial_w, partial_b,
        N, C, chunk_rows);
    TILLER_CUDA_CHECK_LAUNCH();
    constexpr int kThreads = 256;
    norm_weight_finish_kernel<T><<<blocks_for(C, kThreads), kThreads>>>(
        partial_w, partial_b, static_cast<T*>(dweight), static_cast<T*>(dbias), C, chunks);
    TILLER_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

template <>
void layernorm_forward<Backend::cuda>(const void* x, const void* weight, const void* bias, void* y,
                                      float* mean, float* rstd, int64_t N, int64_t C, float eps,
                                      DType dtype) {
  launch_forward<Norm::layer, false>(x, nullptr, nullptr, weight, bias, y, mean, rstd, N, C, eps,
                                     dtype, "layernorm_forward");
}

template <>
void layernorm_backward<Backend::cuda>(const void* dy, const void* x, const void* weight,
                                       const float* mean, const float* rstd, void* dx,
                                       void* dweight, void* dbias, int64_t N, int64_t C,
                                       DType dtype) {
  launch_backward<Norm::layer>(dy, x, weight, mean, rstd, dx, dweight, dbias, N, C, dtype,
                               "layernorm_backward");
}

template <>
void residual_layernorm_forward<Backend::cuda>(const void* x, const void* residual,
                                               void* residual_out, const void* weight,
                                               const void* bias, void* y, float* mean,
                                               float* rstd, int64_t N, int64_t C, float eps,
                                               DType dtype) {
  launch_forward<Norm::layer, true>(x, residual, residual_out, weight, bias, y, mean, rstd, N, C,
                                    eps, dtype, "residual_layernorm_forward");
}

template <>
void rmsnorm_forward<Backend::cuda>(const void* x, const void* weight, void* y, float* rrms,
                                    int64_t N, int64_t C, float eps, DType dtype) {
  launch_forward<Norm::rms, false>(x, nullptr, nullptr, weight, nullptr, y, nullptr, rrms, N, C,
                                   eps, dtype, "rmsnorm_forward");
}

template <>
void rmsnorm_backward<Backend::cuda>(const void* dy, const void* x, const void* weight,
                                     const float* rrms, void* dx, void* dweight, int64_t N,
                                     int64_t C, DType dtype) {
  launch_backward<Norm::rms>(dy, x, weight, nullptr, rrms, dx, dweight, nullptr, N, C, dtype,
                             "rmsnorm_backward");
}

}  // namespace tiller::kernels
