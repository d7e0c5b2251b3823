// Losses on logits (..., V): cross_entropy (ignore_index, mean/sum/none), token_logprobs and
// entropy. Values against hand computation and log_softmax, gradients against finite
// differences, and the messages of bad targets.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/ops/ops.h"
#include "support/gradcheck.h"

using namespace tiller;

namespace {

constexpr int32_t kIgnore = -100;

// Targets (rows) in [0, V), every `ignore_every`-th one (if > 0) replaced by kIgnore.
Tensor make_targets(const Shape& shape, int64_t V, uint64_t seed, int64_t ignore_every = 0) {
  std::vector<int32_t> ids(shape_numel(shape));
  uint64_t state = seed;
  for (size_t i = 0; i < ids.size(); ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    ids[i] = static_cast<int32_t>((state >> 33) % V);
    if (ignore_every > 0 && i % ignore_every == 1) ids[i] = kIgnore;
  }
  return Tensor::from_ints(ids, shape);
}

// log_softmax(logits)[target] per row via the already-tested log_softmax, as a host vector.
std::vector<float> gathered_log_softmax(const Tensor& logits, const Tensor& targets) {
  std::vector<float> logp = log_softmax(logits.detach()).to_vector();
  std::vector<int32_t> ids = targets.to_int_vector();
  int64_t V = logits.size(-1);
  std::vector<float> out(ids.size(), 0.f);
  for (size_t r = 0; r < ids.size(); ++r)
    if (ids[r] != kIgnore) out[r] = logp[r * V + ids[r]];
  return out;
}

}  // namespace

TEST_CASE("cross_entropy of uniform logits is log V", "[loss]") {
  const int64_t V = 17;
  Tensor logits = Tensor::full({3, 5, V}, 0.7f);
  Tensor loss = cross_entropy(logits, make_targets({3, 5}, V, 1));
  REQUIRE(loss.shape() == Shape{});
  REQUIRE(loss.dtype() == DType::f32);
  REQUIRE(loss.item() == Approx(std::log(17.f)));
}

TEST_CASE("cross_entropy of a hand-sized row is lse minus the target logit", "[loss]") {
  // logits (1, 2, 3), target 2: loss = log(e + e^2 + e^3) - 3.
  Tensor logits = Tensor::from_vector({1.f, 2.f, 3.f}, {1, 3});
  float expected = std::log(std::exp(1.f) + std::exp(2.f) + std::exp(3.f)) - 3.f;
  REQUIRE(cross_entropy(logits, Tensor::from_ints({2}, {1})).item() == Approx(expected));
}

TEST_CASE("cross_entropy reductions: none per token, sum over all, mean over non-ignored",
          "[loss]") {
  const int64_t V = 13;
  Tensor logits = testing::random_input({3, 7, V}, 2, 2.f, false);
  Tensor targets = make_targets({3, 7}, V, 3, /*ignore_every=*/4);
  std::vector<float> expected = gathered_log_softmax(logits, targets);
  std::vector<int32_t> ids = targets.to_int_vector();

  Tensor per_token = cross_entropy(logits, targets, kIgnore, Reduction::none);
  REQUIRE(per_token.shape() == Shape{3, 7});
  std::vector<float> values = per_token.to_vector();
  double total = 0;
  int64_t counted = 0;
  for (size_t r = 0; r < values.size(); ++r) {
    if (ids[r] == kIgnore) {
      REQUIRE(values[r] == 0.f);
      continue;
    }
    REQUIRE(values[r] == Approx(-expected[r]).epsilon(1e-5));
    total += values[r];
    ++counted;
  }
  REQUIRE(counted > 0);
  REQUIRE(counted < static_cast<int64_t>(ids.size()));  // some really are ignored
  REQUIRE(cross_entropy(logits, targets, kIgnore, Reduction::sum).item() ==
          Approx(total).epsilon(1e-5));
  REQUIRE(cross_entropy(logits, targets, kIgnore, Reduction::mean).item() ==
          Approx(total / counted).epsilon(1e-5));
}

TEST_CASE("cross_entropy gives ignored tokens zero gradient and honours a custom ignore_index",
          "[loss]") {
  const int64_t V = 5;
  Tensor logits = testing::random_input({4, V}, 4);
  Tensor targets = Tensor::from_ints({1, 7, 3, 7}, {4});  // 7 is the ignore index here
  cross_entropy(logits, targets, 7).backward();
  std::vector<float> grad = logits.grad().to_vector();
  for (int64_t row : {1, 3})
    for (int64_t j = 0; j < V; ++j) REQUIRE(grad[row * V + j] == 0.f);
  // A kept row's gradient is (softmax - onehot) / 2 kept tokens, and sums to 0.
  std::vector<float> p = softmax(logits.detach()).to_vector();
  REQUIRE(grad[0 * V + 1] == Approx((p[1] - 1.f) / 2.f));
  REQUIRE(grad[0 * V + 0] == Approx(p[0] / 2.f));
  REQUIRE(grad[2 * V + 3] == Approx((p[2 * V + 3] - 1.f) / 2.f));
}

TEST_CASE("cross_entropy with every token ignored is 0 with zero gradients", "[loss]") {
  Tensor logits = testing::random_input({2, 3, 6}, 5);
  Tensor targets = Tensor::from_ints(std::vector<int32_t>(6, kIgnore), {2, 3});
  Tensor loss = cross_entropy(logits, targets);
  REQUIRE(loss.item() == 0.f);
  loss.backward();
  for (float g : logits.grad().to_vector()) REQUIRE(g == 0.f);
}

