// DPO trainer: it learns a separable preference, gradient accumulation over k micro-batches equals
// one batch, a precomputed reference equals the live frozen copy (and keeps no model), resume is
// bit-exact, truncation keeps the prompt's end, and a run writes TRL-named metrics and a model.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/ops/ops.h"
#include "rl/trainers/dpo.h"
#include "support/gradcheck.h"
#include "support/temp_dir.h"

using namespace tiller;
using namespace tiller::rl;
using tiller::testing::TempDir;

namespace {

constexpr int64_t kVocab = 16;
constexpr int32_t kGood = 5, kBad = 6;

Transformer tiny_policy(uint64_t seed = 3) {
  return Transformer(ModelConfig::gpt2(kVocab, 2, 2, 32, 32), seed);
}

// Prompts of 1..4 tokens; chosen completions start with kGood, rejected with kBad; lengths vary
// so batches need padding.
std::vector<PreferenceExample> tiny_pairs(size_t count) {
  std::vector<PreferenceExample> pairs;
  for (size_t i = 0; i < count; ++i) {
    PreferenceExample e;
    for (size_t t = 0; t <= i % 4; ++t) e.prompt.push_back(static_cast<int32_t>(7 + (i + t) % 8));
    e.chosen = {kGood, static_cast<int32_t>(2 + i % 3), 1};
    e.rejected = {kBad, 1};
    if (i % 2) e.rejected.insert(e.rejected.begin() + 1, static_cast<int32_t>(3 + i % 4));
    pairs.push_back(e);
  }
  return pairs;
}

DpoConfig small_config() {
  DpoConfig c;
  c.batch_size = 4;
  c.log_every = 0;
  c.seed = 5;
  c.optimizer.schedule = {.kind = optim::LrSchedule::Kind::constant, .peak_lr = 1e-2f};
  return c;
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

TEST_CASE("DPO learns a separable preference: accuracy and margin rise on held-out pairs",
          "[dpo_trainer]") {
  DpoConfig config = small_config();
  config.epochs = 6;
  auto pairs = tiny_pairs(24);
  std::vector<PreferenceExample> eval(pairs.begin() + 16, pairs.end());
  pairs.resize(16);
  DpoTrainer trainer(config, tiny_policy(), pairs, eval);
  DpoSummary summary = trainer.train();
  INFO("eval margin " << summary.initial_eval.rewards_margins << " -> "
                      << summary.final_eval.rewards_margins);
  REQUIRE(summary.initial_eval.rewards_margins == Approx(0.0).margin(1e-6));  // policy == ref
  REQUIRE(summary.final_eval.rewards_accuracies == 1.0);
  REQUIRE(summary.final_eval.rewards_margins > 0.5);
  REQUIRE(summary.final_eval.loss < 0.6 * summary.initial_eval.loss);
  REQUIRE(summary.steps == 6 * 4);
}

TEST_CASE("DPO gradient accumulation over k micro-batches equals one batch", "[dpo_trainer]") {
  auto pairs = tiny_pairs(6);
  DpoTrainer a(small_config(), tiny_policy(), pairs), b(small_config(), tiny_policy(), pairs);
  // One batch of 6 pairs vs micro-batches of 4 and 2 (unequal: weights 4/6 and 2/6).
  DpoMetrics one = a.accumulate_gradients({{0, 1, 2, 3, 4, 5}});
  DpoMetrics two = b.accumulate_gradients({{0, 1, 2, 3}, {4, 5}});
  REQUIRE(one.pairs == 6);
  REQUIRE(two.pairs == 6);
  REQUIRE(two.loss == Approx(one.loss).epsilon(1e-6));
  REQUIRE(two.rewards_accuracies == one.rewards_accuracies);
  size_t compared = 0;
  for (size_t i = 0; i < a.policy().parameters().size(); ++i) {
    Tensor ga = a.policy().parameters()[i].tensor.grad(),
           gb = b.policy().parameters()[i].tensor.grad();
    INFO(a.policy().parameters()[i].name);
    REQUIRE_CLOSE(gb, ga, 1e-4f, 1e-7f);
    ++compared;
  }
  REQUIRE(compared == a.policy().parameters().size());

  // Through train_step: batch 6 vs batch 4 x 2 accumulation take the same first update.
  DpoConfig accumulated = small_config();
  accumulated.grad_accumulation = 2;
  DpoConfig single = small_config();
  single.batch_size = 8;
  DpoTrainer c(single, tiny_policy(), pairs), d(accumulated, tiny_policy(), pairs);
  DpoStepReport rc = c.train_step(), rd = d.train_step();
  REQUIRE(rd.metrics.pairs == 6);
  REQUIRE(rd.metrics.loss == Approx(rc.metrics.loss).epsilon(1e-6));
  REQUIRE(rd.grad_norm == Approx(rc.grad_norm).epsilon(1e-4));
}

TEST_CASE("a precomputed reference gives the live reference's losses and keeps no model",
          "[dpo_trainer]") {
  auto pairs = tiny_pairs(12);
  DpoConfig live = small_config(), pre = small_config();
  pre.precompute_ref = true;
  DpoTrainer a(live, tiny_policy(), pairs, tiny_pairs(5)),
      b(pre, tiny_policy(), pairs, tiny_pairs(5));
  REQUIRE(a.has_reference_model());
  REQUIRE_FALSE(b.has_reference_model());
  for (int step = 0; step < 3; ++step) {
    DpoStepReport ra = a.train_step(), rb = b.train_step();
    REQUIRE(rb.metrics.loss == Approx(ra.metrics.loss).epsilon(1e-5));
    REQUIRE(rb.metrics.rewards_margins == Approx(ra.metrics.rewards_margins).margin(1e-5));
  }
  REQUIRE(b.evaluate().loss == Approx(a.evaluate().loss).epsilon(1e-5));
}

TEST_CASE("DPO resume is bit-exact: N straight steps equal k + save + resume + N - k",
          "[dpo_trainer]") {
  TempDir dir;
  auto pairs = tiny_pairs(10);
  DpoConfig config = small_config();
  config.epochs = 2;  // 3 steps per epoch: the resume crosses an epoch boundary
  DpoTrainer straight(config, tiny_policy(), pairs);
  straight.train();
  DpoTrainer first(config, tiny_policy(), pairs);
  for (int i = 0; i < 4; ++i) first.train_step();
  first.save_checkpoint(dir.path() / "ckpt");
  DpoTrainer resumed(config, tiny_policy(), pairs);
  resumed.resume(dir.path() / "ckpt");
  REQUIRE(resumed.step() == 4);
  resumed.train();
  REQUIRE(flat_weights(resumed.policy()) == flat_weights(straight.policy()));
}

TEST_CASE("truncation drops the prompt's start, then the completions' ends, and is counted",
          "[dpo_trainer]") {
  PreferenceExample kept{{1, 2, 3, 4, 5}, {6, 7}, {8, 9, 10}, 0.f};
  REQUIRE(truncate_preference(kept, 6));
  REQUIRE(kept.prompt == std::vector<int32_t>{3, 4, 5});
  REQUIRE(kept.rejected == std::vector<int32_t>{8, 9, 10});
  PreferenceExample long_answer{{1, 2}, {6, 7, 8, 9, 10}, {11}, 0.f};
  REQUIRE(truncate_preference(long_answer, 4));
  REQUIRE(long_answer.prompt == std::vector<int32_t>{2});
  REQUIRE(long_answer.chosen == std::vector<int32_t>{6, 7, 8});
  REQUIRE(long_answer.rejected == std::vector<int32_t>{11});
  PreferenceExample fits{{1}, {2}, {3}, 0.f};
  REQUIRE_FALSE(truncate_preference(fits, 4));

  DpoConfig config = small_config();
  config.max_length = 6;
  DpoTrainer trainer(config, tiny_policy(), tiny_pairs(8));
  REQUIRE(trainer.truncated_pairs() == 2);  // prompts of 4 tokens + 3-token completions
}

TEST_CASE("a DPO run writes TRL-named metrics, eval records and a loadable model",
          "[dpo_trainer]") {
  TempDir dir;
  DpoConfig config = small_config();
  config.output_dir = (dir.path() / "run").string();
  config.checkpoint_every = 1;
  config.keep_checkpoints = 1;
  DpoTrainer trainer(config, tiny_policy(), tiny_pairs(12), tiny_pairs(4));
  trainer.train();  // 3 steps
  std::ifstream in(dir.path() / "run" / "metrics.jsonl");
  std::string line, all;
  int lines = 0;
  while (std::getline(in, line)) {
    all += line;
    ++lines;
  }
  REQUIRE(lines == 3 + 2);  // 3 train records, eval at the start and the end
  for (const char* key : {"\"rewards/chosen\"", "\"rewards/rejected\"", "\"rewards/accuracies\"",
                          "\"rewards/margins\"", "\"logps/chosen\"", "\"logps/rejected\"",
                          "\"loss\"", "\"eval_loss\"", "\"eval_rewards/margins\""})
    REQUIRE(all.find(key) != std::string::npos);
  REQUIRE(std::filesystem::exists(dir.path() / "run" / "checkpoints" / "step_000002"));
  REQUIRE_FALSE(std::filesystem::exists(dir.path() / "run" / "checkpoints" / "step_000001"));
  Transformer loaded = Transformer::from_pretrained(dir.path() / "run" / "model");
  REQUIRE(flat_weights(loaded) == flat_weights(trainer.policy()));
}

TEST_CASE("DPO configuration and data errors name the field", "[dpo_trainer]") {
  DpoConfig config = small_config();
  config.batch_size = 0;
  REQUIRE_THROWS_WITH(DpoTrainer(config, tiny_policy(), tiny_pairs(4)),
                      Catch::Contains("batch_size must be > 0"));
  REQUIRE_THROWS_WITH(DpoTrainer(small_config(), tiny_policy(), {}),
                      Catch::Contains("no training pairs"));
  auto pairs = tiny_pairs(3);
  pairs[2].rejected.clear();
  REQUIRE_THROWS_WITH(DpoTrainer(small_config(), tiny_policy(), pairs),
                      Catch::Contains("train pair 2 has an empty"));
  config = small_config();
  config.max_length = 64;
  REQUIRE_THROWS_WITH(DpoTrainer(config, tiny_policy(), tiny_pairs(4)),
                      Catch::Contains("exceeds the model's max_seq_len 32"));
}
