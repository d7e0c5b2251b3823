// MinHash + LSH + exact confirmation: see minhash.h.
#include "core/data/minhash.h"

#include <algorithm>
#include <cmath>

#include "kernels/error.h"
#include "kernels/random.h"

namespace tiller::data {
namespace {

constexpr uint64_t kMersennePrime = (uint64_t{1} << 61) - 1;
constexpr uint32_t kMaxHash = 0xFFFFFFFFu;

// v mod (2^61 - 1) for any 64-bit v, without a division.
inline uint64_t mod_mersenne(uint64_t v) {
  uint64_t r = (v & kMersennePrime) + (v >> 61);
  return r >= kMersennePrime ? r - kMersennePrime : r;
}

}  // namespace

double lsh_candidate_probability(double similarity, int bands, int rows_per_band) {
  return 1.0 - std::pow(1.0 - std::pow(similarity, rows_per_band), bands);
}

double lsh_threshold(int bands, int rows_per_band) {
  return std::pow(1.0 / bands, 1.0 / rows_per_band);
}

double jaccard(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
  if (a.empty() && b.empty()) return 0.0;
  size_t i = 0, j = 0, common = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i] < b[j])
      ++i;
    else if (b[j] < a[i])
      ++j;
    else
      ++common, ++i, ++j;
  }
  return static_cast<double>(common) / static_cast<double>(a.size() + b.size() - common);
}

MinHasher::MinHasher(int num_perm, uint64_t seed) {
  TILLER_CHECK(num_perm >= 1, "minhash: num_perm must be >= 1, got {}", num_perm);
  for (int i = 0; i < num_perm; ++i) {
    a_.push_back(1 + random::bits(seed, 2 * static_cast<uint64_t>(i)) % (kMersennePrime - 1));
    b_.push_back(random::bits(seed, 2 * static_cast<uint64_t>(i) + 1) % kMersennePrime);
  }
}

std::vector<uint32_t> MinHasher::signature(const std::vector<uint64_t>& shingles) const {
  std::vector<uint32_t> minimum(a_.size(), kMaxHash);
  for (uint64_t shingle : shingles) {
    const uint64_t x = shingle & kMaxHash;
    for (size_t i = 0; i < a_.size(); ++i) {
      const uint64_t permuted = mod_mersenne(a_[i] * x + b_[i]) & kMaxHash;
      minimum[i] = std::min(minimum[i], static_cast<uint32_t>(permuted));
    }
  }
  return minimum;
}

UnionFind::UnionFind(int64_t n) : parent_(static_cast<size_t>(n)) {
  for (int64_t i = 0; i < n; ++i) parent_[static_cast<size_t>(i)] = i;
}

int64_t UnionFind::find(int64_t x) {
  while (parent_[static_cast<size_t>(x)] != x) {
    auto& p = parent_[static_cast<size_t>(x)];
    p = parent_[static_cast<size_t>(p)];  // path halving
    x = p;
  }
  return x;
}

void UnionFind::unite(int64_t x, int64_t y) {
  x = find(x), y = find(y);
  if (x == y) return;
  if (y < x) std::swap(x, y);
  parent_[static_cast<size_t>(y)] = x;
}

NearDuplicates find_near_duplicates(const std::vector<std::vector<uint64_t>>& shingle_sets,
                                    const NearDedupConfig& config,
                                    const std::vector<double>& priority) {
  TILLER_CHECK(config.bands >= 1 && config.rows_per_band >= 1,
               "near_dedup: bands and rows_per_band must be >= 1, got {} x {}", config.bands,
               config.rows_per_band);
  TILLER_CHECK(config.jaccard_threshold > 0.0 && config.jaccard_threshold <= 1.0,
               "near_dedup: jaccard_threshold must be in (0, 1], got {}", config.jaccard_threshold);
  const auto n = static_cast<int64_t>(shingle_sets.size());
  TILLER_CHECK(priority.empty() || static_cast<int64_t>(priority.size()) == n,
               "near_dedup: {} priorities for {} rows", priority.size(), n);
  const int num_perm = config.bands * config.rows_per_band;
  const MinHasher hasher(num_perm, config.seed);

  // Band keys: one 64-bit hash of each band's r values per row (rows without shingles skipped).
  std::vector<uint64_t> band_keys(static_cast<size_t>(n) * config.bands, 0);
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t i = 0; i < n; ++i) {
    if (shingle_sets[static_cast<size_t>(i)].empty()) continue;
    const std::vector<uint32_t> sig = hasher.signature(shingle_sets[static_cast<size_t>(i)]);
    for (int band = 0; band < config.bands; ++band) {
      uint64_t key = static_cast<uint64_t>(band) * 0x9e3779b97f4a7c15ull;
      for (int r = 0; r < config.rows_per_band; ++r)
        key = random::mix64(key ^ sig[static_cast<size_t>(band * config.rows_per_band + r)]);
      band_keys[static_cast<size_t>(i * config.bands + band)] = key;
    }
  }

  NearDuplicates result;
  result.matched.assign(static_cast<size_t>(n), -1);
  result.matched_jaccard.assign(static_cast<size_t>(n), 0.0);
  UnionFind clusters(n);
  // Buckets of one band: (key, row) pairs sorted, so each bucket is a run of rows in input order
  // (no per-bucket allocation).
  std::vector<std::pair<uint64_t, int64_t>> entries;
  entries.reserve(static_cast<size_t>(n));
  std::vector<int64_t> members;
  for (int band = 0; band < config.bands; ++band) {
    entries.clear();
    for (int64_t i = 0; i < n; ++i)
      if (!shingle_sets[static_cast<size_t>(i)].empty())
        entries.emplace_back(band_keys[static_cast<size_t>(i * config.bands + band)], i);
    std::sort(entries.begin(), entries.end());
    for (size_t start = 0; start < entries.size();) {
      size_t end = start + 1;
      while (end < entries.size() && entries[end].first == entries[start].first) ++end;
      members.clear();
      for (size_t e = start; e < end; ++e) {
        const int64_t i = entries[e].second;
        bool merged = false;
        for (int64_t earlier : members) {
          if (clusters.find(earlier) == clusters.find(i)) {
            merged = true;
            continue;
          }
          ++result.candidate_pairs;
          const double similarity = jaccard(shingle_sets[static_cast<size_t>(earlier)],
                                            shingle_sets[static_cast<size_t>(i)]);
          if (similarity < config.jaccard_threshold) continue;
          ++result.confirmed_pairs;
          clusters.unite(earlier, i);
          merged = true;
          if (result.matched[static_cast<size_t>(i)] < 0) {
            result.matched[static_cast<size_t>(i)] = earlier;
            result.matched_jaccard[static_cast<size_t>(i)] = similarity;
          }
        }
        // Only rows that start a cluster of their own in this bucket stay comparison targets.
        if (!merged) members.push_back(i);
      }
      start = end;
    }
  }

  // The kept row of each cluster: highest priority, ties to the earliest.
  std::vector<int64_t> best(static_cast<size_t>(n), -1);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t root = clusters.find(i);
    int64_t& current = best[static_cast<size_t>(root)];
    if (current < 0 || (!priority.empty() &&
                        priority[static_cast<size_t>(i)] > priority[static_cast<size_t>(current)]))
      current = i;
  }
  result.kept_of.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    result.kept_of[static_cast<size_t>(i)] = best[static_cast<size_t>(clusters.find(i))];
  return result;
}

}  // namespace tiller::data
