// CUDA flash attention, backward (kernels/attention.h), FlashAttention-2 style, f32 and bf16,
// any head dim up to 256. Three launches:
//
//   1. delta_i = rowsum(dout_i * out_i) (B, Hq, Tq) f32 — the softmax-backward correction, one
//      warp per row, computed once instead of once per key tile.
//   2. dk, dv: one block per (b, kv head, tile of keys). The block keeps its key tile and the dk/dv
//      accumulators in shared memory and loops over every query head of the group and every query
//      tile that can see the keys (causal: from the first query at or after the tile), recomputing
//      p = exp(scale q.k - lse) and ds = p (dout.v - delta). Each accumulator element has exactly
//      one owning thread and the loops run in a fixed order, so dk/dv are summed over the group
//      deterministically and without atomics.
//   3. dq: one block per (b, q head, tile of 16 queries) looping over the visible key tiles and
//      recomputing p and ds. Choice: recompute rather than atomically add dq from kernel 2 — it
//      costs the two tile dot products again (backward ~3.5x forward instead of ~2.5x) but keeps
//      dq deterministic and free of float atomics.
// Tiles: 16 query rows x 32 keys (16 keys in kernel 2 when D > 128, to fit dk/dv accumulators in
// shared memory); K and V rows padded to D + 1 floats so one-key-per-lane reads are conflict-free.
// Shared memory, kernel 2 at D = 128: K, V 2 x 32 x 129 + Q, dout 2 x 16 x 128 + p, ds 2 x 16 x 32
// + dk, dv 2 x 32 x 128 floats + 32 = 85 KB; kernel 3: 69 KB.
// Tensor cores are not used here yet (FMA tiles in f32); that is the next step for bf16 speed.
// FLOPs: kernel 2 does 4 tile products (q.k, dout.v, p^T dout, ds^T q) and kernel 3 three
// (q.k, dout.v, ds k): 7 x 2 Tq Tk D per head (halved when causal).
#include <algorithm>

#include "kernels/cuda/attention.cuh"

