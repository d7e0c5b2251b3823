// CPU reference for the `rope` kernel in kernels/embedding.h (rotate-half layout: the pair
// (x[i], x[i + D/2]) turns by pos * theta^(-2i/D)).
//
// Precision choice: angles are computed in double — inverse frequencies, pos * frequency, cos and
// sin — and rounded to f32 once. Hugging Face computes pos * inv_freq in f32, which is off by up
// to ~pos * 6e-8 rad; the CPU backend is the reference, so it takes the exact angle.
// Cost choice: cos/sin are tabulated once per distinct position when the positions span at most
// batch * T values (the usual case: 0..T-1 shared by every row), otherwise once per token, and the
// table is shared by all heads. Rotating is then 6 FLOPs per pair, bandwidth-bound.
// Invariants: D is even (core/ checks); `inverse` rotates by the negative angle, the exact
// transpose of the forward rotation, so it is the backward. out may alias x: each pair is read
// before either element is written.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/embedding.h"

namespace tiller::kernels {

using cpu::parallel_for;
using cpu::require_f32;

template <>
void rope<Backend::cpu>(const void* x_raw, const int32_t* positions, void* out_raw, int64_t batch,
                        int64_t heads, int64_t T, int64_t D, float theta, bool inverse,
                        DType dtype) {
  require_f32(dtype, "rope");
  const int64_t half = D / 2, tokens = batch * T;
  if (tokens == 0 || heads == 0 || half == 0) return;
  const float* x = static_cast<const float*>(x_raw);  // (batch, heads, T, D)
  float* out = static_cast<float*>(out_raw);          // (batch, heads, T, D)

  std::vector<double> inv_freq(static_cast<size_t>(half));  // theta^(-2i/D)
  for (int64_t i = 0; i < half; ++i)
    inv_freq[i] = std::pow(static_cast<double>(theta), -2.0 * static_cast<double>(i) / D);

  auto [min_it, max_it] = std::minmax_element(positions, positions + tokens);
  const int64_t min_pos = *min_it;
  const int64_t span = static_cast<int64_t>(*max_it) - min_pos + 1;
  const bool by_position = span <= tokens;
  const int64_t table_rows = by_position ? span : tokens;
  // (table_rows, half) each; row r is position min_pos + r, or token r when !by_position.
  std::vector<float> cos_table(static_cast<size_t>(table_rows * half));
  std::vector<float> sin_table(static_cast<size_t>(table_rows * half));
  const double direction = inverse ? -1.0 : 1.0;
  parallel_for(table_rows, 40 * half, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      double pos = by_position ? static_cast<double>(min_pos + r) : positions[r];
      for (int64_t i = 0; i < half; ++i) {
        double angle = direction * pos * inv_freq[i];
        cos_table[r * half + i] = static_cast<float>(std::cos(angle));
        sin_table[r * half + i] = static_cast<float>(std::sin(angle));
      }
    }
  });

  parallel_for(batch * heads * T, 6 * half, [&](int64_t row0, int64_t row1) {
    for (int64_t row = row0; row < row1; ++row) {
      int64_t b = row / (heads * T), t = row % T;
      int64_t token = b * T + t;
      int64_t table_row = by_position ? positions[token] - min_pos : token;
      const float* c = cos_table.data() + table_row * half;
      const float* s = sin_table.data() + table_row * half;
      const float* xr = x + row * D;
      float* o = out + row * D;
#pragma omp simd
      for (int64_t i = 0; i < half; ++i) {
        float first = xr[i], second = xr[i + half];
        o[i] = first * c[i] - second * s[i];
        o[i + half] = second * c[i] + first * s[i];
      }
    }
  });
}

}  // namespace tiller::kernels
