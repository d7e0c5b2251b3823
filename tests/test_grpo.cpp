// GRPO arithmetic: group advantages and every loss normalisation against hand-computed values on
// sequences of different lengths (so each one's length bias is what its definition says),
// gradient accumulation, clipping, the k3 KL term, finite differences, and TRL's own
// computation on the same log-probs and rewards (tests/reference/grpo_loss.json, made by
// tests/reference/make_pref_fixtures.py).
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/ops/ops.h"
#include "rl/trainers/grpo_math.h"
#include "support/gradcheck.h"

using namespace tiller;
using namespace tiller::rl;

namespace {

Tensor matrix(std::vector<float> v, int64_t rows, bool grad = false) {
  int64_t cols = static_cast<int64_t>(v.size()) / rows;
  return Tensor::from_vector(v, {rows, cols}, TensorOptions{}.grad(grad));
}

Tensor vec(std::vector<float> v) {
  int64_t n = static_cast<int64_t>(v.size());
  return Tensor::from_vector(v, {n});
}

GrpoLossConfig loss_config(GrpoLossType type, int64_t max_completion_length = 8) {
  GrpoLossConfig c;
  c.loss_type = type;
  c.max_completion_length = max_completion_length;
  return c;
}

}  // namespace

TEST_CASE("group advantages: (r - group mean) / (std + 1e-4) for group, batch and none", "[grpo]") {
  std::vector<float> rewards = {1, 0, 0, 1, 2, 2, 2, 2};
  double group_std = std::sqrt(1.0 / 3.0);  // unbiased std of {1, 0, 0, 1}
  GroupAdvantages g = group_advantages(rewards, 4, ScaleRewards::group);
  REQUIRE(g.advantages[0] == Approx(0.5 / (group_std + 1e-4)));
  REQUIRE(g.advantages[1] == Approx(-0.5 / (group_std + 1e-4)));
  REQUIRE(g.advantages[4] == 0.f);  // a group with one reward has nothing to learn from
  REQUIRE(g.reward == Approx(1.25));
  REQUIRE(g.frac_reward_zero_std == Approx(0.5));
  REQUIRE(g.reward_std == Approx(std::sqrt(5.5 / 7.0)));  // TRL logs the batch's std

  double batch_std = std::sqrt(5.5 / 7.0);  // unbiased std of all eight
  GroupAdvantages b = group_advantages(rewards, 4, ScaleRewards::batch);
  REQUIRE(b.advantages[0] == Approx(0.5 / (batch_std + 1e-4)));
  REQUIRE(b.advantages[4] == 0.f);  // centred on the group's mean, not the batch's
  REQUIRE(b.reward_std == Approx(batch_std));
  REQUIRE(b.frac_reward_zero_std == 0.0);

  GroupAdvantages n = group_advantages(rewards, 4, ScaleRewards::none);
  REQUIRE(n.advantages[0] == Approx(0.5));
  REQUIRE(n.advantages[2] == Approx(-0.5));
  REQUIRE(n.reward_std == Approx(batch_std));
  REQUIRE(n.frac_reward_zero_std == Approx(0.5));  // zero std is judged per group, as TRL does

  REQUIRE_THROWS_WITH(group_advantages(rewards, 3, ScaleRewards::group),
                      Catch::Contains("not a whole number of groups of 3"));
  REQUIRE_THROWS_WITH(group_advantages(rewards, 1, ScaleRewards::group),
                      Catch::Contains("num_generations must be >= 2"));
}

TEST_CASE("weighted rewards sum the reward functions times their weights", "[grpo]") {
  auto total = weighted_rewards({{1, 0, 2}, {0.5f, 1, 0}}, {1.f, -2.f});
  REQUIRE(total == std::vector<float>{0.f, -2.f, 2.f});
  REQUIRE_THROWS_WITH(weighted_rewards({{1, 0}, {1}}, {1.f, 1.f}),
                      Catch::Contains("reward function 1 gave 1 rewards"));
  REQUIRE_THROWS_WITH(weighted_rewards({{1, 0}}, {1.f, 1.f}),
                      Catch::Contains("1 reward functions but 2 reward weights"));
  REQUIRE_THROWS_WITH(weighted_rewards({{1, NAN}}, {1.f}), Catch::Contains("non-finite"));
}

