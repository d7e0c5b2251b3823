// DPO arithmetic: each loss against hand-computed values, gradients against finite differences,
// and the loss and parameter gradients of a tiny GPT-2 against TRL's own DpoTrainer on the same
// weights and pairs (tests/reference/dpo_tiny, made by tests/reference/make_pref_fixtures.py).
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/io/safetensors.h"
#include "core/models/model.h"
#include "core/ops/ops.h"
#include "rl/trainers/completion_batch.h"
#include "rl/trainers/dpo_loss.h"
#include "support/gradcheck.h"

using namespace tiller;
using namespace tiller::rl;

namespace {

Tensor vec(std::vector<float> v, bool grad = false) {
  int64_t n = static_cast<int64_t>(v.size());
  return Tensor::from_vector(v, {n}, TensorOptions{}.grad(grad));
}

double log_sigmoid(double x) {
  return -std::log1p(std::exp(-x));
}

// Two pairs: z = (c - r) - (ref_c - ref_r) = (-1 - -3) - (-2 - -2.5) = 1.5 and
// (-4 - -2) - (-3 - -3) = -2.
struct Pairs {
  Tensor chosen = vec({-1.f, -4.f}, true);
  Tensor rejected = vec({-3.f, -2.f}, true);
  Tensor ref_chosen = vec({-2.f, -3.f});
  Tensor ref_rejected = vec({-2.5f, -3.f});
  std::vector<double> z = {1.5, -2.0};
  DpoInputs inputs() const {
    DpoInputs in;
    in.chosen_logps = chosen;
    in.rejected_logps = rejected;
    in.ref_chosen_logps = ref_chosen;
    in.ref_rejected_logps = ref_rejected;
    in.chosen_lengths = vec({2.f, 4.f});
    in.rejected_lengths = vec({1.f, 2.f});
    return in;
  }
};

DpoLossConfig config_of(DpoLossType type, float beta, float smoothing = 0.f) {
  DpoLossConfig c;
  c.loss_type = type;
  c.beta = beta;
  c.label_smoothing = smoothing;
  return c;
}

}  // namespace

TEST_CASE("DPO sigmoid loss is -log σ(β z) averaged over pairs", "[dpo]") {
  Pairs p;
  DpoLoss plain = dpo_loss(p.inputs(), config_of(DpoLossType::sigmoid, 0.5f));
  double expected = -(log_sigmoid(0.75) + log_sigmoid(-1.0)) / 2;
  REQUIRE(plain.loss.item() == Approx(expected).epsilon(1e-6));
  auto per_pair = plain.losses.to_vector();
  REQUIRE(per_pair[0] == Approx(-log_sigmoid(0.75)).epsilon(1e-6));
  // d loss / d logp_c = -β σ(-β z) / B
  plain.loss.backward();
  REQUIRE(p.chosen.grad().to_vector()[0] == Approx(-0.5 / (1 + std::exp(0.75)) / 2));
  REQUIRE(p.rejected.grad().to_vector()[1] == Approx(0.5 / (1 + std::exp(-1.0)) / 2));
}

