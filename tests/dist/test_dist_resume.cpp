// Checkpoints of a data-parallel run resume exactly: on the same ranks bit for bit, on one rank
// (this process alone, reading the same checkpoint) and across ZeRO stages within the
// data-parallel tolerance of test_data_parallel.cpp (1e-3 of each tensor's scale: AdamW amplifies
// the few-ulp differences of another summation order), because the optimizer state is saved
// gathered, in the layout of an unsharded optimizer.
#include <catch2/catch.hpp>

#include "dist/dist_support.h"
#include "rl/kit/run_directory.h"

using namespace tiller;
using namespace tiller::rl;
using namespace tiller::testing;

TEST_CASE(
    "A data-parallel checkpoint resumes on the same ranks, on one rank and across ZeRO "
    "stages",
    "[dist]") {
  SharedDir dir;
  const std::string shard = write_tiny_shard(dir, "train.bin", 4096, 64, 3);
  PretrainConfig config = tiny_pretrain(ModelFamily::gpt2);
  config.optimizer.zero_stage = 1;
  config.communicator = world();

  Pretrainer straight(config, {shard}, {});
  for (int i = 0; i < 4; ++i) straight.train_step();
  const auto expected = weights_of(straight.model());

  const auto checkpoint = dir.path() / "step2";
  {
    Pretrainer first(config, {shard}, {});
    first.train_step();
    first.train_step();
    first.save_checkpoint(checkpoint);  // every rank calls; rank 0 writes
  }
  world()->barrier();  // the checkpoint exists before anyone reads it

  SECTION("same ranks, ZeRO-1: bit for bit") {
    Pretrainer resumed(config, {shard}, {});
    resumed.resume(checkpoint);
    REQUIRE(resumed.step() == 2);
    resumed.train_step();
    resumed.train_step();
    REQUIRE(weights_of(resumed.model()) == expected);
  }
  SECTION("same ranks, ZeRO-0: the gathered state loads unsharded") {
    PretrainConfig zero0 = config;
    zero0.optimizer.zero_stage = 0;
    Pretrainer resumed(zero0, {shard}, {});
    resumed.resume(checkpoint);
    resumed.train_step();
    resumed.train_step();
    INFO("max relative difference "
         << max_relative_difference(weights_of(resumed.model()), expected));
    REQUIRE(max_relative_difference(weights_of(resumed.model()), expected) <= 1e-3);
  }
  SECTION("one rank") {
    PretrainConfig alone = config;
    alone.communicator = dist::single_process();
    Pretrainer resumed(alone, {shard}, {});
    resumed.resume(checkpoint);
    resumed.train_step();
    resumed.train_step();
    INFO("max relative difference "
         << max_relative_difference(weights_of(resumed.model()), expected));
    REQUIRE(max_relative_difference(weights_of(resumed.model()), expected) <= 1e-3);
  }
}

TEST_CASE("The global batch must divide over the ranks", "[dist]") {
  PretrainConfig config = tiny_pretrain(ModelFamily::gpt2);
  config.communicator = world();
  config.batch_size = 2 * world()->world_size() + 1;
  if (world()->world_size() == 1) return;
  REQUIRE_THROWS_WITH(Pretrainer(config, {"unused.bin"}, {}),
                      Catch::Contains("global batch") && Catch::Contains("ranks"));
}

TEST_CASE("With dropout each rank draws its own masks, and a resume restores them", "[dist]") {
  SharedDir dir;
  const std::string shard = write_tiny_shard(dir, "train.bin", 4096, 64, 4);
  PretrainConfig config = tiny_pretrain(ModelFamily::gpt2);
  config.model.dropout = 0.2f;
  config.communicator = world();
  Pretrainer straight(config, {shard}, {});
  const Generator& generator = straight.model().dropout_generator();
  const uint64_t seed = generator.seed;
  Tensor seeds = Tensor::from_ints({static_cast<int32_t>(seed & 0x3fffffff)}, {1});
  world()->all_reduce(seeds, dist::ReduceOp::sum);
  if (world()->world_size() == 2)  // different streams: the sum is not twice rank 0's
    REQUIRE(seeds.to_int_vector()[0] != 2 * static_cast<int32_t>(seed & 0x3fffffff));
  for (int i = 0; i < 4; ++i) straight.train_step();
  const auto expected = weights_of(straight.model());

  const auto checkpoint = dir.path() / "step2";
  {
    Pretrainer first(config, {shard}, {});
    first.train_step();
    first.train_step();
    first.save_checkpoint(checkpoint);
  }
  world()->barrier();
  Pretrainer resumed(config, {shard}, {});
  resumed.resume(checkpoint);
  REQUIRE(resumed.model().dropout_generator().seed == seed);
  resumed.train_step();
  resumed.train_step();
  REQUIRE(weights_of(resumed.model()) == expected);
}
