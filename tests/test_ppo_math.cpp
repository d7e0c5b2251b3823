// PPO arithmetic against hand-computed values.
#include <catch2/catch.hpp>

#include <cmath>

#include "rl/trainers/ppo_math.h"

using namespace tiller;
using namespace tiller::rl;

namespace {
Tensor row(std::vector<float> v, bool grad = false) {
  int64_t n = static_cast<int64_t>(v.size());
  return Tensor::from_vector(v, {1, n}, TensorOptions{}.grad(grad));
}
}  // namespace

TEST_CASE("GAE matches a hand computation and stops at the end of each response", "[ppo]") {
  Advantages a = gae(row({0, 0, 1}), row({0.5f, 0.6f, 0.7f}), row({1, 1, 1}), 1.f, 0.95f);
  auto adv = a.advantages.to_vector(), ret = a.returns.to_vector();
  REQUIRE(adv[2] == Approx(0.3f));
  REQUIRE(adv[1] == Approx(0.385f));
  REQUIRE(adv[0] == Approx(0.46575f));
  REQUIRE(ret[0] == Approx(0.96575f));
  REQUIRE(ret[2] == Approx(1.0f));
  // Padding after the response is not part of the episode: its reward and value are ignored.
  Advantages p = gae(row({0, 1, 5}), row({0.5f, 0.6f, 9.f}), row({1, 1, 0}), 0.9f, 0.95f);
  auto padv = p.advantages.to_vector();
  REQUIRE(padv[2] == 0.f);
  REQUIRE(padv[1] == Approx(0.4f));
  REQUIRE(padv[0] == Approx(0.04f + 0.9f * 0.95f * 0.4f));
}

TEST_CASE("KL estimators: k1 is the log ratio, k3 is (r - 1) - log r and never negative", "[ppo]") {
  Tensor logp = row({std::log(0.5f), std::log(0.1f)});
  Tensor ref = row({std::log(0.25f), std::log(0.4f)});
  auto k1 = kl_estimate(logp, ref, KLEstimator::k1).to_vector();
  auto k3 = kl_estimate(logp, ref, KLEstimator::k3).to_vector();
  REQUIRE(k1[0] == Approx(std::log(2.f)));
  REQUIRE(k1[1] == Approx(std::log(0.25f)));
  REQUIRE(k3[0] == Approx(-0.5f + std::log(2.f)));
  REQUIRE(k3[1] == Approx(3.f - std::log(4.f)));
  REQUIRE(k3[1] > 0.f);
}

TEST_CASE("shaped rewards carry -kl_coef * kl per token and the score on the last real token",
          "[ppo]") {
  Tensor rewards = shape_rewards(Tensor::from_vector({2.f}, {1}), row({0.1f, 0.2f, 0.3f}),
                                 row({1, 1, 0}), 0.5f);
  auto r = rewards.to_vector();
  REQUIRE(r[0] == Approx(-0.05f));
  REQUIRE(r[1] == Approx(1.9f));
  REQUIRE(r[2] == 0.f);
}

TEST_CASE("masked whitening uses the unbiased variance of the unmasked elements", "[ppo]") {
  Tensor w = masked_whiten(row({1, 2, 3, 4, 100}), row({1, 1, 1, 1, 0}));
  auto v = w.to_vector();
  REQUIRE(v[0] == Approx((1 - 2.5) / std::sqrt(5.0 / 3.0)));
  REQUIRE(v[3] == Approx((4 - 2.5) / std::sqrt(5.0 / 3.0)));
  REQUIRE(v[4] == 0.f);
  auto kept = masked_whiten(row({1, 2, 3, 4}), row({1, 1, 1, 1}), false).to_vector();
  REQUIRE(kept[0] == Approx((1 - 2.5) / std::sqrt(5.0 / 3.0) + 2.5));
  REQUIRE(masked_mean(row({1, 2, 3}), row({1, 0, 1})).item() == Approx(2.f));
}

TEST_CASE("clipped policy loss: gradient -A/N when unclipped, zero when the clip is active",
          "[ppo]") {
  Tensor logp = row({0.f, 0.f}, true);
  PolicyLoss l = clipped_policy_loss(logp, row({0.f, 0.f}), row({1.f, -2.f}), row({1, 1}), 0.2f);
  REQUIRE(l.loss.item() == Approx(0.5f));
  l.loss.backward();
  REQUIRE(logp.grad().to_vector()[0] == Approx(-0.5f));
  REQUIRE(logp.grad().to_vector()[1] == Approx(1.f));
  REQUIRE(l.clipfrac == 0.f);
  REQUIRE(l.approxkl == 0.f);

  // ratio 1.5 with clip 0.2: for A = +1 the clipped term (-1.2) wins, for A = -1 the unclipped.
  Tensor moved = row({std::log(1.5f), std::log(1.5f)}, true);
  PolicyLoss c = clipped_policy_loss(moved, row({0.f, 0.f}), row({1.f, -1.f}), row({1, 1}), 0.2f);
  REQUIRE(c.loss.item() == Approx((-1.2f + 1.5f) / 2));
  c.loss.backward();
  REQUIRE(moved.grad().to_vector()[0] == Approx(0.f));
  REQUIRE(moved.grad().to_vector()[1] == Approx(0.75f));  // -A * r / N = 1.5 / 2
  REQUIRE(c.clipfrac == Approx(0.5f));
  REQUIRE(c.approxkl == Approx(0.5f * std::log(1.5f) * std::log(1.5f)));
  REQUIRE(c.ratio_mean == Approx(1.5f));
}

TEST_CASE("clipped value loss takes the larger of the clipped and unclipped errors", "[ppo]") {
  Tensor v = row({1.0f}, true);
  ValueLoss far = clipped_value_loss(v, row({0.f}), row({2.f}), row({1}), 0.2f);
  REQUIRE(far.loss.item() == Approx(0.5f * 1.8f * 1.8f));
  REQUIRE(far.clipfrac == 1.f);
  far.loss.backward();
  REQUIRE(v.grad().item() == Approx(0.f));
  Tensor near = row({0.1f}, true);
  ValueLoss inside = clipped_value_loss(near, row({0.f}), row({1.f}), row({1}), 0.2f);
  REQUIRE(inside.loss.item() == Approx(0.5f * 0.81f));
  inside.loss.backward();
  REQUIRE(near.grad().item() == Approx(-0.9f));
  REQUIRE(inside.clipfrac == 0.f);
}

TEST_CASE("the adaptive KL controller moves the coefficient by at most 20% per horizon", "[ppo]") {
  KLController fixed(0.1f);
  fixed.update(100.f, 1000);
  REQUIRE(fixed.value() == 0.1f);
  KLController adaptive(0.2f, 6.f, 10000.f);
  adaptive.update(12.f, 256);
  REQUIRE(adaptive.value() == Approx(0.2f * (1 + 0.2f * 256 / 10000)));
  adaptive.update(3.f, 256);  // kl / target - 1 = -0.5, clipped to -0.2
  REQUIRE(adaptive.value() == Approx(0.2f * (1 + 0.2f * 256 / 10000) * (1 - 0.2f * 256 / 10000)));
}

TEST_CASE("PPO maths rejects mismatched shapes by name", "[ppo]") {
  REQUIRE_THROWS_WITH(gae(row({1, 2}), row({1}), row({1, 1}), 1.f, 1.f),
                      Catch::Contains("gae: rewards is (1,2) but values is (1,1)"));
  REQUIRE_THROWS_WITH(clipped_policy_loss(row({0}), row({0}), row({0}), row({1}), 0.f),
                      Catch::Contains("clip_range must be > 0"));
}
