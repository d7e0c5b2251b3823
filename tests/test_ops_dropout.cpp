// dropout: identity cases, kept fraction and 1/(1-p) scaling, determinism from (seed, offset),
// generator advance, and a backward that reuses the forward's mask.
#include <catch2/catch.hpp>

#include "core/ops/ops.h"
#include "support/gradcheck.h"

using namespace tiller;

TEST_CASE("dropout with p = 0 or outside training returns x unchanged and draws nothing",
          "[dropout]") {
  Tensor x = testing::random_input({3, 7, 13}, 1);
  Generator gen(42);
  REQUIRE(dropout(x, 0.f, gen).same(x));
  REQUIRE(dropout(x, 0.5f, gen, /*training=*/false).same(x));
  REQUIRE(gen.offset == 0);
}

TEST_CASE("dropout keeps about 1-p of the elements and scales them by 1/(1-p)", "[dropout]") {
  const int64_t n = 100000;
  const float p = 0.3f;
  Tensor x = Tensor::full({n}, 2.f);
  Generator gen(7);
  std::vector<float> out = dropout(x, p, gen).to_vector();
  int64_t kept = 0;
  for (float v : out) {
    if (v == 0.f) continue;
    REQUIRE(v == Approx(2.f / (1.f - p)));
    ++kept;
  }
  // Binomial(n, 0.7) has std ~ 145; 1,000 is ~7 standard deviations.
  REQUIRE(kept == Approx(0.7 * n).margin(1000));
}

TEST_CASE("dropout masks repeat for the same seed and offset and differ otherwise", "[dropout]") {
  Tensor x = Tensor::ones({4096});
  Generator a(11), b(11), c(12);
  std::vector<float> first = dropout(x, 0.5f, a).to_vector();
  REQUIRE(a.offset == 4096);  // the generator advanced by numel
  REQUIRE(dropout(x, 0.5f, b).to_vector() == first);
  REQUIRE(dropout(x, 0.5f, c).to_vector() != first);
  REQUIRE(dropout(x, 0.5f, a).to_vector() != first);  // next counters, new mask
}

TEST_CASE("dropout gradient is the forward mask times 1/(1-p)", "[dropout]") {
  const float p = 0.4f;
  Tensor x = testing::random_input({3, 7, 13}, 2);
  Generator gen(5);
  Tensor out = dropout(x, p, gen);
  Tensor dy = testing::random_input({3, 7, 13}, 3, 1.f, false);
  out.backward(dy);
  std::vector<float> o = out.to_vector(), g = x.grad().to_vector(), d = dy.to_vector();
  int64_t dropped = 0;
  for (size_t i = 0; i < o.size(); ++i) {
    bool kept = o[i] != 0.f;
    dropped += !kept;
    REQUIRE(g[i] == Approx(kept ? d[i] / (1.f - p) : 0.f));
  }
  REQUIRE(dropped > 0);
}

TEST_CASE("dropout gradient matches finite differences under a fixed mask", "[dropout]") {
  // A fresh generator per call, so every evaluation uses the same mask.
  REQUIRE_GRADCHECK(
      [](const std::vector<Tensor>& in) {
        Generator gen(9);
        return dropout(in[0], 0.25f, gen);
      },
      {testing::random_input({3, 7, 13}, 4)});
}

TEST_CASE("dropout with p = 1 zeroes everything and rejects p outside [0, 1]", "[dropout]") {
  Tensor x = testing::random_input({64}, 5, 1.f, false);
  Generator gen(1);
  for (float v : dropout(x, 1.f, gen).to_vector()) REQUIRE(v == 0.f);
  REQUIRE_THROWS_WITH(dropout(x, 1.5f, gen),
                      Catch::Contains("dropout: p must be in [0, 1], got 1.5"));
  REQUIRE_THROWS_WITH(dropout(x, -0.1f, gen),
                      Catch::Contains("dropout: p must be in [0, 1], got -0.1"));
}
