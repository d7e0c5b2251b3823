// PPO trainer: it learns a verifiable reward while staying near the reference, its recomputed
// log-probs are the sampler's, rollouts end at the end token and unfinished ones are penalised,
// the critic and frozen copies are what they claim, and a run writes metrics and a policy.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>

#include "core/ops/ops.h"
#include "rl/trainers/ppo.h"

using namespace tiller;
using namespace tiller::rl;

namespace {

constexpr int64_t kVocab = 16;
constexpr int32_t kEndToken = 1;
constexpr int32_t kTargetToken = 5;

Transformer tiny_policy(uint64_t seed = 3) {
  return Transformer(ModelConfig::gpt2(kVocab, 2, 2, 32, 32), seed);
}

// Prompts of 1 to 4 ordinary tokens (ids 2..15), so batches need padding.
std::vector<std::vector<int32_t>> tiny_prompts(size_t count) {
  std::vector<std::vector<int32_t>> prompts;
  for (size_t i = 0; i < count; ++i) {
    std::vector<int32_t> prompt;
    for (size_t t = 0; t <= i % 4; ++t)
      prompt.push_back(static_cast<int32_t>(2 + (i * 7 + t * 3) % (kVocab - 2)));
    prompts.push_back(prompt);
  }
  return prompts;
}

float first_token_is_target(const std::vector<int32_t>&, const std::vector<int32_t>& response) {
  return !response.empty() && response.front() == kTargetToken ? 1.f : 0.f;
}

PpoConfig small_config() {
  return PpoConfig{.rollout_batch_size = 16,
                   .minibatch_size = 8,
                   .micro_batch_size = 4,
                   .ppo_epochs = 2,
                   .max_new_tokens = 4,
                   .temperature = 1.f,
                   .end_token = kEndToken,
                   .log_every = 0,
                   .seed = 7};
}

}  // namespace

TEST_CASE(
    "PPO with a callable reward raises the mean reward while the KL to the reference "
    "stays bounded",
    "[ppo_trainer]") {
  auto run = [](float kl_coef, std::vector<double>& scores, std::vector<double>& kls) {
    PpoConfig config = small_config();
    config.iterations = 12;
    config.rollout_batch_size = 32;
    config.minibatch_size = 16;
    config.micro_batch_size = 8;
    config.ppo_epochs = 4;
    config.missing_end_penalty = 0.f;
    config.kl_coef = kl_coef;
    config.policy_optimizer.schedule.peak_lr = 3e-3f;
    config.value_optimizer.schedule.peak_lr = 3e-3f;
    PpoTrainer trainer(config, tiny_policy(), batch_reward(first_token_is_target),
                       tiny_prompts(24));
    for (int64_t i = 0; i < config.iterations; ++i) {
      Metrics metrics = trainer.train_iteration();
      scores.push_back(metrics.get("objective/raw_scores"));
      kls.push_back(metrics.get("objective/kl"));
    }
    REQUIRE(trainer.iteration() == config.iterations);
  };
  std::vector<double> scores, kls, free_scores, free_kls;
  run(0.05f, scores, kls);
  run(0.f, free_scores, free_kls);
  INFO("first score " << scores.front() << ", last score " << scores.back() << ", last KL "
                      << kls.back() << "; without the penalty: last KL " << free_kls.back());
  // A near-uniform policy over 16 tokens picks the target first about 1 time in 16.
  REQUIRE(scores.front() < 0.25);
  REQUIRE((scores[scores.size() - 1] + scores[scores.size() - 2]) / 2 > 0.6);
  // Putting all of the first token's mass on the target costs log 16 ~ 2.8 nats. The penalty's
  // effect is what is asserted: the same run without it drifts further from the reference (the
  // later tokens carry no reward, so only the penalty holds them back). An absolute bound would
  // depend on the summation order, i.e. on the thread count (4.1-4.2 nats at one thread).
  REQUIRE(kls.back() > 0.0);
  REQUIRE(kls.back() < free_kls.back());
}

