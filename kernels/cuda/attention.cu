// CUDA flash attention, forward (kernels/attention.h): three paths, one visibility rule.
//
//   1. bf16, D in {64, 128}, Tq > 16, 16-byte aligned buffers, compute capability >= 8.0: tensor
//      cores (mma.sync m16n8k16, f32 accumulation), 64 query rows x 64 keys per tile —
//      kernels/cuda/attention_mma.cuh.
//   2. everything else with Tq > 16 (f32 for parity tests, other head dims up to 256): FMA tiles of
//      16 query rows x 32 keys, K/V staged in f32 in shared memory with rows padded to D + 1 so
//      the 32 lanes of a warp, one key each, hit 32 different banks.
//   3. decode (Tq <= 16, e.g. generation against a KV cache): the FMA kernel with split-K over the
//      keys — blockIdx.y picks a key range, each split writes unnormalised partial (o, max, sum)
//      and a combine kernel merges them with the log-sum-exp rule. Without the split a decode step
//      would run B * Hq blocks and leave most of the GPU idle.
// All paths are flash-style: online softmax over key tiles; the Tq x Tk matrix never exists.
// Causal blocks stop at the last key their last query can see (Tk - Tq offset included) and are
// scheduled heaviest first.
// Shared memory of the FMA kernel (f32): Q (16, D) + K, V (32, D+1) + S (16, 32) + O (16, D) +
// 3 x 16 row statistics = 4 (64 D + 32 + 512 + 48) bytes: 35 KB at D = 128, 68 KB at D = 256.
// FLOPs = 4 B Hq Tq Tk D (about half when causal); bytes ~ (q + out) + (k + v) re-read once per
// query tile (Tq / 64 times on the mma path): 2 B Hq Tq D + 2 B Hkv Tk D (Tq / 64) elements.
#include <algorithm>

#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/attention_mma.cuh"

