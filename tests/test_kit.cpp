// The training-loop kit (rl/kit): one update step with the non-finite policy and clipping, the
// schedule resolution that clamps a warmup too long for the run, run directories (metrics on
// resume, checkpoint retention, the newest checkpoint) and the one seeded permutation source.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/io/atomic_file.h"
#include "core/ops/ops.h"
#include "kernels/random.h"
#include "optim/clip.h"
#include "rl/kit/optimizer.h"
#include "rl/kit/progress.h"
#include "rl/kit/run_directory.h"
#include "support/temp_dir.h"

using namespace tiller;
using namespace tiller::rl;
using tiller::testing::TempDir;

namespace {

// One parameter w with gradient g (set by a backward of sum(w * g)).
struct OneParameter {
  Tensor w;
  ParameterList params;
  explicit OneParameter(std::vector<float> values) {
    w = Tensor::from_vector(values, {static_cast<int64_t>(values.size())}, TensorOptions{}.grad());
    params = {{"w", w, true}};
  }
  void set_grad(const std::vector<float>& g) {
    sum(mul(w, Tensor::from_vector(g, {static_cast<int64_t>(g.size())}))).backward();
  }
};

}  // namespace

TEST_CASE("resolve_schedule fills total_steps from the run and clamps a warmup that does not fit",
          "[kit]") {
  optim::LrSchedule schedule{.kind = optim::LrSchedule::Kind::cosine,
                             .peak_lr = 1e-3f,
                             .min_lr = 1e-4f,
                             .warmup_steps = 10};
  optim::LrSchedule resolved = resolve_schedule(schedule, 100, "test", true);
  REQUIRE(resolved.total_steps == 100);
  REQUIRE(resolved.warmup_steps == 10);
  // A 50-row dataset at batch 8 trains 7 steps: warmup 10 used to be a hard error.
  resolved = resolve_schedule(schedule, 7, "test", true);
  REQUIRE(resolved.total_steps == 7);
  REQUIRE(resolved.warmup_steps == 0);
  REQUIRE(resolved.lr(0) == 1e-3f);
  resolved = resolve_schedule(schedule, 40, "test", true);
  REQUIRE(resolved.warmup_steps == 10);  // fits: kept
  schedule.warmup_steps = 40;
  REQUIRE(resolve_schedule(schedule, 40, "test", true).warmup_steps == 4);
  // An explicit total is kept.
  schedule.total_steps = 500;
  REQUIRE(resolve_schedule(schedule, 40, "test", true).total_steps == 500);
}

TEST_CASE("apply_update: clip factor folded into AdamW, then gradients are dropped", "[kit]") {
  OneParameter a({1.f, 2.f}), b({1.f, 2.f});
  OptimizerConfig config{.schedule = {.kind = optim::LrSchedule::Kind::constant, .peak_lr = 0.1f},
                         .clip_norm = 1.f};
  auto opt_a = make_optimizer(a.params, config, 0);
  // Gradient norm 500: far above max_norm, the applied gradient has norm exactly 1.
  a.set_grad({300.f, 400.f});
  UpdateResult result = apply_update(*opt_a, a.params, config, config.schedule, 0, 1.f, "test");
  REQUIRE(result.grad_norm == Approx(500.f).epsilon(1e-6));
  REQUIRE(result.lr == 0.1f);
  REQUIRE_FALSE(result.skipped);
  REQUIRE_FALSE(a.w.grad().defined());
  // The same step by hand: clip_grad_norm, then AdamW without a scale.
  b.set_grad({300.f, 400.f});
  optim::GradNorm clipped = optim::clip_grad_norm(b.params, 1.f);
  REQUIRE(clipped.scale == Approx(1.f / 500.f).epsilon(1e-5));
  REQUIRE(optim::global_grad_norm(b.params) == Approx(1.f).epsilon(1e-5));
  optim::AdamW opt_b(b.params, {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.95f, .weight_decay = 0.f});
  opt_b.step();
  std::vector<float> wa = a.w.to_vector(), wb = b.w.to_vector();
  REQUIRE(wa[0] == Approx(wb[0]).epsilon(1e-6));
  REQUIRE(wa[1] == Approx(wb[1]).epsilon(1e-6));
  REQUIRE(wa[0] != 1.f);
}

TEST_CASE("apply_update: a non-finite loss stops with the step, or is skipped under skip",
          "[kit]") {
  OneParameter p({1.f, 2.f});
  OptimizerConfig config{.schedule = {.kind = optim::LrSchedule::Kind::constant, .peak_lr = 0.1f}};
  auto optimizer = make_optimizer(p.params, config, 0);
  p.set_grad({1.f, 1.f});
  REQUIRE_THROWS_WITH(apply_update(*optimizer, p.params, config, config.schedule, 2, NAN, "sft"),
                      Catch::Contains("sft: non-finite loss at step 3"));
  config.on_nonfinite = NonFinitePolicy::skip;
  UpdateResult result = apply_update(*optimizer, p.params, config, config.schedule, 2, NAN, "sft");
  REQUIRE(result.skipped);
  REQUIRE(p.w.to_vector() == std::vector<float>{1.f, 2.f});
  REQUIRE_FALSE(p.w.grad().defined());
  REQUIRE(optimizer->step_count() == 0);
  // A non-finite gradient with a finite loss is caught by the norm.
  p.set_grad({INFINITY, 1.f});
  REQUIRE(apply_update(*optimizer, p.params, config, config.schedule, 3, 0.5f, "sft").skipped);
}

