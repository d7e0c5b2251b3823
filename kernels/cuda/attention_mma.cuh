// The tensor-core forward: bf16 flash attention with mma.sync m16n8k16 (f32 accumulation) for
// head dims 64 and 128. Included by kernels/cuda/attention.cu only.
//
// Tiling: a block of 4 warps owns 64 query rows of one (b, head); each warp owns 16 rows, i.e.
// exactly one mma M-tile, so the softmax statistics of a row live in the 4 lanes of one quad and
// reduce with two shuffles. Keys stream in tiles of 64: S = Q K^T is 8 n-tiles x D/16 k-steps, and
// the S accumulator fragments are re-packed as bf16 A-fragments of P for O += P V without a trip
// through shared memory (FlashAttention-2's register reuse).
// Shared memory (bf16, rows padded by 8 elements = 16 bytes so the 8 quads of a warp hit 8
// different bank groups): Q (64, D+8), K (64, D+8), V^T (D, 64+8), plus 4 x 64 i32 of key flags.
// D = 128: 54.3 KB (opt-in above 48 KB); D = 64: 28.7 KB.
// Non-finite values: the tensor cores would turn P = 0 times a NaN / Inf value into NaN for rows
// that cannot see that key. So V is staged with non-finite elements replaced by 0 and the key
// flagged; a row whose probability for a flagged key is non-zero is written as NaN (on the CPU it
// would be NaN or Inf), every other row is exact — a masked key never leaks, as on the CPU, which
// skips p = 0 terms. (Masked K rows cannot leak: their scores are replaced, not multiplied.)
// Fragment loads are plain 32-bit shared loads: V is stored transposed while it is staged so that
// the B operand of P V is contiguous, like K's is for Q K^T. No cp.async pipelining yet: the tile
// loads are synchronous (the known next step for speed).
// Registers per thread: Q fragments D/4, O accumulator D/2, S 32 floats.
#pragma once

#include "kernels/cuda/attention.cuh"

namespace tiller::kernels::attention_detail {

constexpr int kMmaThreads = 128;
constexpr int kMmaQueryRows = 64;  // 4 warps x 16 rows
constexpr int kMmaKeys = 64;
constexpr int kMmaPad = 8;  // bf16 elements per padded row (16 bytes)

template <int D>
constexpr size_t mma_forward_smem_bytes() {
  return (2 * kMmaQueryRows * (D + kMmaPad) + D * (kMmaKeys + kMmaPad)) * sizeof(__nv_bfloat16) +
         4 * kMmaKeys * sizeof(int32_t);
}

// Whether any of the 8 bf16 values in a 16-byte chunk is NaN or +-Inf (exponent bits all ones);
// those values are zeroed in place.
__device__ __forceinline__ bool zero_non_finite(uint4& chunk) {
  uint32_t* words = reinterpret_cast<uint32_t*>(&chunk);
  bool found = false;
#pragma unroll
  for (int w = 0; w < 4; ++w) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const uint32_t mask = 0xffffu << (16 * half), exponent = 0x7f80u << (16 * half);
      if ((words[w] & exponent) == exponent) {
        words[w] &= ~mask;
        found = true;
      }
    }
  }
  return found;
}

__device__ __forceinline__ uint32_t load_pair(const __nv_bfloat16* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

__device__ __forceinline__ uint32_t pack_bf16(float low, float high) {
  __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);  // .x (low 16 bits) = lower column
  return *reinterpret_cast<uint32_t*>(&pair);
}

// c += a (16x16, row-major) * b (16x8, column-major); f32 accumulate.
__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                               uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  __trap();  // the launcher only picks this kernel on compute capability >= 8.0
#endif
}