TEST_CASE(
    "the trainer's recomputed log-probs equal the sampler's at the sampling temperature, "
    "so the first PPO ratio is 1",
    "[ppo_trainer]") {
  PpoConfig config = small_config();
  config.temperature = 0.7f;
  config.max_new_tokens = 6;
  Transformer policy = tiny_policy(11);
  {
    // Larger weights make the distributions peaked, so a temperature mismatch would show.
    NoGradGuard no_grad;
    for (const auto& p : policy.parameters())
      if (p.tensor.dim() == 2) p.tensor.copy_(scale(p.tensor, 5.f));
  }
  PpoTrainer trainer(config, std::move(policy), batch_reward(first_token_is_target),
                     tiny_prompts(16));
  Rollout rollout = trainer.collect_rollout();

  std::vector<float> mask = rollout.mask.to_vector();
  std::vector<float> sampled = rollout.sampler_logprobs.to_vector();
  std::vector<float> recomputed = rollout.logprobs.to_vector();
  std::vector<float> reference = rollout.ref_logprobs.to_vector();
  std::vector<float> kl = rollout.kl.to_vector();
  int64_t tokens = 0;
  for (size_t i = 0; i < mask.size(); ++i) {
    if (mask[i] == 0.f) continue;
    ++tokens;
    REQUIRE(std::exp(recomputed[i] - sampled[i]) == Approx(1.0).margin(1e-4));
    REQUIRE(reference[i] == recomputed[i]);  // the reference is an exact copy before any update
    REQUIRE(kl[i] == 0.f);
  }
  REQUIRE(tokens >= static_cast<int64_t>(rollout.prompts.size()));
  REQUIRE(rollout.prompt_columns == 4);  // prompts of 1..4 tokens were left-padded together
}

TEST_CASE(
    "rollouts stop right after the end token and a response that never ends loses the "
    "missing-end penalty",
    "[ppo_trainer]") {
  PpoConfig config = small_config();
  config.rollout_batch_size = 32;
  config.max_new_tokens = 5;
  config.missing_end_penalty = 0.5f;
  auto constant = [](const std::vector<int32_t>&, const std::vector<int32_t>&) { return 2.f; };
  PpoTrainer trainer(config, tiny_policy(), batch_reward(constant), tiny_prompts(32));
  Rollout rollout = trainer.collect_rollout();

  int ended = 0, unfinished = 0;
  for (size_t b = 0; b < rollout.responses.size(); ++b) {
    const auto& response = rollout.responses[b];
    auto end = std::find(response.begin(), response.end(), kEndToken);
    REQUIRE(rollout.raw_scores[b] == 2.f);
    if (rollout.ended[b]) {
      ++ended;
      REQUIRE(end == response.end() - 1);  // the end token is kept, and nothing follows it
      REQUIRE(rollout.scores[b] == 2.f);
    } else {
      ++unfinished;
      REQUIRE(end == response.end());
      REQUIRE(static_cast<int64_t>(response.size()) == config.max_new_tokens);
      REQUIRE(rollout.scores[b] == 1.5f);
    }
  }
  // A near-uniform policy ends within 5 tokens with probability ~0.28: both kinds occur.
  REQUIRE(ended > 0);
  REQUIRE(unfinished > 0);
  // The mask covers exactly the response tokens, end token included.
  REQUIRE(sum(rollout.mask).item() ==
          Approx(static_cast<double>(
              std::accumulate(rollout.responses.begin(), rollout.responses.end(), size_t{0},
                              [](size_t total, const auto& r) { return total + r.size(); }))));
}

