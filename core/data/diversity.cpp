// Diversity selection: see diversity.h.
#include "core/data/diversity.h"

#include <cmath>
#include <limits>

#include "core/data/normalise.h"
#include "kernels/error.h"

namespace tiller::data {
namespace {

// Float accumulation, vectorised by omp simd (reassociating the sum); embeddings are unit-length,
// so the sums stay near 1.
float dot(const float* a, const float* b, int64_t dim) {
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t d = 0; d < dim; ++d) sum += a[d] * b[d];
  return sum;
}

float squared_distance(const float* a, const float* b, int64_t dim) {
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t d = 0; d < dim; ++d) {
    const float diff = a[d] - b[d];
    sum += diff * diff;
  }
  return sum;
}

std::vector<float> norms(const Embeddings& e) {
  std::vector<float> out(static_cast<size_t>(e.size()));
  for (int64_t i = 0; i < e.size(); ++i)
    out[static_cast<size_t>(i)] = std::sqrt(dot(e.row(i), e.row(i), e.dim));
  return out;
}

double cosine(const Embeddings& e, const std::vector<float>& norm, int64_t a, int64_t b) {
  const double scale =
      static_cast<double>(norm[static_cast<size_t>(a)]) * norm[static_cast<size_t>(b)];
  return scale > 0 ? dot(e.row(a), e.row(b), e.dim) / scale : 0.0;
}

}  // namespace

std::vector<int64_t> k_center_greedy(const Embeddings& embeddings, int64_t k, int64_t first) {
  const int64_t n = embeddings.size();
  TILLER_CHECK(k >= 0, "k_center_greedy: k must be >= 0, got {}", k);
  TILLER_CHECK(n == 0 || (first >= 0 && first < n), "k_center_greedy: first {} not in [0, {})",
               first, n);
  std::vector<int64_t> selected;
  if (n == 0 || k == 0) return selected;
  std::vector<float> nearest(static_cast<size_t>(n), std::numeric_limits<float>::infinity());
  int64_t next = first;
  while (static_cast<int64_t>(selected.size()) < std::min(k, n)) {
    selected.push_back(next);
    const float* chosen = embeddings.row(next);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i)
      nearest[static_cast<size_t>(i)] =
          std::min(nearest[static_cast<size_t>(i)],
                   squared_distance(embeddings.row(i), chosen, embeddings.dim));
    float farthest = -1;
    for (int64_t i = 0; i < n; ++i)
      if (nearest[static_cast<size_t>(i)] > farthest)
        farthest = nearest[static_cast<size_t>(i)], next = i;
  }
  return selected;
}

std::vector<int64_t> deita_select(const Embeddings& embeddings, const std::vector<int64_t>& order,
                                  int64_t budget, double threshold) {
  TILLER_CHECK(threshold > -1.0 && threshold <= 1.0, "deita_select: threshold {} not in (-1, 1]",
               threshold);
  const std::vector<float> norm = norms(embeddings);
  std::vector<int64_t> kept;
  for (int64_t candidate : order) {
    if (static_cast<int64_t>(kept.size()) >= budget) break;
    TILLER_CHECK(candidate >= 0 && candidate < embeddings.size(),
                 "deita_select: index {} not in [0, {})", candidate, embeddings.size());
    bool too_close = false;
    for (int64_t k : kept)
      if (cosine(embeddings, norm, candidate, k) > threshold) {
        too_close = true;
        break;
      }
    if (!too_close) kept.push_back(candidate);
  }
  return kept;
}

double mean_nearest_neighbour_distance(const Embeddings& embeddings,
                                       const std::vector<int64_t>& selected) {
  if (selected.size() < 2) return 0.0;
  const std::vector<float> norm = norms(embeddings);
  double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(dynamic, 16)
  for (size_t a = 0; a < selected.size(); ++a) {
    double best = -2;
    for (size_t b = 0; b < selected.size(); ++b)
      if (a != b) best = std::max(best, cosine(embeddings, norm, selected[a], selected[b]));
    total += 1.0 - best;
  }
  return total / static_cast<double>(selected.size());
}

std::vector<float> hashed_bag_of_words(const std::string& normalised, int64_t dim) {
  TILLER_CHECK(dim >= 1, "hashed_bag_of_words: dim must be >= 1, got {}", dim);
  std::vector<float> features(static_cast<size_t>(dim), 0.f);
  const std::vector<WordSpan> words = word_spans(normalised);
  const auto add = [&](std::string_view gram) {
    const uint32_t h = crc32(gram);
    features[h % static_cast<uint32_t>(dim)] += (h >> 31) ? -1.f : 1.f;
  };
  for (size_t i = 0; i < words.size(); ++i) {
    add(std::string_view(normalised).substr(words[i].begin, words[i].end - words[i].begin));
    if (i + 1 < words.size())
      add(std::string_view(normalised).substr(words[i].begin, words[i + 1].end - words[i].begin));
  }
  double norm = 0;
  for (float f : features) norm += static_cast<double>(f) * f;
  if (norm > 0)
    for (float& f : features) f = static_cast<float>(f / std::sqrt(norm));
  return features;
}

}  // namespace tiller::data
