// CPU reference for kernels/attention.h: exact softmax attention over tiles of 4 query rows.
//
// Design choices:
//   - Forward: OpenMP over (b, query head). A thread keeps one tile of kQueryTile x Tk scores
//     (the only score storage on either pass): memory is O(Tk) per thread, never O(Tq * Tk).
//   - Backward: OpenMP over (b, kv head). A thread owns dk/dv of its kv head and dq of every query
//     head in the group, so no two threads write the same element and every sum runs in a fixed
//     order: results are bitwise independent of the thread count. Probabilities are recomputed
//     from the saved lse (p = exp(scale * q.k - lse)); the output is only read for
//     delta_i = dout_i . out_i, the softmax-backward correction.
//   - Dot products (q.k, and dout.v in the backward) read a transposed copy of the head's keys
//     or values, (D, Tk) per thread, so they vectorise over keys with no horizontal sums; the
//     axpys (p v, ds k, ds q, p dout) vectorise over D. The kQueryTile rows of a tile share every
//     key and value load. All of it uses `omp simd`, so no -ffast-math is needed; exp is
//     kernels/cpu/vector_math.h's vector_exp, so the softmax loops vectorise too. The per-head
//     functions are compiled for AVX-512, AVX2 and baseline x86-64 and picked at load time
//     (target_clones), since the library itself is built for baseline x86-64.
//   - A key that a row cannot see is skipped for that row, never multiplied by p = 0, so
//     non-finite values in masked cache slots cannot leak into visible outputs.
// Invariants: lse is in the units of the scaled scores, lse_i = log sum_j exp(scale * q_i . k_j)
// over visible j; a row with no visible key has out = 0, lse = -inf, and contributes nothing to
// dq, dk or dv.
// FLOPs: forward 4 * Tq * Tk * D per (b, head) (a dot and an axpy per visible pair); the
// backward does 2 dots and 3 axpys per visible pair, 2.5x forward.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vector_math.h"

namespace tiller::kernels {

using cpu::parallel_for;
using cpu::require_f32;

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Query rows per tile: 4 rows x (q, accumulator) stay in registers next to one key row.
constexpr int64_t kQueryTile = 4;

inline float dot(const float* a, const float* b, int64_t n) {
  float acc = 0.f;
#pragma omp simd reduction(+ : acc)
  for (int64_t d = 0; d < n; ++d) acc += a[d] * b[d];
  return acc;
}

// Which keys query row i of batch b may see (kernels/attention.h states the rule). Keys at
// j >= end are never visible; below it the mask and document ids decide per key.
struct RowVisibility {
  int64_t end = 0;
  const int32_t* mask = nullptr;  // row b of key_padding_mask, or null
  const int32_t* docs = nullptr;  // row b of document_ids, or null
  int32_t query_doc = 0;

  RowVisibility() = default;  // sees nothing: the unused rows of a partial tile
  RowVisibility(const AttentionShape& s, int64_t b, int64_t i) {
    int64_t query_pos = s.Tk - s.Tq + i;
    end = s.causal ? std::clamp<int64_t>(query_pos + 1, 0, s.Tk) : s.Tk;
    if (s.key_padding_mask) mask = s.key_padding_mask + b * s.Tk;
    if (s.document_ids) {
      docs = s.document_ids + b * s.Tk;
      // A query before the first key (only possible when Tq > Tk) belongs to no document.
      if (query_pos < 0 || query_pos >= s.Tk)
        end = 0;
      else
        query_doc = docs[query_pos];
    }
  }
  bool sees(int64_t j) const {
    return j < end && (!mask || mask[j] != 0) && (!docs || docs[j] == query_doc);
  }
};

// One tile of query rows [i0, i0 + rows) of head (b, h); rows beyond `rows` alias row 0 and see
// nothing, so every loop can run over a full tile.
struct QueryTile {
  int64_t rows = 0;
  int64_t key_end = 0;  // max over rows of visibility.end
  RowVisibility visibility[kQueryTile];
  int64_t row_index[kQueryTile] = {};  // of each row in (B, Hq, Tq): its lse element
  int64_t offset[kQueryTile] = {};     // of each row's first element in (B, Hq, Tq, D) tensors

