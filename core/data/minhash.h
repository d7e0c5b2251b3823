// Near-duplicate detection: MinHash signatures over word-shingle sets, LSH banding, every
// candidate pair confirmed by its exact Jaccard similarity, union-find clusters.
//
// LSH S-curve: with b bands of r rows (num_perm = b * r), two sets of Jaccard similarity s share
// at least one band, and so become a candidate pair, with probability
//     P(s) = 1 - (1 - s^r)^b,
// whose steepest point (the implied threshold) is about (1/b)^(1/r). Defaults b = 20, r = 5
// (100 permutations): threshold ≈ 0.55, P(0.6) = 0.80, P(0.7) = 0.975, P(0.8) = 0.9997, so
// pairs at the default confirmation threshold (Jaccard ≥ 0.7, text-dedup's default) are found
// with probability ≥ 0.975. Candidates below the threshold are discarded by the exact check, so
// precision is 1 by construction; recall is what the S-curve gives up. (datatrove's default is
// 14 × 8 = 112 permutations, threshold ≈ 0.72, P(0.8) = 0.92: too low for recall ≥ 0.95 at 0.8.)
// Shingles: word 5-grams of the normalised text (datatrove's and Gopher's n = 5).
//
// Permutations: datasketch's, h_i(x) = ((a_i * x + b_i) mod 2^64 mod (2^61 - 1)) & (2^32 - 1)
// for the 32-bit shingle hash x, including numpy's 64-bit wrap-around of a_i * x, so
// bench/py_curate.py gets identical signatures from datasketch. a_i in [1, p), b_i in [0, p) are
// drawn from kernels/random.h with the seed.
//
// Pairs inside one LSH bucket: each member is compared with the bucket's earlier members that
// are not yet in its cluster (a union-find look-up first skips pairs already merged), so a bucket
// of n copies of one text costs n comparisons, not n^2 / 2.
//
// Kept row per cluster: the highest `priority` when given (ties: the earliest), else the earliest.
#pragma once

#include <cstdint>
#include <vector>

namespace tiller::data {

struct NearDedupConfig {
  int ngram = 5;                   // word shingle size (datatrove, Gopher)
  int bands = 20;                  // b
  int rows_per_band = 5;           // r
  double jaccard_threshold = 0.7;  // confirmed duplicate when exact Jaccard >= this
  uint64_t seed = 1;               // permutation draw
};

double lsh_candidate_probability(double similarity, int bands, int rows_per_band);
double lsh_threshold(int bands, int rows_per_band);  // (1/b)^(1/r)

// Exact Jaccard of two sorted unique hash sets (0 when both are empty).
double jaccard(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b);

class MinHasher {
 public:
  MinHasher(int num_perm, uint64_t seed);
  // One 32-bit minimum per permutation over the low 32 bits of each shingle hash; an empty set
  // gives all 0xFFFFFFFF.
  std::vector<uint32_t> signature(const std::vector<uint64_t>& shingles) const;
  const std::vector<uint64_t>& a() const { return a_; }
  const std::vector<uint64_t>& b() const { return b_; }

 private:
  std::vector<uint64_t> a_, b_;
};

class UnionFind {
 public:
  explicit UnionFind(int64_t n);
  int64_t find(int64_t x);
  void unite(int64_t x, int64_t y);  // the smaller root index becomes the root

 private:
  std::vector<int64_t> parent_;
};

struct NearDuplicates {
  std::vector<int64_t> kept_of;  // per row: the kept row of its cluster (itself when kept)
  std::vector<int64_t> matched;  // per row: the row it was merged with (-1 when none)
  std::vector<double> matched_jaccard;
  int64_t candidate_pairs = 0;  // pairs that shared a band and were checked
  int64_t confirmed_pairs = 0;  // of those, Jaccard >= threshold
};

// `shingle_sets[i]` sorted unique (word_shingles); `priority` empty or one value per row.
NearDuplicates find_near_duplicates(const std::vector<std::vector<uint64_t>>& shingle_sets,
                                    const NearDedupConfig& config,
                                    const std::vector<double>& priority = {});

}  // namespace tiller::data
