// TokenLoader: window contents, seeded shuffles, rank slices and exact resume.
//
// Shard s holds tokens s*10000 + i, so a token says where it came from and a window's first input
// identifies the window.
#include <catch2/catch.hpp>

#include <numeric>
#include <set>

#include "kernels/error.h"
#include "core/data/loader.h"
#include "support/temp_dir.h"

using namespace tiller;
using tiller::testing::TempDir;

namespace {

// Two shards: 161 tokens (20 windows of T=8) and 97 tokens (12 windows): 32 windows in all.
std::vector<std::string> make_shards(const TempDir& dir) {
  std::vector<std::string> paths;
  int64_t sizes[] = {161, 97};
  for (int s = 0; s < 2; ++s) {
    std::vector<TokenId> tokens(sizes[s]);
    std::iota(tokens.begin(), tokens.end(), s * 10000);
    paths.push_back(dir / ("shard" + std::to_string(s) + ".bin"));
    write_token_shard(paths.back(), tokens, 2);
  }
  return paths;
}

TokenLoaderOptions options(int64_t batch, uint64_t seed = 1, int rank = 0, int world = 1) {
  TokenLoaderOptions o;
  o.batch_size = batch;
  o.seq_len = 8;
  o.seed = seed;
  o.rank = rank;
  o.world_size = world;
  return o;
}

// The first input token of every row: identifies the windows of a batch.
std::vector<int32_t> row_starts(const TokenBatch& batch) {
  auto inputs = batch.inputs.to_int_vector();
  std::vector<int32_t> starts;
  for (size_t i = 0; i < inputs.size(); i += 8) starts.push_back(inputs[i]);
  return starts;
}

}  // namespace

TEST_CASE("batches are (B, T) windows with targets shifted by one token", "[loader]") {
  TempDir dir;
  TokenLoaderOptions in_order = options(4);
  in_order.shuffle = false;
  TokenLoader loader(make_shards(dir), in_order);
  REQUIRE(loader.windows_per_epoch() == 32);
  REQUIRE(loader.steps_per_epoch() == 8);
  TokenBatch batch = loader.next();
  REQUIRE(batch.inputs.shape() == Shape{4, 8});
  REQUIRE(batch.targets.shape() == Shape{4, 8});
  REQUIRE(batch.inputs.dtype() == DType::i32);
  auto inputs = batch.inputs.to_int_vector();
  auto targets = batch.targets.to_int_vector();
  for (int64_t row = 0; row < 4; ++row) {
    for (int64_t t = 0; t < 8; ++t) {
      REQUIRE(inputs[row * 8 + t] == row * 8 + t);  // windows advance by T within a shard
      REQUIRE(targets[row * 8 + t] == row * 8 + t + 1);
    }
  }
  // Windows 20..23 are the first of shard 1: they start at its own token 0, never straddling.
  for (int i = 0; i < 4; ++i) loader.next();
  REQUIRE(row_starts(loader.next()) == std::vector<int32_t>{10000, 10008, 10016, 10024});
}

TEST_CASE("the shuffle is fixed by the seed and each epoch visits every window once", "[loader]") {
  TempDir dir;
  auto paths = make_shards(dir);
  TokenLoader a(paths, options(4, 7)), b(paths, options(4, 7)), c(paths, options(4, 8));
  std::vector<int32_t> epoch0, epoch1, other_seed;
  for (int step = 0; step < 8; ++step) {
    auto starts = row_starts(a.next());
    REQUIRE(row_starts(b.next()) == starts);
    epoch0.insert(epoch0.end(), starts.begin(), starts.end());
    auto c_starts = row_starts(c.next());
    other_seed.insert(other_seed.end(), c_starts.begin(), c_starts.end());
  }
  for (int step = 0; step < 8; ++step) {
    auto starts = row_starts(a.next());
    epoch1.insert(epoch1.end(), starts.begin(), starts.end());
  }
  REQUIRE(a.state() == TokenLoaderState{1, 8, 7});
  REQUIRE(epoch0 != other_seed);
  REQUIRE(epoch0 != epoch1);  // reshuffled each epoch
  for (auto* epoch : {&epoch0, &epoch1, &other_seed}) {
    std::set<int32_t> distinct(epoch->begin(), epoch->end());
    REQUIRE(distinct.size() == 32);
    REQUIRE(*distinct.begin() == 0);
    REQUIRE(*distinct.rbegin() == 10088);
  }
}