TEST_CASE(
    "the critic reads a scalar head at every token and copies share no weights with their "
    "source",
    "[ppo_trainer]") {
  Transformer backbone = tiny_policy();
  Tensor ids = Tensor::from_ints({3, 4, 5, 6, 7, 8}, {2, 3});
  NoGradGuard no_grad;

  ValueModel fresh = ValueModel::from_backbone(backbone);
  for (float v : fresh.values(ids).to_vector()) REQUIRE(v == 0.f);

  Generator gen(5);
  Tensor weight = Tensor::randn({1, 32}, gen);
  Tensor bias = Tensor::from_vector({0.25f}, {1});
  ValueModel critic(backbone, weight, bias);
  Tensor values = critic.values(ids);
  REQUIRE(values.shape() == Shape({2, 3}));
  std::vector<float> expected =
      add_scalar(sum(mul(backbone.hidden_states(ids), weight.reshape({1, 1, 32})), 2), 0.25f)
          .to_vector();
  std::vector<float> got = values.to_vector();
  for (size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == Approx(expected[i]).margin(1e-5));
  REQUIRE(critic.parameters().size() == backbone.parameters().size() + 2);

  Transformer copy = copy_transformer(backbone);
  std::vector<float> before = backbone.forward(ids).to_vector();
  REQUIRE(copy.forward(ids).to_vector() == before);
  for (const auto& p : copy.parameters()) p.tensor.fill_(0.f);
  critic.backbone().parameters().front().tensor.fill_(0.f);
  REQUIRE(backbone.forward(ids).to_vector() == before);
}

TEST_CASE("a PPO run writes one metrics line per iteration and a loadable policy",
          "[ppo_trainer]") {
  auto out = std::filesystem::temp_directory_path() / "tiller_test_ppo_run";
  std::filesystem::remove_all(out);
  PpoConfig config = small_config();
  config.iterations = 2;
  config.checkpoint_every = 1;
  config.output_dir = out.string();
  PpoTrainer trainer(config, tiny_policy(), batch_reward(first_token_is_target), tiny_prompts(8));
  Metrics last = trainer.train();

  for (const char* name :
       {"objective/kl", "objective/entropy", "objective/scores", "objective/rlhf_reward",
        "objective/non_score_reward", "policy/approxkl", "policy/clipfrac", "policy/entropy",
        "loss/policy", "loss/value", "val/clipfrac", "val/ratio", "val/mean", "response/length",
        "tokens_per_s/rollout", "tokens_per_s/train"})
    REQUIRE(std::isfinite(last.get(name)));
  std::ifstream metrics(out / "metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) {
    ++lines;
    REQUIRE(line.find("\"stage\": \"ppo\"") != std::string::npos);
    REQUIRE(line.find("\"objective/rlhf_reward\"") != std::string::npos);
  }
  REQUIRE(lines == 2);
  REQUIRE(std::filesystem::exists(out / "checkpoints" / "step_000001" / "config.json"));

  Transformer saved = Transformer::from_pretrained(out / "policy");
  Tensor ids = Tensor::from_ints({3, 4, 5}, {1, 3});
  NoGradGuard no_grad;
  REQUIRE(saved.forward(ids).to_vector() == trainer.policy().forward(ids).to_vector());
  // Training moved the policy away from its frozen reference.
  REQUIRE(saved.forward(ids).to_vector() != trainer.reference().forward(ids).to_vector());
  std::filesystem::remove_all(out);
}

TEST_CASE("PPO configuration errors name the field", "[ppo_trainer]") {
  auto reward = batch_reward(first_token_is_target);
  PpoConfig config = small_config();
  config.end_token = -1;
  REQUIRE_THROWS_WITH(PpoTrainer(config, tiny_policy(), reward, tiny_prompts(4)),
                      Catch::Contains("ppo: end_token must be set"));
  config = small_config();
  config.minibatch_size = 5;
  REQUIRE_THROWS_WITH(PpoTrainer(config, tiny_policy(), reward, tiny_prompts(4)),
                      Catch::Contains("minibatch_size 5 must divide rollout_batch_size 16"));
  config = small_config();
  config.max_new_tokens = 30;
  REQUIRE_THROWS_WITH(PpoTrainer(config, tiny_policy(), reward, tiny_prompts(4)),
                      Catch::Contains("exceeds the model's max_seq_len 32"));
  config = small_config();
  auto short_reward = [](const std::vector<std::vector<int32_t>>&,
                         const std::vector<std::vector<int32_t>>&) {
    return std::vector<float>{1.f};
  };
  PpoTrainer trainer(config, tiny_policy(), short_reward, tiny_prompts(4));
  REQUIRE_THROWS_WITH(trainer.collect_rollout(),
                      Catch::Contains("the reward returned 1 scores for 16 responses"));
}