  QueryTile(const AttentionShape& s, int64_t b, int64_t h, int64_t i0) {
    rows = std::min(kQueryTile, s.Tq - i0);
    for (int64_t r = 0; r < kQueryTile; ++r) {
      bool real = r < rows;
      if (real) visibility[r] = RowVisibility(s, b, i0 + r);
      row_index[r] = (b * s.Hq + h) * s.Tq + i0 + (real ? r : 0);
      offset[r] = row_index[r] * s.D;
      key_end = std::max(key_end, visibility[r].end);
    }
  }
};

// Keys per block of tile_dots: one 512-bit vector of f32 accumulators per query row.
constexpr int64_t kKeyBlock = 16;

int64_t padded_keys(int64_t Tk) {
  return (Tk + kKeyBlock - 1) / kKeyBlock * kKeyBlock;
}

// rows_t (D, ld) = rows (Tk, D) transposed, zero beyond Tk so whole key blocks can be read.
inline void transpose_rows(const float* rows, int64_t Tk, int64_t D, int64_t ld, float* rows_t) {
  for (int64_t d = 0; d < D; ++d) {
    float* dst = rows_t + d * ld;
    for (int64_t j = 0; j < Tk; ++j) dst[j] = rows[j * D + d];
    std::fill(dst + Tk, dst + ld, 0.f);
  }
}

// out[r * ld_out + j] = a[r] . key_j for the kQueryTile rows a[r] and keys j < n, with keys_t the
// (D, ld_keys) transposed keys. Vectorised over keys, so no horizontal sums: per d, each row
// broadcasts one element against a block of kKeyBlock keys.
inline void tile_dots(const float* const* a, const float* keys_t, int64_t ld_keys, int64_t n,
                      int64_t D, float* out, int64_t ld_out) {
  for (int64_t j0 = 0; j0 < n; j0 += kKeyBlock) {
    float acc[kQueryTile][kKeyBlock] = {};
    for (int64_t d = 0; d < D; ++d) {
      const float* key_block = keys_t + d * ld_keys + j0;
      for (int64_t r = 0; r < kQueryTile; ++r) {
        float a_rd = a[r][d];
#pragma omp simd
        for (int64_t jj = 0; jj < kKeyBlock; ++jj) acc[r][jj] += a_rd * key_block[jj];
      }
    }
    int64_t count = std::min(kKeyBlock, n - j0);
    for (int64_t r = 0; r < kQueryTile; ++r)
      std::copy(acc[r], acc[r] + count, out + r * ld_out + j0);
  }
}

// Forward for head (b, h). Scratch: scores (kQueryTile, Tk), acc (kQueryTile, D),
// k_t (D, padded_keys(Tk)).
TILLER_SIMD_CLONES
void forward_head(const AttentionShape& s, int64_t b, int64_t h, const float* q, const float* k,
                  const float* v, float* out, float* lse, float* scores, float* acc, float* k_t) {
  const int64_t D = s.D, Tk = s.Tk, ld = padded_keys(Tk);
  const int64_t kv_offset = (b * s.Hkv + h / (s.Hq / s.Hkv)) * Tk * D;
  const float* k_head = k + kv_offset;  // (Tk, D)
  const float* v_head = v + kv_offset;  // (Tk, D)
  transpose_rows(k_head, Tk, D, ld, k_t);
  for (int64_t i0 = 0; i0 < s.Tq; i0 += kQueryTile) {
    QueryTile tile(s, b, h, i0);
    const float* q_rows[kQueryTile];
    for (int64_t r = 0; r < kQueryTile; ++r) q_rows[r] = q + tile.offset[r];
    tile_dots(q_rows, k_t, ld, tile.key_end, D, scores, Tk);
    // Softmax numerators in place; invisible keys become exactly 0.
    float row_sum[kQueryTile] = {};
    float row_max[kQueryTile];
    for (int64_t r = 0; r < kQueryTile; ++r) {
      float* row = scores + r * Tk;
      const RowVisibility& visible = tile.visibility[r];
      row_max[r] = kNegInf;
      for (int64_t j = 0; j < tile.key_end; ++j) {
        row[j] = visible.sees(j) ? s.scale * row[j] : kNegInf;
        row_max[r] = std::max(row_max[r], row[j]);
      }
      const float max_r = row_max[r];
      float sum_r = 0.f;
#pragma omp simd reduction(+ : sum_r)
      for (int64_t j = 0; j < tile.key_end; ++j) {
        row[j] = row[j] == kNegInf ? 0.f : cpu::vector_exp(row[j] - max_r);
        sum_r += row[j];
      }
      row_sum[r] = sum_r;
    }
    std::fill(acc, acc + kQueryTile * D, 0.f);
    float *a0 = acc, *a1 = acc + D, *a2 = acc + 2 * D, *a3 = acc + 3 * D;
    for (int64_t j = 0; j < tile.key_end; ++j) {
      const float* vj = v_head + j * D;
      float p0 = scores[j], p1 = scores[Tk + j], p2 = scores[2 * Tk + j], p3 = scores[3 * Tk + j];
      if (p0 != 0.f && p1 != 0.f && p2 != 0.f && p3 != 0.f) {
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) {
          a0[d] += p0 * vj[d];
          a1[d] += p1 * vj[d];
          a2[d] += p2 * vj[d];
          a3[d] += p3 * vj[d];
        }
        continue;
      }
      for (int64_t r = 0; r < kQueryTile; ++r) {
        float p = scores[r * Tk + j];
        if (p == 0.f) continue;
        float* ar = acc + r * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) ar[d] += p * vj[d];
      }
    }
    for (int64_t r = 0; r < tile.rows; ++r) {
      float* o = out + tile.offset[r];
      float* lse_row = lse + tile.row_index[r];
      if (row_max[r] == kNegInf) {  // no visible key
        std::fill(o, o + D, 0.f);
        *lse_row = kNegInf;
        continue;
      }
      float inv_sum = 1.f / row_sum[r];
      const float* ar = acc + r * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) o[d] = ar[d] * inv_sum;
      *lse_row = row_max[r] + std::log(row_sum[r]);
    }
  }
}

