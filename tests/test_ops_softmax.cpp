// softmax and log_softmax over the last dim: probabilities, numerical stability at large logits,
// agreement with the formula in elementary ops, finite-difference gradients, bad-input messages.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/ops/ops.h"
#include "support/gradcheck.h"

using namespace tiller;

TEST_CASE("softmax rows are positive and sum to 1", "[softmax]") {
  Tensor x = testing::random_input({3, 7, 13}, 1, 4.f, false);
  Tensor p = softmax(x);
  REQUIRE(p.shape() == x.shape());
  for (float v : p.to_vector()) REQUIRE(v > 0.f);
  REQUIRE_CLOSE(sum(p, -1), Tensor::ones({3, 7}), 1e-5f, 1e-6f);
}

TEST_CASE("softmax matches exp(x) / sum(exp(x)) written in elementary ops", "[softmax]") {
  Tensor x = testing::random_input({5, 11}, 2, 1.f, false);
  Tensor e = exp(x);
  REQUIRE_CLOSE(softmax(x), div(e, sum(e, -1, true)), 1e-5f, 1e-7f);
  REQUIRE_CLOSE(log_softmax(x), log(div(e, sum(e, -1, true))), 1e-5f, 1e-6f);
}

TEST_CASE("softmax and log_softmax stay finite and exact at logits that overflow exp",
          "[softmax]") {
  // exp(1000) overflows f32; after subtracting the max the row is (0, 1, -inf-ish).
  Tensor x = Tensor::from_vector({1000.f, 1001.f, -1000.f}, {1, 3});
  std::vector<float> p = softmax(x).to_vector();
  REQUIRE(p[0] == Approx(1.f / (1.f + std::exp(1.f))));
  REQUIRE(p[1] == Approx(std::exp(1.f) / (1.f + std::exp(1.f))));
  REQUIRE(p[2] == 0.f);
  std::vector<float> logp = log_softmax(x).to_vector();
  float log_norm = std::log(1.f + std::exp(1.f));
  REQUIRE(logp[0] == Approx(-log_norm));
  REQUIRE(logp[1] == Approx(1.f - log_norm));
  REQUIRE(logp[2] == Approx(-2000.f - log_norm));  // -1000 - max - log(1 + e^-1)
}

TEST_CASE("softmax of a 1-d tensor normalises the whole vector", "[softmax]") {
  Tensor x = Tensor::from_vector({0.f, 0.f, 0.f, 0.f}, {4});
  for (float v : softmax(x).to_vector()) REQUIRE(v == Approx(0.25f));
}

TEST_CASE("softmax gradient matches finite differences", "[softmax]") {
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return softmax(in[0]); },
                    {testing::random_input({3, 7, 13}, 3)});
}

TEST_CASE("log_softmax gradient matches finite differences", "[softmax]") {
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return log_softmax(in[0]); },
                    {testing::random_input({3, 7, 13}, 4)});
}

TEST_CASE("softmax and log_softmax reject integer and empty inputs by name", "[softmax]") {
  REQUIRE_THROWS_WITH(softmax(Tensor::zeros({2, 3}, {.dtype = DType::i32})),
                      Catch::Contains("softmax: x must be floating point, got i32 (2,3)"));
  REQUIRE_THROWS_WITH(log_softmax(Tensor::zeros({2, 0})),
                      Catch::Contains("log_softmax: x must have a non-empty last dim, got (2,0)"));
  REQUIRE_THROWS_WITH(softmax(Tensor()), Catch::Contains("softmax: x is undefined"));
}