// Two completions: 4 tokens with A = +1 and 1 token with A = -2, ratio 1 (first update).
TEST_CASE("each loss type normalises as defined: its length bias shows in the gradients",
          "[grpo]") {
  Tensor mask = matrix({1, 1, 1, 1, 1, 0, 0, 0}, 2);
  auto run = [&](GrpoLossType type, int64_t tokens_in_batch) {
    Tensor logp = matrix(std::vector<float>(8, 0.f), 2, true);
    GrpoLossInputs in;
    in.logp = logp;
    in.advantages = vec({1.f, -2.f});
    in.mask = mask;
    in.tokens_in_batch = tokens_in_batch;
    GrpoLoss l = grpo_loss(in, loss_config(type));
    l.loss.backward();
    return std::make_pair(static_cast<double>(l.loss.item()), logp.grad().to_vector());
  };
  // grpo: per-sequence means (-1 and 2), then their mean; a long sequence's tokens weigh less.
  auto [grpo, g_grpo] = run(GrpoLossType::grpo, 0);
  REQUIRE(grpo == Approx(0.5));
  REQUIRE(g_grpo[0] == Approx(-1.0 / 4 / 2));
  REQUIRE(g_grpo[4] == Approx(2.0 / 1 / 2));
  REQUIRE(g_grpo[5] == 0.f);
  // bnpo: token mean over the 5 tokens; every token weighs 1/5.
  auto [bnpo, g_bnpo] = run(GrpoLossType::bnpo, 0);
  REQUIRE(bnpo == Approx(-2.0 / 5));
  REQUIRE(g_bnpo[0] == Approx(-1.0 / 5));
  REQUIRE(g_bnpo[4] == Approx(2.0 / 5));
  // dr_grpo: sum / (B * max_completion_length) = sum / 16, independent of the lengths.
  auto [dr, g_dr] = run(GrpoLossType::dr_grpo, 0);
  REQUIRE(dr == Approx(-2.0 / 16));
  REQUIRE(g_dr[0] == Approx(-1.0 / 16));
  // dapo: sum / tokens of the whole accumulated batch (here the micro-batch is half of it).
  auto [dapo, g_dapo] = run(GrpoLossType::dapo, 10);
  REQUIRE(dapo == Approx(-2.0 / 10));
  REQUIRE(g_dapo[4] == Approx(2.0 / 10));
}

TEST_CASE("gradient accumulation over micro-batches equals one batch for grpo, dr_grpo and dapo",
          "[grpo]") {
  // Four completions of lengths 4, 1, 2, 3; split into micro-batches {0, 1} (5 tokens) and {2, 3}
  // (5 tokens would hide bnpo's difference, so lengths give 5 and 5? no: 4+1 = 5, 2+3 = 5) ->
  // use lengths 4, 1, 1, 3 so the halves hold 5 and 4 tokens.
  std::vector<float> mask_values = {1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0};
  std::vector<float> old_values = {0.1f,  -0.2f, 0.3f, 0.f, -0.1f, 0,     0,    0,
                                   0.25f, 0,     0,    0,   -0.3f, 0.05f, 0.1f, 0};
  std::vector<float> logp_values = {-0.5f, -1.f, -0.7f, -2.f, -0.3f, 0,     0,     0,
                                    -1.2f, 0,    0,     0,    -0.4f, -0.9f, -0.6f, 0};
  std::vector<float> adv = {0.7f, -1.1f, 0.4f, -0.2f};
  int64_t total_tokens = 9;
  for (GrpoLossType type :
       {GrpoLossType::grpo, GrpoLossType::bnpo, GrpoLossType::dr_grpo, GrpoLossType::dapo}) {
    INFO(grpo_loss_type_name(type));
    GrpoLossConfig config = loss_config(type, 4);
    config.beta = 0.05f;
    // One batch.
    Tensor whole = matrix(logp_values, 4, true);
    GrpoLossInputs in;
    in.logp = whole;
    in.old_logp = matrix(old_values, 4);
    in.ref_logp = matrix(old_values, 4);
    in.advantages = vec(adv);
    in.mask = matrix(mask_values, 4);
    in.tokens_in_batch = total_tokens;
    grpo_loss(in, config).loss.backward();
    std::vector<float> one_batch = whole.grad().to_vector();
    // Two micro-batches of two rows each, gradients summed into one leaf.
    Tensor leaf = matrix(logp_values, 4, true);
    for (int64_t half = 0; half < 2; ++half) {
      GrpoLossInputs part;
      part.logp = slice(leaf, 0, 2 * half, 2 * half + 2);
      part.old_logp = slice(in.old_logp, 0, 2 * half, 2 * half + 2);
      part.ref_logp = slice(in.ref_logp, 0, 2 * half, 2 * half + 2);
      part.advantages = slice(in.advantages, 0, 2 * half, 2 * half + 2);
      part.mask = slice(in.mask, 0, 2 * half, 2 * half + 2);
      part.accumulation_steps = 2;
      part.tokens_in_batch = total_tokens;
      grpo_loss(part, config).loss.backward();
    }
    std::vector<float> accumulated = leaf.grad().to_vector();
    if (type == GrpoLossType::bnpo) {
      // Token mean over the local batch: the 5-token half and the 4-token half are averaged
      // with equal weight, so a token of the first half weighs 1/(2*5), not 1/9.
      REQUIRE(accumulated[0] == Approx(one_batch[0] * 9.0 / 10.0));
      REQUIRE(accumulated[8] == Approx(one_batch[8] * 9.0 / 8.0));
    } else {
      for (size_t i = 0; i < accumulated.size(); ++i)
        REQUIRE(accumulated[i] == Approx(one_batch[i]).margin(1e-7));
    }
  }
}

