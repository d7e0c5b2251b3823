// CPU reference for the embedding lookup in kernels/embedding.h (rope lives in rope.cpp).
//
// The backward is a scatter-add and must not race or depend on the thread count, so it is
// vocabulary-parallel: each thread owns a contiguous slice of token ids [v0, v1), zeroes those
// rows of dweight and then scans every id in order, adding dout rows whose id falls in its slice.
// Each dweight row is therefore the serial sum over n = 0..N-1, whatever the thread count.
// The scan of ids is repeated per thread; ids are N int32s, small next to the N*C gradient.
#include <cstring>

#include "kernels/cpu/parallel.h"
#include "kernels/embedding.h"

namespace tiller::kernels {

using cpu::parallel_for;
using cpu::require_f32;

template <>
void embedding_forward<Backend::cpu>(const int32_t* ids, const void* weight_, void* out_,
                                     int64_t N, int64_t /*V*/, int64_t C, DType dtype) {
  require_f32(dtype, "embedding_forward");
  auto weight = static_cast<const float*>(weight_);
  auto out = static_cast<float*>(out_);
  parallel_for(N, C, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n)
      std::memcpy(out + n * C, weight + static_cast<int64_t>(ids[n]) * C, C * sizeof(float));
  });
}

template <>
void embedding_backward<Backend::cpu>(const int32_t* ids, const void* dout_, void* dweight_,
                                      int64_t N, int64_t V, int64_t C, DType dtype) {
  require_f32(dtype, "embedding_backward");
  auto dout = static_cast<const float*>(dout_);
  auto dweight = static_cast<float*>(dweight_);
  // Cost per vocabulary row: zeroing it plus its share of the scan and the adds.
  int64_t cost_per_row = C + (V > 0 ? (N * (C + 1)) / V : 0);
  parallel_for(V, cost_per_row, [&](int64_t v0, int64_t v1) {
    std::memset(dweight + v0 * C, 0, (v1 - v0) * C * sizeof(float));
    for (int64_t n = 0; n < N; ++n) {
      int64_t v = ids[n];
      if (v < v0 || v >= v1) continue;
      float* dst = dweight + v * C;
      const float* src = dout + n * C;
      for (int64_t c = 0; c < C; ++c) dst[c] += src[c];
    }
  });
}

}  // namespace tiller::kernels