TEST_CASE("DPO robust, hinge and ipo losses match their formulas", "[dpo]") {
  Pairs p;
  DpoLoss robust = dpo_loss(p.inputs(), config_of(DpoLossType::robust, 0.5f, 0.2f));
  double r0 = (-0.8 * log_sigmoid(0.75) + 0.2 * log_sigmoid(-0.75)) / 0.6;
  double r1 = (-0.8 * log_sigmoid(-1.0) + 0.2 * log_sigmoid(1.0)) / 0.6;
  REQUIRE(robust.loss.item() == Approx((r0 + r1) / 2).epsilon(1e-6));

  // hinge: relu(1 - β z) = relu(1 - 0.75) = 0.25 and relu(1 + 1) = 2.
  DpoLoss hinge = dpo_loss(p.inputs(), config_of(DpoLossType::hinge, 0.5f));
  REQUIRE(hinge.loss.item() == Approx((0.25 + 2.0) / 2));
  // A pair past the margin (β z > 1) contributes nothing and gets no gradient.
  Tensor c = vec({5.f}, true);
  DpoInputs past;
  past.chosen_logps = c;
  past.rejected_logps = past.ref_chosen_logps = past.ref_rejected_logps = vec({0.f});
  DpoLoss saturated = dpo_loss(past, config_of(DpoLossType::hinge, 0.5f));
  REQUIRE(saturated.loss.item() == 0.f);
  saturated.loss.backward();
  REQUIRE(c.grad().to_vector()[0] == 0.f);

  // ipo on length-normalised log-ratios: s_c / n_c - s_r / n_r = 1/2 + 0.5/1 = 1 and
  // -1/4 - 1/2 = -0.75; with 1 / (2β) = 1 the losses are 0² and (-1.75)².
  DpoLoss ipo = dpo_loss(p.inputs(), config_of(DpoLossType::ipo, 0.5f));
  REQUIRE(ipo.loss.item() == Approx((0.0 + 1.75 * 1.75) / 2));
  // Its rewards are not length-normalised.
  REQUIRE(ipo.metrics.rewards_chosen == Approx(0.5 * (1.0 - 1.0) / 2).margin(1e-7));
  DpoInputs no_lengths = p.inputs();
  no_lengths.chosen_lengths = Tensor();
  REQUIRE_THROWS_WITH(dpo_loss(no_lengths, config_of(DpoLossType::ipo, 0.5f)),
                      Catch::Contains("chosen_lengths (required by ipo)"));
}

TEST_CASE("DPO metrics: β-scaled rewards, accuracies, margins and policy log-probs", "[dpo]") {
  Pairs p;
  DpoMetrics m = dpo_loss(p.inputs(), config_of(DpoLossType::sigmoid, 0.1f)).metrics;
  // rewards chosen: 0.1 * (1, -1); rejected: 0.1 * (-0.5, 1).
  REQUIRE(m.rewards_chosen == Approx(0.0).margin(1e-7));
  REQUIRE(m.rewards_rejected == Approx(0.025));
  REQUIRE(m.rewards_accuracies == Approx(0.5));
  REQUIRE(m.rewards_margins == Approx(-0.025));
  REQUIRE(m.logps_chosen == Approx(-2.5));
  REQUIRE(m.logps_rejected == Approx(-2.5));
  REQUIRE(m.pairs == 2);

  DpoMetrics a = m, b = m;
  a.loss = 1.0;
  a.pairs = 1;
  b.loss = 4.0;
  b.pairs = 3;
  REQUIRE(combine(a, b).loss == Approx(3.25));
  REQUIRE(combine(a, b).pairs == 4);
}

TEST_CASE("DPO loss gradients match finite differences for every loss type", "[dpo]") {
  for (DpoLossType type :
       {DpoLossType::sigmoid, DpoLossType::robust, DpoLossType::hinge, DpoLossType::ipo}) {
    INFO(dpo_loss_type_name(type));
    float smoothing = type == DpoLossType::robust ? 0.15f : 0.f;
    DpoLossConfig config = config_of(type, 0.3f, smoothing);
    Tensor ref_c = tiller::testing::random_input({5}, 11, 1.f, false);
    Tensor ref_r = tiller::testing::random_input({5}, 12, 1.f, false);
    REQUIRE_GRADCHECK(
        [&](const std::vector<Tensor>& x) {
          DpoInputs in;
          in.chosen_logps = x[0];
          in.rejected_logps = x[1];
          in.ref_chosen_logps = ref_c;
          in.ref_rejected_logps = ref_r;
          in.chosen_lengths = vec({1, 2, 3, 4, 5});
          in.rejected_lengths = vec({3, 1, 4, 1, 5});
          return dpo_loss(in, config).loss;
        },
        {tiller::testing::random_input({5}, 1, 2.f), tiller::testing::random_input({5}, 2, 2.f)});
  }
}