TEST_CASE("the clipped surrogate stops the gradient outside [1 - ε_low, 1 + ε_high] and counts it",
          "[grpo]") {
  // ratios 1.5 (A = +1: high clip), 0.5 (A = -1: low clip), 1.5 (A = -1: unclipped, the
  // pessimistic term), 1.25 (A = +1: clipped at ε_high 0.2, free at 0.28).
  std::vector<float> logp_values = {std::log(1.5f), std::log(0.5f), std::log(1.5f),
                                    std::log(1.25f)};
  auto run = [&](float epsilon_high) {
    Tensor logp = matrix(logp_values, 4, true);
    GrpoLossInputs in;
    in.logp = logp;
    in.old_logp = matrix({0, 0, 0, 0}, 4);
    in.advantages = vec({1.f, -1.f, -1.f, 1.f});
    in.mask = matrix({1, 1, 1, 1}, 4);
    GrpoLossConfig config = loss_config(GrpoLossType::bnpo);
    config.epsilon_high = epsilon_high;
    GrpoLoss l = grpo_loss(in, config);
    l.loss.backward();
    return std::make_pair(l, logp.grad().to_vector());
  };
  auto [symmetric, g] = run(0.f);
  // loss = -(1.2 - 0.8 - 1.5 + 1.2) / 4
  REQUIRE(symmetric.loss.item() == Approx(-(1.2 - 0.8 - 1.5 + 1.2) / 4));
  REQUIRE(g[0] == 0.f);
  REQUIRE(g[1] == 0.f);
  REQUIRE(g[2] == Approx(1.5 / 4));  // d(-ρA)/dlogp = -A ρ
  REQUIRE(g[3] == 0.f);
  REQUIRE(symmetric.clip_low == Approx(0.25));
  REQUIRE(symmetric.clip_high == Approx(0.5));
  REQUIRE(symmetric.clip_region == Approx(0.75));
  auto [dapo_high, g_high] = run(0.28f);
  REQUIRE(g_high[3] == Approx(-1.25 / 4));
  REQUIRE(dapo_high.clip_high == Approx(0.25));
}