namespace tiller::kernels {

namespace attention_detail {
namespace {

// Split-K partial results: o unnormalised (splits, B*Hq*Tq, D), row max and row sum
// (splits, B*Hq*Tq), all f32. Null `o` means "no split: write the final out and lse".
struct Partials {
  float* o = nullptr;
  float* max = nullptr;
  float* sum = nullptr;
};

size_t fma_forward_smem_bytes(int64_t D) {
  return sizeof(float) *
         static_cast<size_t>(kFmaQueryRows * D + 2 * kFmaKeys * (D + 1) + kFmaQueryRows * kFmaKeys +
                             kFmaQueryRows * D + 3 * kFmaQueryRows);
}

template <typename T>
__global__ void __launch_bounds__(kFmaThreads)
    attention_forward_fma_kernel(Params p, const T* __restrict__ q, const T* __restrict__ k,
                                 const T* __restrict__ v, T* __restrict__ out,
                                 float* __restrict__ lse, Partials partials,
                                 int64_t keys_per_split) {
  const int D = static_cast<int>(p.D), ld = D + 1;
  extern __shared__ float smem[];
  float* qs = smem;                            // (16, D)
  float* ks = qs + kFmaQueryRows * D;          // (32, D+1)
  float* vs = ks + kFmaKeys * ld;              // (32, D+1)
  float* ss = vs + kFmaKeys * ld;              // (16, 32) scores, then probabilities
  float* acc = ss + kFmaQueryRows * kFmaKeys;  // (16, D) unnormalised output
  float* row_max = acc + kFmaQueryRows * D;    // (16)
  float* row_sum = row_max + kFmaQueryRows;    // (16)
  float* row_scale = row_sum + kFmaQueryRows;  // (16) correction of this key tile

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int64_t q_tiles = (p.Tq + kFmaQueryRows - 1) / kFmaQueryRows;
  const int64_t bh = blockIdx.x / q_tiles;
  const int64_t tile = q_tiles - 1 - blockIdx.x % q_tiles;
  const int64_t b = bh / p.Hq, kv_head = (bh % p.Hq) / p.group;
  const int64_t q0 = tile * kFmaQueryRows;
  const int rows = static_cast<int>(min(static_cast<int64_t>(kFmaQueryRows), p.Tq - q0));
  const T* q_head = q + bh * p.Tq * D;
  const T* k_head = k + (b * p.Hkv + kv_head) * p.Tk * D;
  const T* v_head = v + (b * p.Hkv + kv_head) * p.Tk * D;

  for (int e = tid; e < kFmaQueryRows * D; e += kFmaThreads) {
    int i = e / D;
    qs[e] = i < rows ? cuda_detail::load_f32(q_head, (q0 + i) * D + e % D) : 0.f;
    acc[e] = 0.f;
  }
  if (tid < kFmaQueryRows) {
    row_max[tid] = -CUDART_INF_F;
    row_sum[tid] = 0.f;
  }
  const int64_t key_begin = blockIdx.y * keys_per_split;
  const int64_t key_end =
      min(min(p.Tk, key_begin + keys_per_split), key_end_for_query(p, q0 + rows - 1));
  __syncthreads();

  for (int64_t k0 = key_begin; k0 < key_end; k0 += kFmaKeys) {
    const int keys = static_cast<int>(min(static_cast<int64_t>(kFmaKeys), key_end - k0));
    for (int e = tid; e < kFmaKeys * D; e += kFmaThreads) {
      int j = e / D, d = e % D;
      bool in_tile = j < keys;
      ks[j * ld + d] = in_tile ? cuda_detail::load_f32(k_head, (k0 + j) * D + d) : 0.f;
      vs[j * ld + d] = in_tile ? cuda_detail::load_f32(v_head, (k0 + j) * D + d) : 0.f;
    }
    __syncthreads();

    for (int e = tid; e < kFmaQueryRows * kFmaKeys; e += kFmaThreads) {
      int i = e / kFmaKeys, j = e % kFmaKeys;
      float score = -CUDART_INF_F;
      if (i < rows && j < keys && key_visible(p, b, q0 + i, k0 + j)) {
        float dot = 0.f;
        for (int d = 0; d < D; ++d) dot += qs[i * D + d] * ks[j * ld + d];
        score = dot * p.scale;
      }
      ss[e] = score;
    }
    __syncthreads();

    // Online softmax: one warp per 4 rows, one lane per key (kFmaKeys == warp width).
    constexpr int kRowsPerWarp = kFmaQueryRows / (kFmaThreads / 32);
    for (int r = 0; r < kRowsPerWarp; ++r) {
      int i = warp * kRowsPerWarp + r;
      float score = ss[i * kFmaKeys + lane];
      float tile_max = warp_max(score);
      float old_max = row_max[i];
      float new_max = fmaxf(old_max, tile_max);
      float reference = new_max == -CUDART_INF_F ? 0.f : new_max;
      float prob = __expf(score - reference);
      ss[i * kFmaKeys + lane] = prob;
      float tile_sum = warp_sum(prob);
      if (lane == 0) {
        float correction = __expf(old_max - reference);
        row_scale[i] = correction;
        row_sum[i] = row_sum[i] * correction + tile_sum;
        row_max[i] = new_max;
      }
    }
    __syncthreads();

    for (int e = tid; e < kFmaQueryRows * D; e += kFmaThreads) {
      int i = e / D, d = e % D;
      float value = acc[e] * row_scale[i];
      // p = 0 terms are skipped, never multiplied: a masked key's NaN / Inf value must not leak
      // (as on the CPU).
#pragma unroll 8
      for (int j = 0; j < kFmaKeys; ++j) {
        float prob = ss[i * kFmaKeys + j];
        value += prob != 0.f ? prob * vs[j * ld + d] : 0.f;
      }
      acc[e] = value;
    }
    __syncthreads();
  }

  const int64_t row0 = bh * p.Tq + q0;  // first output row of this block
  if (partials.o == nullptr) {
    for (int e = tid; e < rows * D; e += kFmaThreads) {
      int i = e / D;
      float total = row_sum[i];
      cuda_detail::store_f32(out, row0 * D + e, total > 0.f ? acc[e] / total : 0.f);
    }
    if (tid < rows)
      lse[row0 + tid] = row_sum[tid] > 0.f ? row_max[tid] + logf(row_sum[tid]) : -CUDART_INF_F;
  } else {
    const int64_t rows_total = p.B * p.Hq * p.Tq;
    const int64_t split_row0 = blockIdx.y * rows_total + row0;
    for (int e = tid; e < rows * D; e += kFmaThreads) partials.o[split_row0 * D + e] = acc[e];
    if (tid < rows) {
      partials.max[split_row0 + tid] = row_max[tid];
      partials.sum[split_row0 + tid] = row_sum[tid];
    }
  }
}

// One warp per output row: merges the splits' (o, max, sum) with weights exp(max_s - max).
template <typename T>
__global__ void attention_combine_kernel(Partials partials, int64_t splits, int64_t rows_total,
                                         int64_t D, T* __restrict__ out, float* __restrict__ lse) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows_total) return;
  float global_max = -CUDART_INF_F;
  for (int64_t s = 0; s < splits; ++s)
    global_max = fmaxf(global_max, partials.max[s * rows_total + row]);
  float total = 0.f;
  if (global_max != -CUDART_INF_F)
    for (int64_t s = 0; s < splits; ++s)
      total += partials.sum[s * rows_total + row] *
               __expf(partials.max[s * rows_total + row] - global_max);
  for (int64_t d = lane; d < D; d += 32) {
    float value = 0.f;
    if (total > 0.f) {
      for (int64_t s = 0; s < splits; ++s)
        value += partials.o[(s * rows_total + row) * D + d] *
                 __expf(partials.max[s * rows_total + row] - global_max);
      value /= total;
    }
    cuda_detail::store_f32(out, row * D + d, value);
  }
  if (lane == 0) lse[row] = total > 0.f ? global_max + logf(total) : -CUDART_INF_F;
}

// Splits for a decode step: enough blocks for ~2 waves, each split at least 256 keys (fewer
// and the combine pass costs more than the parallelism buys).
int64_t decode_splits(const Params& p, int64_t blocks_without_split) {
  constexpr int64_t kMinKeysPerSplit = 256;
  int64_t wanted = (2 * multiprocessor_count() + blocks_without_split - 1) / blocks_without_split;
  int64_t most = std::max<int64_t>(1, (p.Tk + kMinKeysPerSplit - 1) / kMinKeysPerSplit);
  return std::clamp<int64_t>(wanted, 1, most);
}

template <typename T>
void launch_forward_fma(const Params& p, const T* q, const T* k, const T* v, T* out, float* lse) {
  const int64_t q_tiles = (p.Tq + kFmaQueryRows - 1) / kFmaQueryRows;
  const int64_t blocks = p.B * p.Hq * q_tiles;
  const size_t smem = fma_forward_smem_bytes(p.D);
  allow_shared_memory(attention_forward_fma_kernel<T>, smem);
  int64_t splits = p.Tq <= kDecodeMaxQueries ? decode_splits(p, blocks) : 1;
  // Each split's range is a whole number of key tiles so no tile straddles two splits.
  int64_t keys_per_split = (p.Tk + splits - 1) / splits;
  keys_per_split =
      std::max<int64_t>(kFmaKeys, (keys_per_split + kFmaKeys - 1) / kFmaKeys * kFmaKeys);
  splits = std::max<int64_t>(1, (p.Tk + keys_per_split - 1) / keys_per_split);
  dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(splits));
  if (splits == 1) {
    attention_forward_fma_kernel<T>
        <<<grid, kFmaThreads, smem>>>(p, q, k, v, out, lse, Partials{}, keys_per_split);
    TILLER_CUDA_CHECK_LAUNCH();
    return;
  }
  const int64_t rows_total = p.B * p.Hq * p.Tq;
  ScratchBuffer scratch(sizeof(float) * static_cast<size_t>(splits * rows_total * (p.D + 2)));
  Partials partials{scratch.as<float>(), scratch.as<float>() + splits * rows_total * p.D,
                    scratch.as<float>() + splits * rows_total * (p.D + 1)};
  attention_forward_fma_kernel<T>
      <<<grid, kFmaThreads, smem>>>(p, q, k, v, out, lse, partials, keys_per_split);
  TILLER_CUDA_CHECK_LAUNCH();
  constexpr int kCombineThreads = 256;  // 8 rows per block
  attention_combine_kernel<T>
      <<<cuda_detail::blocks_for(rows_total * 32, kCombineThreads), kCombineThreads>>>(
          partials, splits, rows_total, p.D, out, lse);
  TILLER_CUDA_CHECK_LAUNCH();
}