TEST_CASE("sequence log-probs sum over completion tokens only", "[dpo]") {
  Tensor token_logps =
      Tensor::from_vector({-1, -2, -3, -9, -4, -5, -9, -9}, {2, 4}, TensorOptions{}.grad(true));
  Tensor mask = Tensor::from_vector({1, 1, 1, 0, 1, 1, 0, 0}, {2, 4});
  auto sums = sequence_logps(token_logps, mask).to_vector();
  REQUIRE(sums[0] == -6.f);
  REQUIRE(sums[1] == -9.f);
  sum(sequence_logps(token_logps, mask)).backward();
  auto g = token_logps.grad().to_vector();
  REQUIRE(g[0] == 1.f);
  REQUIRE(g[3] == 0.f);
  REQUIRE(g[7] == 0.f);
}

TEST_CASE("DPO configuration errors name the field", "[dpo]") {
  REQUIRE_THROWS_WITH(parse_dpo_loss_type("kto"), Catch::Contains("unknown loss_type 'kto'"));
  Pairs p;
  REQUIRE_THROWS_WITH(dpo_loss(p.inputs(), config_of(DpoLossType::sigmoid, 0.f)),
                      Catch::Contains("beta must be > 0"));
  REQUIRE_THROWS_WITH(dpo_loss(p.inputs(), config_of(DpoLossType::sigmoid, 0.1f, 0.1f)),
                      Catch::Contains("label_smoothing applies to the robust loss only"));
  REQUIRE_THROWS_WITH(dpo_loss(p.inputs(), config_of(DpoLossType::robust, 0.1f, 0.5f)),
                      Catch::Contains("label_smoothing must be in [0, 0.5)"));
  DpoInputs short_rejected = p.inputs();
  short_rejected.rejected_logps = vec({1.f});
  REQUIRE_THROWS_WITH(dpo_loss(short_rejected, config_of(DpoLossType::sigmoid, 0.1f)),
                      Catch::Contains("rejected_logps must be (2)"));
}