// Backward for kv head (b, kv_head): overwrites dk/dv of that head and dq of the query heads
// that read it. Scratch: dq_acc (kQueryTile, D), qk and dout_v (kQueryTile, Tk), k_t and v_t
// (D, padded_keys(Tk)).
TILLER_SIMD_CLONES
void backward_kv_head(const AttentionShape& s, int64_t b, int64_t kv_head, const float* q,
                      const float* k, const float* v, const float* out, const float* dout,
                      const float* lse, float* dq, float* dk, float* dv, float* dq_acc, float* qk,
                      float* dout_v, float* k_t, float* v_t) {
  const int64_t D = s.D, Tk = s.Tk, group = s.Hq / s.Hkv, ld = padded_keys(Tk);
  const int64_t kv_offset = (b * s.Hkv + kv_head) * s.Tk * D;
  const float* k_head = k + kv_offset;  // (Tk, D)
  const float* v_head = v + kv_offset;
  transpose_rows(k_head, Tk, D, ld, k_t);
  transpose_rows(v_head, Tk, D, ld, v_t);
  float* dk_head = dk + kv_offset;
  float* dv_head = dv + kv_offset;
  std::fill(dk_head, dk_head + s.Tk * D, 0.f);
  std::fill(dv_head, dv_head + s.Tk * D, 0.f);
  for (int64_t h = kv_head * group; h < (kv_head + 1) * group; ++h) {
    for (int64_t i0 = 0; i0 < s.Tq; i0 += kQueryTile) {
      QueryTile tile(s, b, h, i0);
      const float* qr[kQueryTile];
      const float* dor[kQueryTile];
      float lse_r[kQueryTile], delta[kQueryTile];
      for (int64_t r = 0; r < kQueryTile; ++r) {
        qr[r] = q + tile.offset[r];
        dor[r] = dout + tile.offset[r];
        lse_r[r] = lse[tile.row_index[r]];
        delta[r] = dot(dor[r], out + tile.offset[r], D);
      }
      tile_dots(qr, k_t, ld, tile.key_end, D, qk, Tk);       // q_r . k_j
      tile_dots(dor, v_t, ld, tile.key_end, D, dout_v, Tk);  // dout_r . v_j
      std::fill(dq_acc, dq_acc + kQueryTile * D, 0.f);
      float *g0 = dq_acc, *g1 = dq_acc + D, *g2 = dq_acc + 2 * D, *g3 = dq_acc + 3 * D;
      // Probabilities of every key in one vectorised pass (qk becomes exp(scale q.k - lse));
      // the visibility test below still decides which of them count.
      for (int64_t r = 0; r < kQueryTile; ++r) {
        float* qk_r = qk + r * Tk;
        const float lse_of_row = lse_r[r];
#pragma omp simd
        for (int64_t j = 0; j < tile.key_end; ++j)
          qk_r[j] = cpu::vector_exp(s.scale * qk_r[j] - lse_of_row);
      }
      for (int64_t j = 0; j < tile.key_end; ++j) {
        const float* kj = k_head + j * D;
        float p[kQueryTile], ds[kQueryTile];  // probability; scale * d loss / d (scaled score)
        bool all_visible = true;
        for (int64_t r = 0; r < kQueryTile; ++r) {
          bool visible = tile.visibility[r].sees(j);
          all_visible = all_visible && visible;
          p[r] = visible ? qk[r * Tk + j] : 0.f;
          ds[r] = s.scale * p[r] * (dout_v[r * Tk + j] - delta[r]);
        }
        float* dkj = dk_head + j * D;
        float* dvj = dv_head + j * D;
        if (all_visible) {
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) {
            g0[d] += ds[0] * kj[d];
            g1[d] += ds[1] * kj[d];
            g2[d] += ds[2] * kj[d];
            g3[d] += ds[3] * kj[d];
            dkj[d] += ds[0] * qr[0][d] + ds[1] * qr[1][d] + ds[2] * qr[2][d] + ds[3] * qr[3][d];
            dvj[d] += p[0] * dor[0][d] + p[1] * dor[1][d] + p[2] * dor[2][d] + p[3] * dor[3][d];
          }
          continue;
        }
        for (int64_t r = 0; r < kQueryTile; ++r) {
          if (!tile.visibility[r].sees(j)) continue;
          float* gr = dq_acc + r * D;
          const float *qrow = qr[r], *dorow = dor[r];
          float ds_r = ds[r], p_r = p[r];
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) {
            gr[d] += ds_r * kj[d];
            dkj[d] += ds_r * qrow[d];
            dvj[d] += p_r * dorow[d];
          }
        }
      }
      for (int64_t r = 0; r < tile.rows; ++r)
        std::copy(dq_acc + r * D, dq_acc + (r + 1) * D, dq + tile.offset[r]);
    }
  }
}

}  // namespace

