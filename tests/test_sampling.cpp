// Sampling: greedy, temperature, top-k, top-p, determinism and reported log-probs.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>

#include "rl/generation/sampling.h"

using namespace tiller;
using namespace tiller::rl;

namespace {
Tensor logits_of(const std::vector<float>& probs, int64_t rows = 1) {
  std::vector<float> values;
  for (int64_t r = 0; r < rows; ++r)
    for (float p : probs) values.push_back(std::log(p));
  return Tensor::from_vector(values, {rows, static_cast<int64_t>(probs.size())});
}
}  // namespace

TEST_CASE("greedy picks the argmax and reports its log-prob", "[sampling]") {
  Generator gen(1);
  SampledTokens s = sample_next(logits_of({0.2f, 0.5f, 0.3f}), {.temperature = 0.f}, gen);
  REQUIRE(s.tokens[0] == 1);
  REQUIRE(s.logprobs[0] == Approx(std::log(0.5f)));
}

TEST_CASE("sampling frequencies follow the distribution and top-k/top-p truncate it",
          "[sampling]") {
  const int64_t rows = 20000;
  Tensor logits = logits_of({0.1f, 0.2f, 0.3f, 0.4f}, rows);
  auto frequencies = [&](SamplingConfig config) {
    Generator gen(7);
    SampledTokens s = sample_next(logits, config, gen);
    std::vector<double> f(4, 0);
    for (int32_t t : s.tokens) f[t] += 1.0 / rows;
    return f;
  };
  auto plain = frequencies({});
  REQUIRE(plain[0] == Approx(0.1).margin(0.015));
  REQUIRE(plain[3] == Approx(0.4).margin(0.015));
  auto top2 = frequencies({.top_k = 2});
  REQUIRE(top2[0] == 0);
  REQUIRE(top2[1] == 0);
  REQUIRE(top2[3] == Approx(4.0 / 7).margin(0.015));
  auto nucleus = frequencies({.top_p = 0.65f});  // 0.4 + 0.3 reaches 0.65
  REQUIRE(nucleus[0] + nucleus[1] == 0);
  REQUIRE(nucleus[2] == Approx(3.0 / 7).margin(0.015));
  auto cold = frequencies({.temperature = 0.5f});  // p^2 renormalised: 16/30 for the last
  REQUIRE(cold[3] == Approx(16.0 / 30).margin(0.015));
}

TEST_CASE("the same seed gives the same tokens; log-probs are under the temperature",
          "[sampling]") {
  Tensor logits = logits_of({0.25f, 0.25f, 0.5f}, 64);
  Generator a(3), b(3);
  SampledTokens x = sample_next(logits, {.temperature = 2.f}, a);
  SampledTokens y = sample_next(logits, {.temperature = 2.f}, b);
  REQUIRE(x.tokens == y.tokens);
  // At temperature 2 the probabilities are sqrt(p) renormalised.
  double z = 2 * std::sqrt(0.25) + std::sqrt(0.5);
  for (size_t i = 0; i < x.tokens.size(); ++i) {
    double p = x.tokens[i] == 2 ? std::sqrt(0.5) / z : std::sqrt(0.25) / z;
    REQUIRE(x.logprobs[i] == Approx(std::log(p)).margin(1e-5));
  }
}

TEST_CASE("padded vocabulary rows are never sampled and bad configs are rejected", "[sampling]") {
  Tensor logits = Tensor::from_vector({0.f, 0.f, 100.f}, {1, 3});
  Generator gen(1);
  REQUIRE(sample_next(logits, {.temperature = 0.f}, gen, 2).tokens[0] != 2);
  REQUIRE_THROWS_WITH(sample_next(logits, {.top_p = 0.f}, gen),
                      Catch::Contains("top_p must be in (0, 1]"));
  REQUIRE_THROWS_WITH(sample_next(Tensor::zeros({3}), {}, gen),
                      Catch::Contains("logits must be (B, V), got (3)"));
}