namespace {

const std::filesystem::path kDpoFixture = std::filesystem::path(TILLER_TEST_FIXTURES) / "dpo_tiny";

struct TrlDpoFixture {
  nlohmann::json cases;
  std::vector<std::vector<int32_t>> prompts, chosen, rejected;
};

TrlDpoFixture load_trl_dpo_fixture() {
  INFO("fixture " << kDpoFixture.string()
                  << " (regenerate: tests/reference/make_pref_fixtures.py)");
  std::ifstream in(kDpoFixture / "cases.json");
  REQUIRE(in.good());
  TrlDpoFixture f;
  f.cases = nlohmann::json::parse(in);
  for (const auto& pair : f.cases.at("pairs")) {
    f.prompts.push_back(pair.at("prompt").get<std::vector<int32_t>>());
    f.chosen.push_back(pair.at("chosen").get<std::vector<int32_t>>());
    f.rejected.push_back(pair.at("rejected").get<std::vector<int32_t>>());
  }
  return f;
}

// Sequence log-probs of prompt + chosen (rows [0, B)) and prompt + rejected (rows [B, 2B)).
struct PairLogps {
  Tensor chosen, rejected, chosen_lengths, rejected_lengths;
};

PairLogps pair_logps(Transformer& model, const TrlDpoFixture& f, PaddingSide side) {
  std::vector<std::vector<int32_t>> prompts = f.prompts, completions = f.chosen;
  prompts.insert(prompts.end(), f.prompts.begin(), f.prompts.end());
  completions.insert(completions.end(), f.rejected.begin(), f.rejected.end());
  CompletionBatch batch = make_completion_batch(prompts, completions, side, Device::cpu());
  Tensor sums = sequence_logps(completion_token_logps(model, batch), batch.mask);  // (2B)
  const int64_t B = static_cast<int64_t>(f.prompts.size());
  return {slice(sums, 0, 0, B), slice(sums, 0, B, 2 * B), slice(batch.lengths, 0, 0, B),
          slice(batch.lengths, 0, B, 2 * B)};
}

double max_relative_error(const Tensor& actual, const Tensor& expected) {
  auto a = actual.to_vector(), b = expected.to_vector();
  REQUIRE(a.size() == b.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return diff / std::max(scale, 1e-30);
}

}  // namespace

TEST_CASE("DPO loss, metrics and gradients of a tiny GPT-2 match TRL's DPOTrainer", "[dpo]") {
  TrlDpoFixture f = load_trl_dpo_fixture();
  safetensors::Contents grads = safetensors::load(kDpoFixture / "grads.safetensors");
  Transformer reference = Transformer::from_pretrained(kDpoFixture / "reference");
  PairLogps ref;
  {
    NoGradGuard no_grad;
    ref = pair_logps(reference, f, PaddingSide::right);
  }
  size_t grads_compared = 0;
  for (const auto& c : f.cases.at("cases")) {
    std::string loss_type = c.at("loss_type");
    INFO("TRL " << f.cases.at("trl_version").get<std::string>() << " loss_type " << loss_type);
    Transformer policy = Transformer::from_pretrained(kDpoFixture / "policy");
    PairLogps logps = pair_logps(policy, f, PaddingSide::right);
    DpoInputs in{logps.chosen, logps.rejected,       ref.chosen,
                 ref.rejected, logps.chosen_lengths, logps.rejected_lengths};
    DpoLossConfig config;
    config.loss_type = parse_dpo_loss_type(loss_type);
    config.beta = c.at("beta");
    config.label_smoothing = c.at("label_smoothing");
    DpoLoss loss = dpo_loss(in, config);
    // TRL ran the model in float64 with f32 weights; tiller computes in f32.
    REQUIRE(loss.loss.item() == Approx(c.at("loss").get<double>()).epsilon(2e-5));
    const auto& m = c.at("metrics");
    REQUIRE(loss.metrics.rewards_chosen ==
            Approx(m.at("rewards/chosen").get<double>()).epsilon(1e-4));
    REQUIRE(loss.metrics.rewards_rejected ==
            Approx(m.at("rewards/rejected").get<double>()).epsilon(1e-4));
    REQUIRE(loss.metrics.rewards_margins ==
            Approx(m.at("rewards/margins").get<double>()).epsilon(1e-3));
    REQUIRE(loss.metrics.rewards_accuracies == Approx(m.at("rewards/accuracies").get<double>()));
    REQUIRE(loss.metrics.logps_chosen == Approx(m.at("logps/chosen").get<double>()).epsilon(1e-5));
    REQUIRE(loss.metrics.logps_rejected ==
            Approx(m.at("logps/rejected").get<double>()).epsilon(1e-5));
    loss.loss.backward();
    for (const NamedParameter& p : policy.parameters()) {
      auto it = grads.tensors.find(loss_type + ".grad." + p.name);
      if (it == grads.tensors.end()) continue;
      INFO(p.name);
      Tensor grad = p.tensor.grad();
      if (grad.size(0) != it->second.size(0)) grad = slice(grad, 0, 0, it->second.size(0));
      REQUIRE(max_relative_error(grad, it->second) < 1e-4);
      ++grads_compared;
    }
  }
  REQUIRE(grads_compared == grads.tensors.size());
}

TEST_CASE("left and right padding give the same DPO losses", "[dpo]") {
  TrlDpoFixture f = load_trl_dpo_fixture();
  Transformer policy = Transformer::from_pretrained(kDpoFixture / "policy");
  Transformer reference = Transformer::from_pretrained(kDpoFixture / "reference");
  NoGradGuard no_grad;
  for (DpoLossType type : {DpoLossType::sigmoid, DpoLossType::ipo}) {
    DpoLossConfig config;
    config.loss_type = type;
    std::vector<float> losses;
    for (PaddingSide side : {PaddingSide::left, PaddingSide::right}) {
      PairLogps p = pair_logps(policy, f, side), r = pair_logps(reference, f, side);
      losses.push_back(dpo_loss({p.chosen, p.rejected, r.chosen, r.rejected, p.chosen_lengths,
                                 p.rejected_lengths},
                                config)
                           .loss.item());
    }
    REQUIRE(losses[0] == Approx(losses[1]).epsilon(1e-6));
  }
}