template <int D>
__global__ void __launch_bounds__(kMmaThreads)
    attention_forward_mma_kernel(Params p, const __nv_bfloat16* __restrict__ q,
                                 const __nv_bfloat16* __restrict__ k,
                                 const __nv_bfloat16* __restrict__ v,
                                 __nv_bfloat16* __restrict__ out, float* __restrict__ lse) {
  static_assert(D % 16 == 0, "the mma path tiles D in k-steps of 16");
  constexpr int kLdQK = D + kMmaPad;
  constexpr int kLdVt = kMmaKeys + kMmaPad;
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  constexpr float kLog2e = 1.4426950408889634f;
  constexpr float kLn2 = 0.6931471805599453f;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  auto* qs = reinterpret_cast<__nv_bfloat16*>(smem_raw);        // (64, D+8)
  __nv_bfloat16* ks = qs + kMmaQueryRows * kLdQK;               // (64, D+8)
  __nv_bfloat16* vt = ks + kMmaKeys * kLdQK;                    // (D, 64+8): V transposed
  auto* key_ok_s = reinterpret_cast<int32_t*>(vt + D * kLdVt);  // in range and not padding
  int32_t* key_doc_s = key_ok_s + kMmaKeys;
  // Non-finite V rows of the tile, double-buffered by tile parity: a tile's flags are set while
  // it loads and the other buffer is cleared for the next tile in the same phase.
  int32_t* key_bad_s = key_doc_s + kMmaKeys;  // (2, 64)

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int group_id = lane / 4, thread_in_group = lane % 4;  // mma fragment coordinates
  const int64_t q_tiles = (p.Tq + kMmaQueryRows - 1) / kMmaQueryRows;
  const int64_t bh = blockIdx.x / q_tiles;
  const int64_t tile = q_tiles - 1 - blockIdx.x % q_tiles;  // longest causal tiles start first
  const int64_t b = bh / p.Hq, kv_head = (bh % p.Hq) / p.group;
  const int64_t q0 = tile * kMmaQueryRows;
  const __nv_bfloat16* q_head = q + bh * p.Tq * D;                     // (Tq, D)
  const __nv_bfloat16* k_head = k + (b * p.Hkv + kv_head) * p.Tk * D;  // (Tk, D)
  const __nv_bfloat16* v_head = v + (b * p.Hkv + kv_head) * p.Tk * D;  // (Tk, D)

  for (int e = tid; e < kMmaQueryRows * kChunks; e += kMmaThreads) {
    int r = e / kChunks, c = e % kChunks;
    uint4 chunk = make_uint4(0, 0, 0, 0);
    if (q0 + r < p.Tq) chunk = *reinterpret_cast<const uint4*>(q_head + (q0 + r) * D + c * 8);
    *reinterpret_cast<uint4*>(qs + r * kLdQK + c * 8) = chunk;
  }

  // This thread's two rows: group_id and group_id + 8 of the warp's 16.
  int64_t row_query[2], row_key_end[2];
  int32_t row_doc[2] = {0, 0};
  for (int r = 0; r < 2; ++r) {
    row_query[r] = q0 + warp * 16 + group_id + 8 * r;
    row_key_end[r] = row_query[r] < p.Tq ? key_end_for_query(p, row_query[r]) : 0;
    if (p.docs && row_query[r] < p.Tq) {
      int64_t pos = p.Tk - p.Tq + row_query[r];
      if (pos >= 0 && pos < p.Tk)
        row_doc[r] = p.docs[b * p.Tk + pos];
      else
        row_key_end[r] = 0;  // before the first key: belongs to no document
    }
  }
  const int64_t last_query = (q0 + kMmaQueryRows < p.Tq ? q0 + kMmaQueryRows : p.Tq) - 1;
  const int64_t block_key_end = key_end_for_query(p, last_query);
  for (int e = tid; e < 2 * kMmaKeys; e += kMmaThreads) key_bad_s[e] = 0;
  __syncthreads();

  uint32_t q_frag[D / 16][4];
#pragma unroll
  for (int kstep = 0; kstep < D / 16; ++kstep) {
    const __nv_bfloat16* base =
        qs + (warp * 16 + group_id) * kLdQK + kstep * 16 + 2 * thread_in_group;
    q_frag[kstep][0] = load_pair(base);
    q_frag[kstep][1] = load_pair(base + 8 * kLdQK);
    q_frag[kstep][2] = load_pair(base + 8);
    q_frag[kstep][3] = load_pair(base + 8 * kLdQK + 8);
  }

  float o_acc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o_acc[n][0] = o_acc[n][1] = o_acc[n][2] = o_acc[n][3] = 0.f;
  float row_max[2] = {-CUDART_INF_F, -CUDART_INF_F};  // in log2 units (scores * log2 e)
  float row_sum[2] = {0.f, 0.f};  // this lane's share; the quad sums it at the end
  bool row_poisoned[2] = {false, false};  // saw a non-finite value with p > 0
  const float scale_log2 = p.scale * kLog2e;

  for (int64_t k0 = 0; k0 < block_key_end; k0 += kMmaKeys) {
    int32_t* tile_bad = key_bad_s + ((k0 / kMmaKeys) % 2) * kMmaKeys;
    int32_t* next_bad = key_bad_s + (1 - (k0 / kMmaKeys) % 2) * kMmaKeys;
    __syncthreads();  // every warp is done reading the previous K and V^T tiles
    for (int e = tid; e < kMmaKeys * kChunks; e += kMmaThreads) {
      int r = e / kChunks, c = e % kChunks;
      uint4 k_chunk = make_uint4(0, 0, 0, 0), v_chunk = make_uint4(0, 0, 0, 0);
      if (k0 + r < p.Tk) {
        k_chunk = *reinterpret_cast<const uint4*>(k_head + (k0 + r) * D + c * 8);
        v_chunk = *reinterpret_cast<const uint4*>(v_head + (k0 + r) * D + c * 8);
        if (zero_non_finite(v_chunk)) tile_bad[r] = 1;
      }
      *reinterpret_cast<uint4*>(ks + r * kLdQK + c * 8) = k_chunk;
      const auto* v_values = reinterpret_cast<const __nv_bfloat16*>(&v_chunk);
#pragma unroll
      for (int x = 0; x < 8; ++x) vt[(c * 8 + x) * kLdVt + r] = v_values[x];
    }
    if (tid < kMmaKeys) {
      int64_t key = k0 + tid;
      bool in_range = key < p.Tk;
      key_ok_s[tid] = in_range && (!p.mask || p.mask[b * p.Tk + key] != 0);
      key_doc_s[tid] = (p.docs && in_range) ? p.docs[b * p.Tk + key] : 0;
      next_bad[tid] = 0;  // last read before the barrier at the top of this iteration
    }
    __syncthreads();

    float s[kMmaKeys / 8][4];
#pragma unroll
    for (int n = 0; n < kMmaKeys / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kstep = 0; kstep < D / 16; ++kstep) {
#pragma unroll
      for (int n = 0; n < kMmaKeys / 8; ++n) {
        const __nv_bfloat16* base =
            ks + (n * 8 + group_id) * kLdQK + kstep * 16 + 2 * thread_in_group;
        mma_bf16_16816(s[n], q_frag[kstep], load_pair(base), load_pair(base + 8));
      }
    }

    // Fragment element e of n-tile n: row group_id + 8 * (e / 2), key column n*8 + 2t + e % 2.
#pragma unroll
    for (int n = 0; n < kMmaKeys / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        int r = e / 2, col = n * 8 + 2 * thread_in_group + e % 2;
        int64_t key = k0 + col;
        bool visible =
            key < row_key_end[r] && key_ok_s[col] && (!p.docs || key_doc_s[col] == row_doc[r]);
        s[n][e] = visible ? s[n][e] * scale_log2 : -CUDART_INF_F;
      }
    }

#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float tile_max = -CUDART_INF_F;
#pragma unroll
      for (int n = 0; n < kMmaKeys / 8; ++n)
        tile_max = fmaxf(tile_max, fmaxf(s[n][2 * r], s[n][2 * r + 1]));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
      float new_max = fmaxf(row_max[r], tile_max);
      float reference = new_max == -CUDART_INF_F ? 0.f : new_max;  // nothing visible yet
      float correction = exp2f(row_max[r] - reference);
      row_max[r] = new_max;
      row_sum[r] *= correction;
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        o_acc[n][2 * r] *= correction;
        o_acc[n][2 * r + 1] *= correction;
      }