TEST_CASE("a text reward sees the decoded prompt and response", "[ppo_trainer]") {
  Tokenizer bytes;  // token i is byte i
  BatchReward reward =
      batch_reward(bytes, [](const std::string& prompt, const std::string& response) {
        return prompt == "Q?" && response == "hi" ? 1.f : -1.f;
      });
  std::vector<float> scores = reward({{'Q', '?'}, {'Q', '?'}}, {{'h', 'i'}, {'h', 'o'}});
  REQUIRE(scores == std::vector<float>{1.f, -1.f});
}

TEST_CASE(
    "an adaptive KL coefficient follows the controller after each iteration; a fixed one "
    "stays",
    "[ppo_trainer]") {
  PpoConfig config = small_config();
  config.kl_coef = 0.05f;
  config.kl_target = 0.01f;
  config.kl_horizon = 100.f;
  PpoTrainer adaptive(config, tiny_policy(), batch_reward(first_token_is_target), tiny_prompts(8));
  Metrics metrics = adaptive.train_iteration();
  // The first rollout comes from the untouched policy: its KL to the reference is exactly 0, so
  // the error clips at -0.2 and the coefficient shrinks by 0.2 * 16 prompts / horizon 100.
  REQUIRE(metrics.get("objective/kl") == 0.0);
  REQUIRE(metrics.get("objective/kl_coef") == Approx(0.05));
  REQUIRE(adaptive.kl_coef() == Approx(0.05 * (1 - 0.2 * 16 / 100.0)));

  config.kl_target = 0.f;
  PpoTrainer fixed(config, tiny_policy(), batch_reward(first_token_is_target), tiny_prompts(8));
  fixed.train_iteration();
  fixed.train_iteration();
  REQUIRE(fixed.kl_coef() == 0.05f);
}

TEST_CASE("a PPO run killed after k iterations and resumed repeats the uninterrupted run exactly",
          "[ppo_trainer]") {
  auto dir = std::filesystem::temp_directory_path() / "tiller_test_ppo_resume";
  std::filesystem::remove_all(dir);
  PpoConfig config = small_config();
  config.iterations = 4;
  config.kl_target = 0.5f;  // the adaptive coefficient is state too
  config.policy_optimizer.schedule = {.kind = optim::LrSchedule::Kind::cosine,
                                      .peak_lr = 3e-3f,
                                      .min_lr = 3e-4f,
                                      .warmup_steps = 2};
  config.value_optimizer.schedule.peak_lr = 3e-3f;
  auto prompts = tiny_prompts(12);  // 16 rollouts per iteration: passes over the prompts wrap
  auto weights = [](const ParameterList& params) {
    std::vector<std::vector<float>> values;
    for (const auto& p : params) values.push_back(p.tensor.to_vector());
    return values;
  };

  PpoTrainer straight(config, tiny_policy(), batch_reward(first_token_is_target), prompts);
  std::vector<double> straight_scores;
  for (int i = 0; i < 4; ++i)
    straight_scores.push_back(straight.train_iteration().get("objective/rlhf_reward"));
  {
    PpoTrainer first(config, tiny_policy(), batch_reward(first_token_is_target), prompts);
    for (int i = 0; i < 2; ++i)
      REQUIRE(first.train_iteration().get("objective/rlhf_reward") == straight_scores[i]);
    first.save_checkpoint(dir);
  }
  // Another initial policy: policy, critic, reference and optimizers all come from the checkpoint.
  PpoTrainer resumed(config, tiny_policy(77), batch_reward(first_token_is_target), prompts);
  resumed.resume(dir);
  REQUIRE(resumed.iteration() == 2);
  REQUIRE(resumed.kl_coef() == Approx(straight.kl_coef()).epsilon(0.5));  // restored, not initial
  for (int i = 2; i < 4; ++i)
    REQUIRE(resumed.train_iteration().get("objective/rlhf_reward") == straight_scores[i]);
  REQUIRE(resumed.kl_coef() == straight.kl_coef());
  REQUIRE(weights(resumed.policy().parameters()) == weights(straight.policy().parameters()));
  REQUIRE(weights(resumed.value_model().parameters()) ==
          weights(straight.value_model().parameters()));
  REQUIRE(weights(resumed.reference().parameters()) == weights(straight.reference().parameters()));
  std::filesystem::remove_all(dir);
}