TEST_CASE("rank slices are disjoint and together cover the epoch", "[loader]") {
  TempDir dir;
  auto paths = make_shards(dir);
  // 32 windows, global batch 3 x 2 = 6: 5 steps, and 2 windows dropped per epoch.
  std::set<int64_t> seen;
  for (int rank = 0; rank < 3; ++rank) {
    TokenLoader loader(paths, options(2, 5, rank, 3));
    REQUIRE(loader.steps_per_epoch() == 5);
    for (int64_t step = 0; step < 5; ++step) {
      auto ids = loader.window_ids(0, step);
      auto starts = row_starts(loader.next());
      for (size_t row = 0; row < ids.size(); ++row) {
        INFO("rank " << rank << " step " << step << " window " << ids[row]);
        REQUIRE(seen.insert(ids[row]).second);
        int32_t expected_start = ids[row] < 20 ? ids[row] * 8 : 10000 + (ids[row] - 20) * 8;
        REQUIRE(starts[row] == expected_start);
      }
    }
  }
  REQUIRE(seen.size() == 30);
  // With a global batch that divides the windows, the ranks cover all of them.
  std::set<int64_t> all;
  for (int rank = 0; rank < 2; ++rank) {
    TokenLoader loader(paths, options(4, 5, rank, 2));
    for (int64_t step = 0; step < loader.steps_per_epoch(); ++step) {
      for (int64_t id : loader.window_ids(3, step)) REQUIRE(all.insert(id).second);
    }
  }
  REQUIRE(all.size() == 32);
}

TEST_CASE("restoring a saved state continues with identical batches, across epochs", "[loader]") {
  TempDir dir;
  auto paths = make_shards(dir);
  TokenLoader original(paths, options(3, 11, 1, 2));  // 5 steps per epoch
  for (int step = 0; step < 7; ++step) original.next();
  TokenLoaderState saved = original.state();
  REQUIRE(saved == TokenLoaderState{1, 2, 11});
  std::vector<std::vector<int32_t>> expected;
  for (int step = 0; step < 9; ++step) expected.push_back(original.next().inputs.to_int_vector());

  TokenLoader resumed(paths, options(3, 999, 1, 2));  // the state carries the seed
  resumed.restore(saved);
  REQUIRE(resumed.state() == saved);
  for (int step = 0; step < 9; ++step) {
    INFO("step " << step << " after resume");
    REQUIRE(resumed.next().inputs.to_int_vector() == expected[step]);
  }
  REQUIRE_THROWS_WITH(resumed.restore({0, 6, 11}),
                      Catch::Contains("cursor 6") && Catch::Contains("5 steps per epoch"));
}

TEST_CASE("the loader rejects data too small for one global batch and bad ranks", "[loader]") {
  TempDir dir;
  auto paths = make_shards(dir);
  REQUIRE_THROWS_WITH(
      TokenLoader(paths, options(17, 0, 0, 2)),
      Catch::Contains("32 windows of 9 tokens") && Catch::Contains("global batch of 34"));
  REQUIRE_THROWS_WITH(TokenLoader(paths, options(2, 0, 2, 2)),
                      Catch::Contains("rank 2 is not in [0, world_size 2)"));
  REQUIRE_THROWS_WITH(TokenLoader({(dir / "missing.bin").string()}, options(2)),
                      Catch::Contains("missing.bin"));
}