namespace tiller::kernels {

namespace attention_detail {
namespace {

// delta[row] = sum_d dout[row, d] * out[row, d], one warp per row.
template <typename T>
__global__ void attention_delta_kernel(const T* __restrict__ out, const T* __restrict__ dout,
                                       float* __restrict__ delta, int64_t rows, int64_t D) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  float partial = 0.f;
  for (int64_t d = lane; d < D; d += 32)
    partial += cuda_detail::load_f32(out, row * D + d) * cuda_detail::load_f32(dout, row * D + d);
  partial = warp_sum(partial);
  if (lane == 0) delta[row] = partial;
}

// The shared-memory tile every backward kernel works on: 16 query rows against `keys` keys.
struct Tile {
  const float* q;      // (16, D)
  const float* dout;   // (16, D)
  const float* lse;    // (16)
  const float* delta;  // (16)
  const float* k;      // (keys, D+1)
  const float* v;      // (keys, D+1)
  float* p;            // (16, keys) out: probabilities
  float* ds;           // (16, keys) out: dL/dscore (before the scale factor)
};

// p = exp(scale q.k - lse), ds = p (dout.v - delta) for every (row, key) of the tile; zero where
// the key is hidden, out of range, or the row saw no key at all (lse = -inf).
__device__ void probability_and_score_gradient(const Params& p, const Tile& t, int64_t b,
                                               int64_t q0, int rows, int64_t k0, int keys,
                                               int tile_keys) {
  const int D = static_cast<int>(p.D), ld = D + 1;
  for (int e = threadIdx.x; e < kFmaQueryRows * tile_keys; e += kFmaThreads) {
    int i = e / tile_keys, j = e % tile_keys;
    float prob = 0.f, score_grad = 0.f;
    if (i < rows && j < keys && t.lse[i] != -CUDART_INF_F && key_visible(p, b, q0 + i, k0 + j)) {
      float qk = 0.f, dov = 0.f;
      for (int d = 0; d < D; ++d) {
        qk += t.q[i * D + d] * t.k[j * ld + d];
        dov += t.dout[i * D + d] * t.v[j * ld + d];
      }
      prob = __expf(qk * p.scale - t.lse[i]);
      score_grad = prob * (dov - t.delta[i]);
    }
    t.p[e] = prob;
    t.ds[e] = score_grad;
  }
}

// Stages rows [q0, q0 + rows) of one query head: q and dout as f32, lse and delta.
template <typename T>
__device__ void load_query_tile(const Params& p, const T* q, const T* dout, const float* lse,
                                const float* delta, int64_t bh, int64_t q0, int rows, float* qs,
                                float* douts, float* lse_s, float* delta_s) {
  const int D = static_cast<int>(p.D);
  const int64_t base = (bh * p.Tq + q0) * D;
  for (int e = threadIdx.x; e < kFmaQueryRows * D; e += kFmaThreads) {
    bool in_range = e / D < rows;
    qs[e] = in_range ? cuda_detail::load_f32(q, base + e) : 0.f;
    douts[e] = in_range ? cuda_detail::load_f32(dout, base + e) : 0.f;
  }
  if (threadIdx.x < kFmaQueryRows) {
    bool in_range = static_cast<int>(threadIdx.x) < rows;
    lse_s[threadIdx.x] = in_range ? lse[bh * p.Tq + q0 + threadIdx.x] : -CUDART_INF_F;
    delta_s[threadIdx.x] = in_range ? delta[bh * p.Tq + q0 + threadIdx.x] : 0.f;
  }
}

// Stages keys [k0, k0 + keys) of one kv head into (tile_keys, D+1) f32 tiles, zero-padded.
template <typename T>
__device__ void load_key_tile(const Params& p, const T* k, const T* v, int64_t kv_row0, int keys,
                              int tile_keys, float* ks, float* vs) {
  const int D = static_cast<int>(p.D), ld = D + 1;
  for (int e = threadIdx.x; e < tile_keys * D; e += kFmaThreads) {
    int j = e / D, d = e % D;
    bool in_range = j < keys;
    ks[j * ld + d] = in_range ? cuda_detail::load_f32(k, (kv_row0 + j) * D + d) : 0.f;
    vs[j * ld + d] = in_range ? cuda_detail::load_f32(v, (kv_row0 + j) * D + d) : 0.f;
  }
}

int dkdv_tile_keys(int64_t D) {
  return D > 128 ? kFmaKeys / 2 : kFmaKeys;
}

size_t dkdv_smem_bytes(int64_t D, int tile_keys) {
  return sizeof(float) *
         static_cast<size_t>(2 * tile_keys * (D + 1) + 2 * kFmaQueryRows * D + 2 * kFmaQueryRows +
                             2 * kFmaQueryRows * tile_keys + 2 * tile_keys * D);
}

size_t dq_smem_bytes(int64_t D) {
  return sizeof(float) *
         static_cast<size_t>(2 * kFmaKeys * (D + 1) + 2 * kFmaQueryRows * D + 2 * kFmaQueryRows +
                             2 * kFmaQueryRows * kFmaKeys + kFmaQueryRows * D);
}

template <typename T>
__global__ void __launch_bounds__(kFmaThreads)
    attention_dkdv_kernel(Params p, const T* __restrict__ q, const T* __restrict__ k,
                          const T* __restrict__ v, const T* __restrict__ dout,
                          const float* __restrict__ lse, const float* __restrict__ delta,
                          T* __restrict__ dk, T* __restrict__ dv, int tile_keys) {
  const int D = static_cast<int>(p.D), ld = D + 1;
  extern __shared__ float smem[];
  float* ks = smem;                                 // (tile_keys, D+1)
  float* vs = ks + tile_keys * ld;                  // (tile_keys, D+1)
  float* qs = vs + tile_keys * ld;                  // (16, D)
  float* douts = qs + kFmaQueryRows * D;            // (16, D)
  float* lse_s = douts + kFmaQueryRows * D;         // (16)
  float* delta_s = lse_s + kFmaQueryRows;           // (16)
  float* ps = delta_s + kFmaQueryRows;              // (16, tile_keys)
  float* dss = ps + kFmaQueryRows * tile_keys;      // (16, tile_keys)
  float* dk_acc = dss + kFmaQueryRows * tile_keys;  // (tile_keys, D)
  float* dv_acc = dk_acc + tile_keys * D;           // (tile_keys, D)

  const int64_t k_tiles = (p.Tk + tile_keys - 1) / tile_keys;
  const int64_t b_kv = blockIdx.x / k_tiles;  // b * Hkv + kv head
  const int64_t b = b_kv / p.Hkv, kv_head = b_kv % p.Hkv;
  const int64_t k0 = (blockIdx.x % k_tiles) * tile_keys;
  const int keys = static_cast<int>(min(static_cast<int64_t>(tile_keys), p.Tk - k0));

  load_key_tile(p, k, v, b_kv * p.Tk + k0, keys, tile_keys, ks, vs);
  for (int e = threadIdx.x; e < tile_keys * D; e += kFmaThreads) dk_acc[e] = dv_acc[e] = 0.f;
  // Causal: query i sees key k0 only when Tk - Tq + i >= k0.
  int64_t first_query = p.causal ? max(static_cast<int64_t>(0), k0 - (p.Tk - p.Tq)) : 0;
  first_query = first_query / kFmaQueryRows * kFmaQueryRows;

  for (int64_t h = kv_head * p.group; h < (kv_head + 1) * p.group; ++h) {
    const int64_t bh = b * p.Hq + h;
    for (int64_t q0 = first_query; q0 < p.Tq; q0 += kFmaQueryRows) {
      const int rows = static_cast<int>(min(static_cast<int64_t>(kFmaQueryRows), p.Tq - q0));
      __syncthreads();  // the previous query tile is fully consumed
      load_query_tile(p, q, dout, lse, delta, bh, q0, rows, qs, douts, lse_s, delta_s);
      __syncthreads();
      probability_and_score_gradient(p, Tile{qs, douts, lse_s, delta_s, ks, vs, ps, dss}, b, q0,
                                     rows, k0, keys, tile_keys);
      __syncthreads();
      for (int e = threadIdx.x; e < tile_keys * D; e += kFmaThreads) {
        int j = e / D, d = e % D;
        float dv_sum = 0.f, dk_sum = 0.f;
#pragma unroll 4
        for (int i = 0; i < kFmaQueryRows; ++i) {
          dv_sum += ps[i * tile_keys + j] * douts[i * D + d];
          dk_sum += dss[i * tile_keys + j] * qs[i * D + d];
        }
        dv_acc[e] += dv_sum;
        dk_acc[e] += dk_sum;
      }
    }
  }
  __syncthreads();
  const int64_t base = (b_kv * p.Tk + k0) * D;
  for (int e = threadIdx.x; e < keys * D; e += kFmaThreads) {
    cuda_detail::store_f32(dk, base + e, dk_acc[e] * p.scale);
    cuda_detail::store_f32(dv, base + e, dv_acc[e]);
  }
}

template <typename T>
__global__ void __launch_bounds__(kFmaThreads)
    attention_dq_kernel(Params p, const T* __restrict__ q, const T* __restrict__ k,
                        const T* __restrict__ v, const T* __restrict__ dout,
                        const float* __restrict__ lse, const float* __restrict__ delta,
                        T* __restrict__ dq) {
  const int D = static_cast<int>(p.D), ld = D + 1;
  extern __shared__ float smem[];
  float* ks = smem;                                // (32, D+1)
  float* vs = ks + kFmaKeys * ld;                  // (32, D+1)
  float* qs = vs + kFmaKeys * ld;                  // (16, D)
  float* douts = qs + kFmaQueryRows * D;           // (16, D)
  float* lse_s = douts + kFmaQueryRows * D;        // (16)
  float* delta_s = lse_s + kFmaQueryRows;          // (16)
  float* ps = delta_s + kFmaQueryRows;             // (16, 32)
  float* dss = ps + kFmaQueryRows * kFmaKeys;      // (16, 32)
  float* dq_acc = dss + kFmaQueryRows * kFmaKeys;  // (16, D)

  const int64_t q_tiles = (p.Tq + kFmaQueryRows - 1) / kFmaQueryRows;
  const int64_t bh = blockIdx.x / q_tiles;
  const int64_t q0 = (q_tiles - 1 - blockIdx.x % q_tiles) * kFmaQueryRows;  // heaviest first
  const int64_t b = bh / p.Hq, kv_head = (bh % p.Hq) / p.group;
  const int rows = static_cast<int>(min(static_cast<int64_t>(kFmaQueryRows), p.Tq - q0));
  const int64_t kv_row0 = (b * p.Hkv + kv_head) * p.Tk;

  load_query_tile(p, q, dout, lse, delta, bh, q0, rows, qs, douts, lse_s, delta_s);
  for (int e = threadIdx.x; e < kFmaQueryRows * D; e += kFmaThreads) dq_acc[e] = 0.f;
  const int64_t key_end = key_end_for_query(p, q0 + rows - 1);

  for (int64_t k0 = 0; k0 < key_end; k0 += kFmaKeys) {
    const int keys = static_cast<int>(min(static_cast<int64_t>(kFmaKeys), p.Tk - k0));
    __syncthreads();  // the previous key tile is fully consumed
    load_key_tile(p, k, v, kv_row0 + k0, keys, kFmaKeys, ks, vs);
    __syncthreads();
    probability_and_score_gradient(p, Tile{qs, douts, lse_s, delta_s, ks, vs, ps, dss}, b, q0, rows,
                                   k0, keys, kFmaKeys);
    __syncthreads();
    for (int e = threadIdx.x; e < kFmaQueryRows * D; e += kFmaThreads) {
      int i = e / D, d = e % D;
      float sum = 0.f;
      // ds = 0 terms (hidden keys) are skipped, never multiplied: a masked key's NaN / Inf must
      // not leak into dq (as on the CPU).
#pragma unroll 8
      for (int j = 0; j < kFmaKeys; ++j) {
        float score_grad = dss[i * kFmaKeys + j];
        sum += score_grad != 0.f ? score_grad * ks[j * ld + d] : 0.f;
      }
      dq_acc[e] += sum;
    }
  }
  __syncthreads();
  for (int e = threadIdx.x; e < rows * D; e += kFmaThreads)
    cuda_detail::store_f32(dq, (bh * p.Tq + q0) * D + e, dq_acc[e] * p.scale);
}

template <typename T>
void launch_backward(const Params& p, const T* q, const T* k, const T* v, const T* out,
                     const T* dout, const float* lse, T* dq, T* dk, T* dv) {
  const int64_t query_rows = p.B * p.Hq * p.Tq;
  ScratchBuffer delta(sizeof(float) * static_cast<size_t>(std::max<int64_t>(query_rows, 1)));
  if (query_rows > 0) {
    constexpr int kDeltaThreads = 256;  // 8 rows per block
    attention_delta_kernel<T>
        <<<cuda_detail::blocks_for(query_rows * 32, kDeltaThreads), kDeltaThreads>>>(
            out, dout, delta.as<float>(), query_rows, p.D);
    TILLER_CUDA_CHECK_LAUNCH();
  }

  const int tile_keys = dkdv_tile_keys(p.D);
  const int64_t kv_blocks = p.B * p.Hkv * ((p.Tk + tile_keys - 1) / tile_keys);
  if (kv_blocks > 0) {
    const size_t smem = dkdv_smem_bytes(p.D, tile_keys);
    allow_shared_memory(attention_dkdv_kernel<T>, smem);
    attention_dkdv_kernel<T><<<static_cast<unsigned>(kv_blocks), kFmaThreads, smem>>>(
        p, q, k, v, dout, lse, delta.as<float>(), dk, dv, tile_keys);
    TILLER_CUDA_CHECK_LAUNCH();
  }

  const int64_t q_blocks = p.B * p.Hq * ((p.Tq + kFmaQueryRows - 1) / kFmaQueryRows);
  if (q_blocks > 0) {
    const size_t smem = dq_smem_bytes(p.D);
    allow_shared_memory(attention_dq_kernel<T>, smem);
    attention_dq_kernel<T><<<static_cast<unsigned>(q_blocks), kFmaThreads, smem>>>(
        p, q, k, v, dout, lse, delta.as<float>(), dq);
    TILLER_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace
}  // namespace attention_detail

template <>
void attention_backward<Backend::cuda>(const AttentionShape& shape, const void* q, const void* k,
                                       const void* v, const void* out, const void* dout,
                                       const float* lse, void* dq, void* dk, void* dv,
                                       DType dtype) {
  using namespace attention_detail;
  TILLER_CHECK(shape.Hkv > 0 && shape.Hq % shape.Hkv == 0,
               "attention_backward: Hq = {} is not a multiple of Hkv = {}", shape.Hq, shape.Hkv);
  TILLER_CHECK(shape.D > 0 && shape.D <= kMaxHeadDim,
               "attention_backward: the CUDA backend supports head dims 1..{}, got D = {}",
               kMaxHeadDim, shape.D);
  const Params p = make_params(shape);
  TILLER_DISPATCH_FLOAT(dtype, "attention_backward",
                        launch_backward<T>(p, static_cast<const T*>(q), static_cast<const T*>(k),
                                           static_cast<const T*>(v), static_cast<const T*>(out),
                                           static_cast<const T*>(dout), lse, static_cast<T*>(dq),
                                           static_cast<T*>(dk), static_cast<T*>(dv)));
}

}  // namespace tiller::kernels
