// Near-duplicate detection: the LSH S-curve, exact-Jaccard confirmation, clusters, kept rows.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/data/curate.h"
#include "core/data/minhash.h"
#include "kernels/random.h"

using namespace tiller;
using namespace tiller::data;

namespace {

// Two sets of `size` random hashes sharing `common` of them: Jaccard common / (2 size - common).
std::pair<std::vector<uint64_t>, std::vector<uint64_t>> pair_with_overlap(int size, int common,
                                                                          uint64_t seed) {
  std::vector<uint64_t> a, b;
  uint64_t counter = 0;
  for (int i = 0; i < common; ++i) {
    const uint64_t h = random::bits(seed, counter++);
    a.push_back(h), b.push_back(h);
  }
  for (int i = common; i < size; ++i) a.push_back(random::bits(seed, counter++));
  for (int i = common; i < size; ++i) b.push_back(random::bits(seed, counter++));
  std::sort(a.begin(), a.end()), std::sort(b.begin(), b.end());
  return {a, b};
}

Row chat(const std::string& q, const std::string& a) {
  return parse_row(R"({"messages":[{"role":"user","content":")" + q +
                       R"("},{"role":"assistant","content":")" + a + R"("}]})",
                   "t.jsonl:0");
}

}  // namespace

TEST_CASE("the S-curve formula and its threshold", "[curate]") {
  CHECK(lsh_candidate_probability(0.8, 20, 5) == Approx(1 - std::pow(1 - std::pow(0.8, 5), 20)));
  CHECK(lsh_candidate_probability(0.7, 20, 5) == Approx(0.9748).margin(1e-4));
  CHECK(lsh_threshold(20, 5) == Approx(0.5493).margin(1e-4));
  CHECK(jaccard({1, 2, 3}, {2, 3, 4, 5}) == Approx(2.0 / 5.0));
}

TEST_CASE("pairs of known similarity become LSH candidates as often as the S-curve says",
          "[curate]") {
  // 300 independent permutation draws per similarity; a pair is a candidate iff it was checked.
  constexpr int kTrials = 300, kSize = 100;
  for (const double target : {0.3, 0.5, 0.6, 0.7, 0.8}) {
    const int common = static_cast<int>(std::lround(2 * kSize * target / (1 + target)));
    int candidates = 0;
    double similarity = 0;
    for (int trial = 0; trial < kTrials; ++trial) {
      auto [a, b] = pair_with_overlap(kSize, common, 1000 + trial);
      similarity = jaccard(a, b);
      NearDedupConfig config{.bands = 20,
                             .rows_per_band = 5,
                             .jaccard_threshold = 1.0,
                             .seed = static_cast<uint64_t>(trial)};
      candidates += find_near_duplicates({a, b}, config).candidate_pairs > 0;
    }
    const double expected = lsh_candidate_probability(similarity, 20, 5);
    const double sigma = std::sqrt(expected * (1 - expected) / kTrials);
    INFO("Jaccard " << similarity << ": " << candidates << " of " << kTrials << ", expected "
                    << expected);
    CHECK(std::abs(candidates / double(kTrials) - expected) <= 4 * sigma + 0.01);
  }
}

TEST_CASE("candidates below the Jaccard threshold are never merged; above it they are",
          "[curate]") {
  auto [a, b] = pair_with_overlap(100, 90, 7);  // Jaccard 90/110 = 0.818
  auto [c, d] = pair_with_overlap(100, 70, 8);  // Jaccard 70/130 = 0.538
  const NearDuplicates found = find_near_duplicates({a, b, c, d}, {.jaccard_threshold = 0.7});
  CHECK(found.kept_of == std::vector<int64_t>{0, 0, 2, 3});
  CHECK(found.matched[1] == 0);
  CHECK(found.matched_jaccard[1] == Approx(90.0 / 110.0));
}

TEST_CASE("union-find clusters are transitive and keep the highest priority row", "[curate]") {
  // x ~ y and y ~ z (each Jaccard 0.82) but x and z only 0.67: one cluster of three.
  std::vector<uint64_t> x, y, z;
  for (uint64_t i = 0; i < 100; ++i) x.push_back(random::bits(3, i));
  y = std::vector<uint64_t>(x.begin() + 10, x.end());
  for (uint64_t i = 0; i < 10; ++i) y.push_back(random::bits(4, i));
  z = std::vector<uint64_t>(y.begin() + 10, y.end());
  for (uint64_t i = 0; i < 10; ++i) z.push_back(random::bits(5, i));
  for (auto* s : {&x, &y, &z}) std::sort(s->begin(), s->end());
  REQUIRE(jaccard(x, z) < 0.7);
  const NearDuplicates first = find_near_duplicates({x, y, z}, {.jaccard_threshold = 0.8});
  CHECK(first.kept_of == std::vector<int64_t>{0, 0, 0});
  const NearDuplicates best =
      find_near_duplicates({x, y, z}, {.jaccard_threshold = 0.8}, {0.1, 0.2, 0.9});
  CHECK(best.kept_of == std::vector<int64_t>{2, 2, 2});

  UnionFind uf(5);
  uf.unite(3, 4), uf.unite(1, 4);
  CHECK(uf.find(3) == 1);
  CHECK(uf.find(0) == 0);
}

TEST_CASE("exact and near dedup through the Curator name the row each duplicate copies",
          "[curate]") {
  const std::string long_answer =
      "The quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat today.";
  std::vector<Row> rows = {
      chat("Tell me a story about a fox.", long_answer),
      chat("tell me a story, about a FOX", long_answer),  // exact after normalisation
      chat("Tell me a story about a fox.", long_answer.substr(0, long_answer.size() - 6) + "now."),
      chat("What is two plus two?", "Two plus two is four."),
  };
  CurateConfig config;
  config.stages = {"exact_dedup", "near_dedup"};
  const CurateResult result = Curator(config).run(rows);
  REQUIRE(result.rejections[1]);
  CHECK(result.rejections[1]->reason == "exact_duplicate");
  CHECK(result.rejections[1]->duplicate_of == 0);
  REQUIRE(result.rejections[2]);
  CHECK(result.rejections[2]->reason == "near_duplicate");
  CHECK(result.rejections[2]->duplicate_of == 0);
  CHECK(result.rejections[2]->similarity >= 0.7);
  CHECK_FALSE(result.rejections[0]);
  CHECK_FALSE(result.rejections[3]);
  CHECK(result.rows_kept == 2);
}