template <>
void attention_forward<Backend::cpu>(const AttentionShape& s, const void* q, const void* k,
                                     const void* v, void* out, float* lse, DType dtype) {
  require_f32(dtype, "attention_forward");
  int64_t cost = std::max<int64_t>(1, 4 * s.Tq * s.Tk * s.D);
  parallel_for(s.B * s.Hq, cost, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(static_cast<size_t>(kQueryTile * s.Tk));  // (kQueryTile, Tk)
    std::vector<float> acc(static_cast<size_t>(kQueryTile * s.D));      // (kQueryTile, D)
    std::vector<float> k_t(static_cast<size_t>(s.D * padded_keys(s.Tk)));
    for (int64_t bh = begin; bh < end; ++bh)
      forward_head(s, bh / s.Hq, bh % s.Hq, static_cast<const float*>(q),
                   static_cast<const float*>(k), static_cast<const float*>(v),
                   static_cast<float*>(out), lse, scores.data(), acc.data(), k_t.data());
  });
}

template <>
void attention_backward<Backend::cpu>(const AttentionShape& s, const void* q, const void* k,
                                      const void* v, const void* out, const void* dout,
                                      const float* lse, void* dq, void* dk, void* dv, DType dtype) {
  require_f32(dtype, "attention_backward");
  int64_t cost = std::max<int64_t>(1, 10 * (s.Hq / s.Hkv) * s.Tq * s.Tk * s.D);
  parallel_for(s.B * s.Hkv, cost, [&](int64_t begin, int64_t end) {
    std::vector<float> dq_acc(static_cast<size_t>(kQueryTile * s.D));  // (kQueryTile, D)
    std::vector<float> qk(static_cast<size_t>(kQueryTile * s.Tk));     // (kQueryTile, Tk)
    std::vector<float> dout_v(qk.size());
    std::vector<float> k_t(static_cast<size_t>(s.D * padded_keys(s.Tk)));  // (D, padded Tk)
    std::vector<float> v_t(k_t.size());
    for (int64_t bg = begin; bg < end; ++bg)
      backward_kv_head(s, bg / s.Hkv, bg % s.Hkv, static_cast<const float*>(q),
                       static_cast<const float*>(k), static_cast<const float*>(v),
                       static_cast<const float*>(out), static_cast<const float*>(dout), lse,
                       static_cast<float*>(dq), static_cast<float*>(dk), static_cast<float*>(dv),
                       dq_acc.data(), qk.data(), dout_v.data(), k_t.data(), v_t.data());
  });
}

}  // namespace tiller::kernels
