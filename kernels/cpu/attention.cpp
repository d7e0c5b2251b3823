// CPU reference for kernels/attention.h: exact softmax attention, one query row at a time.
//
// Design choices:
//   - Forward: OpenMP over (b, query head). Each thread keeps one row of Tk scores (the only
//     score storage on either pass), so memory stays O(Tk) per thread, never O(Tq * Tk).
//   - Backward: OpenMP over (b, kv head). A thread owns dk/dv of its kv head and dq of every query
//     head in the group, so no two threads write the same element and every sum runs in a fixed
//     order: results are bitwise independent of the thread count. Probabilities are recomputed
//     from the saved lse (p = exp(scale * q.k - lse)); the output is only read for
//     delta_i = dout_i . out_i, the softmax-backward correction.
//   - Inner loops run over D with `omp simd` so dot products and the fused dq/dk/dv updates
//     vectorise without -ffast-math.
// Invariants: lse is in the units of the scaled scores, lse_i = log sum_j exp(scale * q_i . k_j)
// over visible j; a row with no visible key has out = 0, lse = -inf, and contributes nothing to
// dq, dk or dv.
// FLOPs: forward 4 * Tq * Tk * D per (b, head) (two D-length passes per visible key); the
// backward does 3 dot products and 3 axpys per visible (query, key) pair, about 2.5x forward.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace tiller::kernels {

using cpu::parallel_for;
using cpu::require_f32;

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

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
  bool sees(int64_t j) const { return (!mask || mask[j] != 0) && (!docs || docs[j] == query_doc); }
};

void forward_f32(const AttentionShape& s, const float* q, const float* k, const float* v,
                 float* out, float* lse) {
  const int64_t D = s.D, group = s.Hq / s.Hkv;
  int64_t cost = std::max<int64_t>(1, 4 * s.Tq * s.Tk * D);
  parallel_for(s.B * s.Hq, cost, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(s.Tk));  // (Tk) scores, then probabilities
    for (int64_t bh = begin; bh < end; ++bh) {
      int64_t b = bh / s.Hq, h = bh % s.Hq, kv_head = h / group;
      const float* q_head = q + bh * s.Tq * D;                     // (Tq, D)
      const float* k_head = k + (b * s.Hkv + kv_head) * s.Tk * D;  // (Tk, D)
      const float* v_head = v + (b * s.Hkv + kv_head) * s.Tk * D;  // (Tk, D)
      float* out_head = out + bh * s.Tq * D;
      float* lse_head = lse + bh * s.Tq;
      for (int64_t i = 0; i < s.Tq; ++i) {
        const float* qi = q_head + i * D;
        float* oi = out_head + i * D;
        RowVisibility visible(s, b, i);
        float row_max = kNegInf;
        for (int64_t j = 0; j < visible.end; ++j) {
          row[j] = visible.sees(j) ? s.scale * dot(qi, k_head + j * D, D) : kNegInf;
          row_max = std::max(row_max, row[j]);
        }
        std::fill(oi, oi + D, 0.f);
        if (row_max == kNegInf) {  // no visible key
          lse_head[i] = kNegInf;
          continue;
        }
        float row_sum = 0.f;
        for (int64_t j = 0; j < visible.end; ++j) {
          float p = row[j] == kNegInf ? 0.f : std::exp(row[j] - row_max);
          row_sum += p;
          if (p == 0.f) continue;
          const float* vj = v_head + j * D;
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) oi[d] += p * vj[d];
        }
        float inv_sum = 1.f / row_sum;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) oi[d] *= inv_sum;
        lse_head[i] = row_max + std::log(row_sum);
      }
    }
  });
}

void backward_f32(const AttentionShape& s, const float* q, const float* k, const float* v,
                  const float* out, const float* dout, const float* lse, float* dq, float* dk,
                  float* dv) {
  const int64_t D = s.D, group = s.Hq / s.Hkv;
  int64_t cost = std::max<int64_t>(1, 10 * group * s.Tq * s.Tk * D);
  parallel_for(s.B * s.Hkv, cost, [&](int64_t begin, int64_t end) {
    for (int64_t bg = begin; bg < end; ++bg) {
      int64_t b = bg / s.Hkv, kv_head = bg % s.Hkv;
      const float* k_head = k + bg * s.Tk * D;  // (Tk, D)
      const float* v_head = v + bg * s.Tk * D;
      float* dk_head = dk + bg * s.Tk * D;
      float* dv_head = dv + bg * s.Tk * D;
      std::fill(dk_head, dk_head + s.Tk * D, 0.f);
      std::fill(dv_head, dv_head + s.Tk * D, 0.f);
      for (int64_t h = kv_head * group; h < (kv_head + 1) * group; ++h) {
        int64_t bh = b * s.Hq + h;
        for (int64_t i = 0; i < s.Tq; ++i) {
          int64_t row_offset = (bh * s.Tq + i) * D;
          const float* qi = q + row_offset;
          const float* oi = out + row_offset;
          const float* doi = dout + row_offset;
          float* dqi = dq + row_offset;
          float lse_i = lse[bh * s.Tq + i];
          std::fill(dqi, dqi + D, 0.f);
          if (lse_i == kNegInf) continue;  // no visible key: no gradient anywhere
          float delta = dot(doi, oi, D);
          RowVisibility visible(s, b, i);
          for (int64_t j = 0; j < visible.end; ++j) {
            if (!visible.sees(j)) continue;
            const float* kj = k_head + j * D;
            const float* vj = v_head + j * D;
            float p = std::exp(s.scale * dot(qi, kj, D) - lse_i);
            float dscore = p * (dot(doi, vj, D) - delta);  // d loss / d (scaled score)
            float dscore_scaled = s.scale * dscore;
            float* dkj = dk_head + j * D;
            float* dvj = dv_head + j * D;
#pragma omp simd
            for (int64_t d = 0; d < D; ++d) {
              dqi[d] += dscore_scaled * kj[d];
              dkj[d] += dscore_scaled * qi[d];
              dvj[d] += p * doi[d];
            }
          }
        }
      }
    }
  });
}

}  // namespace

template <>
void attention_forward<Backend::cpu>(const AttentionShape& shape, const void* q, const void* k,
                                     const void* v, void* out, float* lse, DType dtype) {
  require_f32(dtype, "attention_forward");
  forward_f32(shape, static_cast<const float*>(q), static_cast<const float*>(k),
              static_cast<const float*>(v), static_cast<float*>(out), lse);
}

template <>
void attention_backward<Backend::cpu>(const AttentionShape& shape, const void* q, const void* k,
                                      const void* v, const void* out, const void* dout,
                                      const float* lse, void* dq, void* dk, void* dv, DType dtype) {
  require_f32(dtype, "attention_backward");
  backward_f32(shape, static_cast<const float*>(q), static_cast<const float*>(k),
               static_cast<const float*>(v), static_cast<const float*>(out),
               static_cast<const float*>(dout), lse, static_cast<float*>(dq),
               static_cast<float*>(dk), static_cast<float*>(dv));
}

}  // namespace tiller::kernels