template <int D>
void launch_forward_mma(const Params& p, const void* q, const void* k, const void* v, void* out,
                        float* lse) {
  const int64_t q_tiles = (p.Tq + kMmaQueryRows - 1) / kMmaQueryRows;
  constexpr size_t smem = mma_forward_smem_bytes<D>();
  allow_shared_memory(attention_forward_mma_kernel<D>, smem);
  attention_forward_mma_kernel<D>
      <<<static_cast<unsigned>(p.B * p.Hq * q_tiles), kMmaThreads, smem>>>(
          p, static_cast<const __nv_bfloat16*>(q), static_cast<const __nv_bfloat16*>(k),
          static_cast<const __nv_bfloat16*>(v), static_cast<__nv_bfloat16*>(out), lse);
  TILLER_CUDA_CHECK_LAUNCH();
}

}  // namespace
}  // namespace attention_detail

template <>
void attention_forward<Backend::cuda>(const AttentionShape& shape, const void* q, const void* k,
                                      const void* v, void* out, float* lse, DType dtype) {
  using namespace attention_detail;
  TILLER_CHECK(shape.Hkv > 0 && shape.Hq % shape.Hkv == 0,
               "attention_forward: Hq = {} is not a multiple of Hkv = {}", shape.Hq, shape.Hkv);
  TILLER_CHECK(shape.D > 0 && shape.D <= kMaxHeadDim,
               "attention_forward: the CUDA backend supports head dims 1..{}, got D = {}",
               kMaxHeadDim, shape.D);
  if (shape.B * shape.Hq * shape.Tq == 0) return;
  const Params p = make_params(shape);
  // The mma kernel moves rows as 16-byte vectors; a view at an odd offset takes the FMA path.
  const bool aligned = cuda_detail::aligned16(q) && cuda_detail::aligned16(k) &&
                       cuda_detail::aligned16(v) && cuda_detail::aligned16(out);
  const bool tensor_cores = dtype == DType::bf16 && (p.D == 64 || p.D == 128) && aligned &&
                            p.Tq > kDecodeMaxQueries && compute_capability_major() >= 8;
  if (tensor_cores) {
    if (p.D == 64)
      launch_forward_mma<64>(p, q, k, v, out, lse);
    else
      launch_forward_mma<128>(p, q, k, v, out, lse);
    return;
  }
  TILLER_DISPATCH_FLOAT(dtype, "attention_forward",
                        launch_forward_fma<T>(p, static_cast<const T*>(q), static_cast<const T*>(k),
                                              static_cast<const T*>(v), static_cast<T*>(out), lse));
}

}  // namespace tiller::kernels