TEST_CASE("the k3 KL term adds β (exp(ref - logp) - (ref - logp) - 1) per token", "[grpo]") {
  Tensor logp = matrix({std::log(0.5f), std::log(0.2f)}, 1, true);
  GrpoLossInputs in;
  in.logp = logp;
  in.ref_logp = matrix({std::log(0.25f), std::log(0.2f)}, 1);
  in.advantages = vec({0.f});
  in.mask = matrix({1, 1}, 1);
  GrpoLossConfig config = loss_config(GrpoLossType::bnpo);
  config.beta = 0.1f;
  GrpoLoss l = grpo_loss(in, config);
  double k3 = 0.5 + std::log(2.0) - 1.0;  // r = 0.5: (r - 1) - log r
  REQUIRE(l.kl == Approx(k3 / 2));
  REQUIRE(l.loss.item() == Approx(0.1 * k3 / 2));
  l.loss.backward();
  REQUIRE(logp.grad().to_vector()[0] == Approx(0.1 * (1 - 0.5) / 2));
  REQUIRE(logp.grad().to_vector()[1] == Approx(0.0).margin(1e-7));

  in.ref_logp = Tensor();
  REQUIRE_THROWS_WITH(grpo_loss(in, config), Catch::Contains("ref_logp is undefined"));
  config.beta = 0.f;  // no reference needed
  REQUIRE(grpo_loss(in, config).kl == 0.0);
}

// logp = old + a log-ratio chosen at least 0.05 away from the clip edges (log 0.8, log 1.2,
// log 1.28), so central differences never straddle a kink of the clipped objective.
Tensor ratios_off_the_clip_edges(const Tensor& old) {
  const std::vector<float> offsets = {0.05f, -0.1f, 0.4f,   -0.5f, 0.1f,  -0.05f, 0.6f, -0.35f,
                                      0.f,   0.32f, -0.15f, 0.12f, -0.6f, 0.45f,  0.08f};
  std::vector<float> values = old.to_vector();
  for (size_t i = 0; i < values.size(); ++i) values[i] += offsets[i % offsets.size()];
  return Tensor::from_vector(values, old.shape(), TensorOptions{}.grad(true));
}

TEST_CASE("GRPO loss gradients match finite differences for every loss type", "[grpo]") {
  Tensor old = tiller::testing::random_input({3, 5}, 21, 0.1f, false);
  Tensor ref = tiller::testing::random_input({3, 5}, 22, 0.3f, false);
  Tensor mask = matrix({1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0}, 3);
  Tensor adv = vec({0.8f, -1.3f, 0.4f});
  for (GrpoLossType type :
       {GrpoLossType::grpo, GrpoLossType::bnpo, GrpoLossType::dr_grpo, GrpoLossType::dapo}) {
    INFO(grpo_loss_type_name(type));
    GrpoLossConfig config = loss_config(type, 6);
    config.beta = 0.2f;
    config.epsilon_high = 0.28f;
    REQUIRE_GRADCHECK(
        [&](const std::vector<Tensor>& x) {
          GrpoLossInputs in;
          in.logp = x[0];
          in.old_logp = old;
          in.ref_logp = ref;
          in.advantages = adv;
          in.mask = mask;
          in.tokens_in_batch = 20;
          return grpo_loss(in, config).loss;
        },
        {ratios_off_the_clip_edges(old)});
  }
}

TEST_CASE("GRPO configuration errors name the field", "[grpo]") {
  REQUIRE_THROWS_WITH(parse_grpo_loss_type("ppo"), Catch::Contains("unknown loss_type 'ppo'"));
  REQUIRE_THROWS_WITH(parse_scale_rewards("global"),
                      Catch::Contains("unknown scale_rewards 'global'"));
  GrpoLossInputs in;
  in.logp = matrix({0, 0}, 1, true);
  in.advantages = vec({1.f});
  in.mask = matrix({1, 1}, 1);
  REQUIRE_THROWS_WITH(grpo_loss(in, loss_config(GrpoLossType::dapo)),
                      Catch::Contains("dapo needs tokens_in_batch"));
  GrpoLossConfig bad = loss_config(GrpoLossType::grpo);
  bad.epsilon = 0.f;
  REQUIRE_THROWS_WITH(grpo_loss(in, bad), Catch::Contains("epsilon must be in (0, 1)"));
}

