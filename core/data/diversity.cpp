// Diversity selection: see diversity.h.
#include "core/data/diversity.h"

#include <cmath>
#include <algorithm>
#include <limits>
#include <random>

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

std::vector<int32_t> k_means(const Embeddings& embeddings, int64_t k, uint64_t seed,
                             int max_iterations) {
  const int64_t n = embeddings.size(), dim = embeddings.dim;
  TILLER_CHECK(k >= 1, "k_means: k must be >= 1, got {}", k);
  TILLER_CHECK(max_iterations >= 1, "k_means: max_iterations must be >= 1, got {}",
               max_iterations);
  std::vector<int32_t> assignment(static_cast<size_t>(n), 0);
  if (n == 0) return assignment;
  k = std::min(k, n);
  std::mt19937_64 rng(seed);
  const auto uniform = [&] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; };  // [0, 1)
  std::vector<float> centres(static_cast<size_t>(k * dim));
  const auto centre = [&](int64_t c) { return centres.data() + c * dim; };
  const auto set_centre = [&](int64_t c, int64_t row) {
    std::copy(embeddings.row(row), embeddings.row(row) + dim, centre(c));
  };

  // k-means++ seeding.
  std::vector<double> nearest(static_cast<size_t>(n), std::numeric_limits<double>::infinity());
  set_centre(0, static_cast<int64_t>(uniform() * static_cast<double>(n)));
  for (int64_t c = 1; c < k; ++c) {
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      auto& d = nearest[static_cast<size_t>(i)];
      d = std::min(d, static_cast<double>(squared_distance(embeddings.row(i), centre(c - 1), dim)));
      total += d;
    }
    int64_t pick = n - 1;
    if (total > 0) {
      double target = uniform() * total;
      for (int64_t i = 0; i < n; ++i)
        if ((target -= nearest[static_cast<size_t>(i)]) < 0) {
          pick = i;
          break;
        }
    } else {
      pick = static_cast<int64_t>(uniform() * static_cast<double>(n));  // all rows identical
    }
    set_centre(c, pick);
  }

  std::vector<float> distance(static_cast<size_t>(n));
  for (int iteration = 0; iteration < max_iterations; ++iteration) {
    bool changed = iteration == 0;
#pragma omp parallel for schedule(static) reduction(|| : changed)
    for (int64_t i = 0; i < n; ++i) {
      int32_t best = 0;
      float best_distance = std::numeric_limits<float>::infinity();
      for (int64_t c = 0; c < k; ++c) {
        const float d = squared_distance(embeddings.row(i), centre(c), dim);
        if (d < best_distance) best_distance = d, best = static_cast<int32_t>(c);
      }
      changed = changed || assignment[static_cast<size_t>(i)] != best;
      assignment[static_cast<size_t>(i)] = best;
      distance[static_cast<size_t>(i)] = best_distance;
    }
    if (!changed) break;
    std::vector<double> sum(static_cast<size_t>(k * dim), 0.0);
    std::vector<int64_t> count(static_cast<size_t>(k), 0);
    for (int64_t i = 0; i < n; ++i) {
      const int32_t c = assignment[static_cast<size_t>(i)];
      ++count[static_cast<size_t>(c)];
      for (int64_t d = 0; d < dim; ++d)
        sum[static_cast<size_t>(c * dim + d)] += embeddings.row(i)[d];
    }
    for (int64_t c = 0; c < k; ++c) {
      if (count[static_cast<size_t>(c)] == 0) {
        // Empty: move the centre to the row farthest from its own centre.
        const auto far = std::max_element(distance.begin(), distance.end()) - distance.begin();
        set_centre(c, far);
        distance[static_cast<size_t>(far)] = 0;
        continue;
      }
      for (int64_t d = 0; d < dim; ++d)
        centre(c)[d] = static_cast<float>(sum[static_cast<size_t>(c * dim + d)] /
                                          static_cast<double>(count[static_cast<size_t>(c)]));
    }
  }
  return assignment;
}

std::vector<int64_t> cluster_round_robin(const std::vector<int32_t>& cluster,
                                         const std::vector<int64_t>& order, int64_t budget) {
  // Each cluster's candidates best first; clusters in the order of their best candidate.
  std::vector<std::vector<int64_t>> lists;
  std::vector<int64_t> list_of;  // cluster id -> position in lists, -1 until seen
  for (int64_t candidate : order) {
    TILLER_CHECK(candidate >= 0 && candidate < static_cast<int64_t>(cluster.size()),
                 "cluster_round_robin: index {} not in [0, {})", candidate, cluster.size());
    const int32_t c = cluster[static_cast<size_t>(candidate)];
    TILLER_CHECK(c >= 0, "cluster_round_robin: row {} has cluster {}", candidate, c);
    if (static_cast<size_t>(c) >= list_of.size()) list_of.resize(static_cast<size_t>(c) + 1, -1);
    auto& at = list_of[static_cast<size_t>(c)];
    if (at < 0) at = static_cast<int64_t>(lists.size()), lists.emplace_back();
    lists[static_cast<size_t>(at)].push_back(candidate);
  }
  std::vector<int64_t> taken;
  for (size_t round = 0; static_cast<int64_t>(taken.size()) < budget; ++round) {
    bool any = false;
    for (const auto& list : lists) {
      if (static_cast<int64_t>(taken.size()) >= budget) break;
      if (round < list.size()) taken.push_back(list[round]), any = true;
    }
    if (!any) break;
  }
  return taken;
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