TEST_CASE("rollout whitening: advantages have masked mean 0 and variance 1, returns stay raw, "
          "and each whitening flag does what it says",
          "[ppo_trainer]") {
  // Scores with spread: longer responses and the target token score higher.
  auto reward = [](const std::vector<int32_t>&, const std::vector<int32_t>& response) {
    return 0.3f * static_cast<float>(response.size()) + first_token_is_target({}, response);
  };
  auto masked_moments = [](const Tensor& x, const Tensor& mask) {
    std::vector<float> xv = x.to_vector(), mv = mask.to_vector();
    double n = 0, s = 0, ss = 0;
    for (size_t i = 0; i < xv.size(); ++i)
      if (mv[i] > 0) n += 1, s += xv[i];
    const double mean = s / n;
    for (size_t i = 0; i < xv.size(); ++i)
      if (mv[i] > 0) ss += (xv[i] - mean) * (xv[i] - mean);
    return std::pair{mean, ss / (n - 1)};  // unbiased, as masked_whiten
  };
  auto near = [](const Tensor& a, const Tensor& b) {
    std::vector<float> av = a.to_vector(), bv = b.to_vector();
    REQUIRE(av.size() == bv.size());
    for (size_t i = 0; i < av.size(); ++i) REQUIRE(av[i] == Approx(bv[i]).margin(1e-5));
  };
  for (bool whiten_scores : {false, true}) {
    for (bool whiten_rewards : {false, true}) {
      CAPTURE(whiten_scores, whiten_rewards);
      PpoConfig config = small_config();
      config.whiten_scores = whiten_scores;
      config.whiten_rewards = whiten_rewards;
      config.max_new_tokens = 6;
      PpoTrainer trainer(config, tiny_policy(), batch_reward(reward), tiny_prompts(16));
      Rollout rollout = trainer.collect_rollout();
      const auto N = static_cast<int64_t>(rollout.scores.size());

      // Scores: the raw reward minus the missing-end penalty, whitened over the batch when asked.
      std::vector<float> penalised = rollout.raw_scores;
      for (int64_t b = 0; b < N; ++b)
        if (!rollout.ended[b]) penalised[b] -= config.missing_end_penalty;
      Tensor score_row = Tensor::from_vector(rollout.scores, {1, N});
      if (whiten_scores) {
        auto [mean, variance] = masked_moments(score_row, Tensor::ones({1, N}));
        REQUIRE(std::abs(mean) < 1e-5);
        REQUIRE(variance == Approx(1.0).epsilon(1e-4));
      } else {
        REQUIRE(rollout.scores == penalised);
      }

      // Rewards: shaped from the scores; with whiten_rewards scaled to unit variance, mean kept.
      Tensor shaped = shape_rewards(Tensor::from_vector(rollout.scores, {N}), rollout.kl,
                                    rollout.mask, trainer.kl_coef());
      if (whiten_rewards) {
        near(rollout.rewards, masked_whiten(shaped, rollout.mask, /*shift_mean=*/false));
        REQUIRE(masked_moments(rollout.rewards, rollout.mask).second ==
                Approx(1.0).epsilon(1e-4));
        REQUIRE(masked_moments(rollout.rewards, rollout.mask).first ==
                Approx(masked_moments(shaped, rollout.mask).first).margin(1e-5));
      } else {
        near(rollout.rewards, shaped);
      }

      // Advantages: whitened GAE of those rewards and the critic's values; returns are not.
      Advantages raw = gae(rollout.rewards, rollout.values, rollout.mask, config.gamma,
                           config.lambda);
      near(rollout.advantages, masked_whiten(raw.advantages, rollout.mask));
      auto [mean, variance] = masked_moments(rollout.advantages, rollout.mask);
      REQUIRE(std::abs(mean) < 1e-5);
      REQUIRE(variance == Approx(1.0).epsilon(1e-4));
      near(rollout.returns, raw.returns);
      near(mul(sub(rollout.returns, rollout.values), rollout.mask),
           mul(raw.advantages, rollout.mask));
    }
  }
}
