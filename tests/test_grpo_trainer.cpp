// GRPO trainer: a callable reward rises on a tiny model, no reference model exists when β = 0,
// several weighted rewards are logged under TRL's names, resume is bit-exact, and bad
// configurations are refused by name.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/ops/ops.h"
#include "rl/trainers/grpo.h"
#include "support/temp_dir.h"

using namespace tiller;
using namespace tiller::rl;
using tiller::testing::TempDir;

namespace {

constexpr int64_t kVocab = 16;
constexpr int32_t kEndToken = 1;
constexpr int32_t kTargetToken = 5;

Transformer tiny_policy(uint64_t seed = 3) {
  return Transformer(ModelConfig::gpt2(kVocab, 2, 2, 32, 32), seed);
}

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

float ends_its_turn(const std::vector<int32_t>&, const std::vector<int32_t>& response) {
  return !response.empty() && response.back() == kEndToken ? 1.f : 0.f;
}

GrpoConfig small_config() {
  GrpoConfig c;
  c.steps = 3;
  c.prompts_per_step = 4;
  c.num_generations = 4;
  c.micro_batch_size = 6;  // 16 completions: micro-batches of 6, 6, 4
  c.max_completion_length = 4;
  c.loss.max_completion_length = 4;
  c.end_token = kEndToken;
  c.log_every = 0;
  c.seed = 7;
  c.optimizer.schedule = {.kind = optim::LrSchedule::Kind::constant, .peak_lr = 3e-3f};
  return c;
}

std::vector<GrpoReward> target_reward() {
  return {{"target", batch_reward(first_token_is_target), 1.f}};
}

std::vector<float> flat_weights(Transformer& model) {
  std::vector<float> all;
  for (const auto& p : model.parameters()) {
    auto v = p.tensor.to_vector();
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

}  // namespace

TEST_CASE("GRPO with a callable reward raises the mean reward of a tiny model", "[grpo_trainer]") {
  GrpoConfig config = small_config();
  config.steps = 16;
  config.prompts_per_step = 8;
  config.optimizer.schedule.peak_lr = 1e-2f;
  GrpoTrainer trainer(config, tiny_policy(), target_reward(), tiny_prompts(24));
  REQUIRE_FALSE(trainer.has_reference_model());  // β = 0: no reference model is built
  std::vector<double> rewards;
  for (int64_t i = 0; i < config.steps; ++i) rewards.push_back(trainer.train_step().reward);
  INFO("first reward " << rewards.front() << ", last " << rewards.back());
  // A near-uniform policy over 16 tokens picks the target first about 1 time in 16.
  REQUIRE(rewards.front() < 0.25);
  REQUIRE((rewards[rewards.size() - 1] + rewards[rewards.size() - 2]) / 2 > 0.6);
}

TEST_CASE("GRPO logs TRL's metric names, per-reward statistics and the KL when β > 0",
          "[grpo_trainer]") {
  GrpoConfig config = small_config();
  config.loss.beta = 0.04f;
  config.num_iterations = 2;
  std::vector<GrpoReward> rewards = {{"target", batch_reward(first_token_is_target), 1.f},
                                     {"format", batch_reward(ends_its_turn), 0.5f}};
  GrpoTrainer trainer(config, tiny_policy(), rewards, tiny_prompts(8));
  REQUIRE(trainer.has_reference_model());
  GrpoStepReport report = trainer.train_step();
  const Metrics& m = report.metrics;
  REQUIRE(m.get("reward") ==
          Approx(m.get("rewards/target/mean") + 0.5 * m.get("rewards/format/mean")));
  for (const char* key :
       {"reward_std", "rewards/target/std", "rewards/format/std", "frac_reward_zero_std", "kl",
        "entropy", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean",
        "completions/mean_length", "completions/clipped_ratio", "generation_seconds",
        "training_seconds", "loss", "grad_norm"})
    REQUIRE_NOTHROW(m.get(key));
  // Measured in the second update, after the first moved the policy away from the reference.
  REQUIRE(m.get("kl") > 0.0);
  REQUIRE(m.get("kl") < 0.5);
  REQUIRE(m.get("entropy") > 0.0);
  REQUIRE(m.get("completions/mean_length") <= 4.0);
  REQUIRE(m.get("clip_ratio/region_mean") ==
          Approx(m.get("clip_ratio/low_mean") + m.get("clip_ratio/high_mean")));
  REQUIRE(m.get("generation_seconds") > 0.0);
}

TEST_CASE("GRPO resume is bit-exact: N straight steps equal k + save + resume + N - k",
          "[grpo_trainer]") {
  TempDir dir;
  GrpoConfig config = small_config();
  config.steps = 4;  // 6 prompts, 4 per step: the resume crosses a reshuffle
  GrpoTrainer straight(config, tiny_policy(), target_reward(), tiny_prompts(6));
  straight.train();
  GrpoTrainer first(config, tiny_policy(), target_reward(), tiny_prompts(6));
  first.train_step();
  first.train_step();
  first.save_checkpoint(dir.path() / "ckpt");
  GrpoTrainer resumed(config, tiny_policy(), target_reward(), tiny_prompts(6));
  resumed.resume(dir.path() / "ckpt");
  REQUIRE(resumed.step() == 2);
  resumed.train();
  REQUIRE(flat_weights(resumed.policy()) == flat_weights(straight.policy()));
}

TEST_CASE("a GRPO run writes one metrics line per step and a loadable model", "[grpo_trainer]") {
  TempDir dir;
  GrpoConfig config = small_config();
  config.output_dir = (dir.path() / "run").string();
  GrpoTrainer trainer(config, tiny_policy(), target_reward(), tiny_prompts(8));
  trainer.train();
  std::ifstream in(dir.path() / "run" / "metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    REQUIRE(line.find("\"frac_reward_zero_std\"") != std::string::npos);
    ++lines;
  }
  REQUIRE(lines == 3);
  Transformer loaded = Transformer::from_pretrained(dir.path() / "run" / "model");
  REQUIRE(flat_weights(loaded) == flat_weights(trainer.policy()));
}

TEST_CASE("GRPO trainer configuration errors name the field", "[grpo_trainer]") {
  GrpoConfig config = small_config();
  config.num_generations = 1;
  REQUIRE_THROWS_WITH(GrpoTrainer(config, tiny_policy(), target_reward(), tiny_prompts(4)),
                      Catch::Contains("num_generations must be >= 2"));
  config = small_config();
  config.end_token = -1;
  REQUIRE_THROWS_WITH(GrpoTrainer(config, tiny_policy(), target_reward(), tiny_prompts(4)),
                      Catch::Contains("end_token must be set"));
  config = small_config();
  config.max_completion_length = 40;
  config.loss.max_completion_length = 40;
  REQUIRE_THROWS_WITH(GrpoTrainer(config, tiny_policy(), target_reward(), tiny_prompts(4)),
                      Catch::Contains("exceeds the model's max_seq_len 32"));
  REQUIRE_THROWS_WITH(GrpoTrainer(small_config(), tiny_policy(), {}, tiny_prompts(4)),
                      Catch::Contains("no reward functions"));
}