TEST_CASE("OptimizerConfig::validate names the trainer and the field", "[kit]") {
  OptimizerConfig config;
  config.beta2 = 1.f;
  REQUIRE_THROWS_WITH(config.validate("reward"), Catch::Contains("reward: betas"));
  config = {};
  config.clip_norm = -1.f;
  REQUIRE_THROWS_WITH(config.validate("ppo"), Catch::Contains("ppo: clip_norm"));
  REQUIRE_THROWS_WITH(parse_nonfinite_policy("ignore"), Catch::Contains("'stop' or 'skip'"));
}

TEST_CASE("RunDirectory keeps the newest periodic checkpoints and never the final one", "[kit]") {
  TempDir dir;
  auto fake_checkpoint = [](const std::filesystem::path& path, int64_t step) {
    std::filesystem::create_directories(path);
    write_file_atomic(path / "trainer_state.json", fmt::format("{{\"step\": {}}}", step));
  };
  RunDirectory run(dir.path(), 2);
  for (int64_t step : {5, 10, 15, 20}) {
    fake_checkpoint(run.checkpoint_path(step), step);
    run.prune_checkpoints();
  }
  fake_checkpoint(run.final_path("model"), 22);
  REQUIRE_FALSE(std::filesystem::exists(dir / "checkpoints/step_000005"));
  REQUIRE_FALSE(std::filesystem::exists(dir / "checkpoints/step_000010"));
  REQUIRE(std::filesystem::exists(dir / "checkpoints/step_000015"));
  REQUIRE(std::filesystem::exists(dir / "checkpoints/step_000020"));
  REQUIRE(latest_checkpoint(dir.path()) == dir / "model");
  std::filesystem::remove_all(dir / "model");
  REQUIRE(latest_checkpoint(dir.path()) == dir / "checkpoints/step_000020");
  REQUIRE_FALSE(latest_checkpoint(dir / "nothing_here").has_value());

  RunDirectory keep_all(dir / "all", 0);
  for (int64_t step = 1; step <= 5; ++step) {
    fake_checkpoint(keep_all.checkpoint_path(step), step);
    keep_all.prune_checkpoints();
  }
  int64_t kept = 0;
  for (auto& entry : std::filesystem::directory_iterator(dir / "all/checkpoints")) kept += entry.is_directory();
  REQUIRE(kept == 5);
  REQUIRE_THROWS_WITH(RunDirectory(dir.path(), -1), Catch::Contains("keep_checkpoints"));
}

TEST_CASE("RunDirectory metrics: a resumed run drops the records after its step", "[kit]") {
  TempDir dir;
  RunDirectory run(dir.path(), 3);
  {
    auto log = run.open_metrics("sft", 0, "eval_loss");
    for (int64_t step = 1; step <= 4; ++step) {
      Metrics m;
      m.add("loss", static_cast<double>(step));
      log->write(step, m);
    }
  }
  {
    auto log = run.open_metrics("sft", 2, "eval_loss");  // resumed at step 2
    Metrics m;
    m.add("loss", 30.0);
    log->write(3, m);
  }
  std::ifstream in(dir / "metrics.jsonl");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  REQUIRE(lines.size() == 3);
  REQUIRE(lines[1].find("\"step\": 2") != std::string::npos);
  REQUIRE(lines[2].find("\"loss\": 30") != std::string::npos);
  // A disabled run directory writes nothing and hands out empty paths.
  RunDirectory none("", 3);
  REQUIRE_FALSE(none.enabled());
  REQUIRE(none.checkpoint_path(3).empty());
  REQUIRE(none.open_metrics("sft", 0, "eval_loss") != nullptr);
}

TEST_CASE("the seeded permutation source: a permutation, reproducible, distinct per seed and epoch",
          "[kit]") {
  std::vector<int64_t> order = random::permutation(1000, 42);
  std::vector<int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) REQUIRE(sorted[i] == i);
  REQUIRE(random::permutation(1000, 42) == order);
  REQUIRE(random::permutation(1000, 43) != order);
  REQUIRE(random::epoch_order(1000, 42, 0) != random::epoch_order(1000, 42, 1));
  REQUIRE(random::epoch_order(1000, 42, 1) == random::epoch_order(1000, 42, 1));
  // Uniform: over many shuffles of 4 items, each lands first about a quarter of the time.
  std::vector<int> first(4, 0);
  for (uint64_t seed = 0; seed < 4000; ++seed) ++first[random::permutation(4, seed)[0]];
  for (int count : first) REQUIRE(std::abs(count - 1000) < 120);  // > 4 sigma
  random::Stream stream(7);
  for (int i = 0; i < 1000; ++i) REQUIRE(stream.below(3) < 3);
  REQUIRE(stream.counter() >= 1000);
}

TEST_CASE("every() is the cadence check: period 0 never fires", "[kit]") {
  REQUIRE(every(10, 5));
  REQUIRE_FALSE(every(11, 5));
  REQUIRE_FALSE(every(10, 0));
}