TEST_CASE("cross_entropy gradients match finite differences for every reduction", "[loss]") {
  const int64_t V = 13;
  Tensor targets = make_targets({3, 7}, V, 6, /*ignore_every=*/5);
  for (Reduction reduction : {Reduction::mean, Reduction::sum, Reduction::none}) {
    INFO("reduction " << static_cast<int>(reduction));
    REQUIRE_GRADCHECK(
        [&](const std::vector<Tensor>& in) {
          return cross_entropy(in[0], targets, kIgnore, reduction);
        },
        {testing::random_input({3, 7, V}, 7)});
  }
}

TEST_CASE("token_logprobs gathers log_softmax at the tokens", "[loss]") {
  const int64_t V = 13;
  Tensor logits = testing::random_input({3, 7, V}, 8, 2.f, false);
  Tensor tokens = make_targets({3, 7}, V, 9);
  Tensor logp = token_logprobs(logits, tokens);
  REQUIRE(logp.shape() == Shape{3, 7});
  std::vector<float> expected = gathered_log_softmax(logits, tokens);
  std::vector<float> values = logp.to_vector();
  for (size_t r = 0; r < values.size(); ++r) {
    REQUIRE(values[r] <= 0.f);
    REQUIRE(values[r] == Approx(expected[r]).epsilon(1e-5));
  }
}

TEST_CASE("token_logprobs gradient matches finite differences", "[loss]") {
  Tensor tokens = make_targets({3, 7}, 13, 10);
  REQUIRE_GRADCHECK(
      [&](const std::vector<Tensor>& in) { return token_logprobs(in[0], tokens); },
      {testing::random_input({3, 7, 13}, 11)});
}

TEST_CASE("entropy is log V for uniform logits and near 0 for a peaked distribution", "[loss]") {
  Tensor uniform = Tensor::full({2, 3, 11}, -2.f);
  Tensor h = entropy(uniform);
  REQUIRE(h.shape() == Shape{2, 3});
  for (float v : h.to_vector()) REQUIRE(v == Approx(std::log(11.f)));
  // p = softmax(0, 40, 0): almost all mass on one token; H ~ 2 * 41 e^-40, far below 1e-6.
  Tensor peaked = Tensor::from_vector({0.f, 40.f, 0.f}, {3});
  REQUIRE(entropy(peaked).item() == Approx(0.f).margin(1e-6));
}

TEST_CASE("entropy matches -sum p log p written with softmax and log_softmax", "[loss]") {
  Tensor logits = testing::random_input({5, 9}, 12, 2.f, false);
  Tensor reference = neg(sum(mul(softmax(logits), log_softmax(logits)), -1));
  REQUIRE_CLOSE(entropy(logits), reference, 1e-5f, 1e-6f);
}

TEST_CASE("entropy gradient matches finite differences", "[loss]") {
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return entropy(in[0]); },
                    {testing::random_input({3, 7, 13}, 13)});
}

TEST_CASE("losses reject bad targets with the op, index and value in the message", "[loss]") {
  Tensor logits = Tensor::zeros({2, 3, 13});
  REQUIRE_THROWS_WITH(
      cross_entropy(logits, Tensor::from_ints({0, 1, 2, 3, 13, 5}, {2, 3})),
      Catch::Contains("cross_entropy: targets[4] = 13 is out of range [0, 13)"));
  REQUIRE_THROWS_WITH(
      cross_entropy(logits, Tensor::from_ints({0, 1, 2, 3, -1, 5}, {2, 3})),
      Catch::Contains("cross_entropy: targets[4] = -1 is out of range [0, 13)"));
  REQUIRE_THROWS_WITH(token_logprobs(logits, Tensor::from_ints({0, 1, kIgnore, 3, 4, 5}, {2, 3})),
                      Catch::Contains("token_logprobs: tokens[2] = -100 is out of range [0, 13)"));
  REQUIRE_THROWS_WITH(cross_entropy(logits, Tensor::from_ints({0, 1, 2}, {3})),
                      Catch::Contains("cross_entropy: logits are (2,3,13) so targets must be "
                                      "(2,3), got (3)"));
  REQUIRE_THROWS_WITH(cross_entropy(logits, Tensor::zeros({2, 3})),
                      Catch::Contains("cross_entropy: targets must be i32 token ids, got f32"));
  REQUIRE_THROWS_WITH(entropy(Tensor::zeros({4}, {.dtype = DType::i32})),
                      Catch::Contains("entropy: logits must be floating point"));
}

TEST_CASE("argmax_hits marks targets that are the first index of the row maximum", "[ops][loss]") {
  // Row 0: max at 2 (target 2: hit). Row 1: a tie between 0 and 3, the first wins (target 3: no
  // hit). Row 2: target ignored. Row 3: max at 0 (target 0: hit). Row 4: the tie's first (hit).
  Tensor logits = Tensor::from_vector({0.1f, -1.f, 3.f, 2.f,   //
                                       5.f, 1.f, 0.f, 5.f,     //
                                       9.f, 0.f, 0.f, 0.f,     //
                                       7.f, 6.f, 6.5f, -7.f,   //
                                       -1.f, 4.f, 4.f, 0.f},
                                      {5, 4});
  Tensor targets = Tensor::from_ints({2, 3, -100, 0, 1}, {5});
  CHECK(argmax_hits(logits, targets).to_vector() == std::vector<float>{1.f, 0.f, 0.f, 1.f, 1.f});
  CHECK(sum(argmax_hits(logits.reshape({5, 1, 4}), targets.reshape({5, 1}))).item() == 3.f);
  CHECK_THROWS_WITH(argmax_hits(logits, Tensor::from_ints({2, 3, 4, 0, 1}, {5})),
                    Catch::Contains("argmax_hits: targets[2] = 4 is out of range [0, 4)"));
}