#pragma unroll
      for (int n = 0; n < kMmaKeys / 8; ++n) {
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          float prob = exp2f(s[n][2 * r + c] - reference);
          s[n][2 * r + c] = prob;
          row_sum[r] += prob;
          if (prob != 0.f && tile_bad[n * 8 + 2 * thread_in_group + c]) row_poisoned[r] = true;
        }
      }
    }

    // P's accumulator layout for n-tiles 2j and 2j+1 is exactly the A layout of k-step j.
#pragma unroll
    for (int j = 0; j < kMmaKeys / 16; ++j) {
      uint32_t p_frag[4] = {
          pack_bf16(s[2 * j][0], s[2 * j][1]), pack_bf16(s[2 * j][2], s[2 * j][3]),
          pack_bf16(s[2 * j + 1][0], s[2 * j + 1][1]), pack_bf16(s[2 * j + 1][2], s[2 * j + 1][3])};
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        const __nv_bfloat16* base = vt + (n * 8 + group_id) * kLdVt + j * 16 + 2 * thread_in_group;
        mma_bf16_16816(o_acc[n], p_frag, load_pair(base), load_pair(base + 8));
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float total = row_sum[r];
    total += __shfl_xor_sync(0xffffffffu, total, 1);
    total += __shfl_xor_sync(0xffffffffu, total, 2);
    int poisoned = row_poisoned[r];  // the quad's four lanes share the row
    poisoned |= __shfl_xor_sync(0xffffffffu, poisoned, 1);
    poisoned |= __shfl_xor_sync(0xffffffffu, poisoned, 2);
    if (row_query[r] >= p.Tq) continue;
    float inverse = poisoned ? CUDART_NAN_F : total > 0.f ? 1.f / total : 0.f;
    __nv_bfloat16* out_row = out + (bh * p.Tq + row_query[r]) * D;
#pragma unroll
    for (int n = 0; n < D / 8; ++n)
      *reinterpret_cast<uint32_t*>(out_row + n * 8 + 2 * thread_in_group) =
          pack_bf16(o_acc[n][2 * r] * inverse, o_acc[n][2 * r + 1] * inverse);
    if (thread_in_group == 0)
      lse[bh * p.Tq + row_query[r]] = total > 0.f ? row_max[r] * kLn2 + logf(total) : -CUDART_INF_F;
  }
}

}  // namespace tiller::kernels::attention_detail