namespace {

Tensor from_json_rows(const nlohmann::json& rows, int64_t first, int64_t last) {
  std::vector<float> values;
  int64_t columns = 0;
  for (int64_t r = first; r < last; ++r) {
    auto row = rows.at(r).get<std::vector<float>>();
    columns = static_cast<int64_t>(row.size());
    values.insert(values.end(), row.begin(), row.end());
  }
  return Tensor::from_vector(values, {last - first, columns});
}

nlohmann::json load_grpo_fixture() {
  auto path = std::filesystem::path(TILLER_TEST_FIXTURES) / "grpo_loss.json";
  INFO("fixture " << path.string() << " (regenerate: tests/reference/make_pref_fixtures.py)");
  std::ifstream in(path);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

}  // namespace

TEST_CASE("group advantages and reward statistics match TRL's", "[grpo]") {
  nlohmann::json f = load_grpo_fixture();
  auto per_function = f.at("rewards_per_func").get<std::vector<std::vector<float>>>();
  auto weights = f.at("weights").get<std::vector<float>>();
  std::vector<float> rewards = weighted_rewards(per_function, weights);
  for (const char* scale : {"group", "batch", "none"}) {
    INFO("scale_rewards " << scale);
    const auto& expected = f.at("advantages").at(scale);
    GroupAdvantages a =
        group_advantages(rewards, f.at("num_generations"), parse_scale_rewards(scale));
    auto values = expected.at("values").get<std::vector<double>>();
    REQUIRE(values.size() == a.advantages.size());
    for (size_t i = 0; i < values.size(); ++i)
      REQUIRE(a.advantages[i] == Approx(values[i]).epsilon(1e-5));
    REQUIRE(a.reward == Approx(expected.at("reward").get<double>()));
    REQUIRE(a.reward_std == Approx(expected.at("reward_std").get<double>()));
    REQUIRE(a.frac_reward_zero_std == Approx(expected.at("frac_reward_zero_std").get<double>()));
  }
}

TEST_CASE("every GRPO loss type matches TRL's _compute_loss: loss, gradient, kl and clip ratios",
          "[grpo]") {
  nlohmann::json f = load_grpo_fixture();
  auto advantages = f.at("advantages").at("group").at("values").get<std::vector<float>>();
  size_t cases = 0;
  for (const auto& c : f.at("losses")) {
    INFO("TRL " << f.at("trl_version").get<std::string>() << " loss_type "
                << c.at("loss_type").get<std::string>() << " beta " << c.at("beta").get<double>()
                << " rows " << c.at("rows").dump());
    int64_t first = c.at("rows").at(0), last = c.at("rows").at(1);
    Tensor logp = from_json_rows(f.at("logp"), first, last);
    logp.requires_grad_(true);
    GrpoLossInputs in;
    in.logp = logp;
    in.old_logp = from_json_rows(f.at("old_logp"), first, last);
    in.ref_logp = from_json_rows(f.at("ref_logp"), first, last);
    in.mask = from_json_rows(f.at("mask"), first, last);
    in.advantages = vec(std::vector<float>(advantages.begin() + first, advantages.begin() + last));
    in.accumulation_steps = c.at("accumulation_steps");
    in.tokens_in_batch = static_cast<int64_t>(c.at("tokens_in_batch").get<double>());
    GrpoLossConfig config;
    config.loss_type = parse_grpo_loss_type(c.at("loss_type").get<std::string>());
    config.beta = c.at("beta");
    config.epsilon = c.at("epsilon");
    config.epsilon_high = c.at("epsilon_high");
    config.max_completion_length = c.at("max_completion_length");
    GrpoLoss l = grpo_loss(in, config);
    REQUIRE(l.loss.item() == Approx(c.at("loss").get<double>()).epsilon(1e-5).margin(1e-7));
    l.loss.backward();
    Tensor expected_grad = from_json_rows(c.at("grad"), 0, last - first);
    REQUIRE_CLOSE(logp.grad(), expected_grad, 1e-5f, 1e-7f);
    const auto& m = c.at("metrics");
    REQUIRE(l.clip_low == Approx(m.at("clip_ratio/low_mean").get<double>()));
    REQUIRE(l.clip_high == Approx(m.at("clip_ratio/high_mean").get<double>()));
    REQUIRE(l.clip_region == Approx(m.at("clip_ratio/region_mean").get<double>()));
    if (config.beta > 0.f) REQUIRE(l.kl == Approx(m.at("kl").get<double>()).epsilon(1e-5));
    ++cases;
  }
  REQUIRE(cases == 16);
}
