// All ranks take the same non-finite decision although only one rank sees the NaN: the loss and
// the gradients are averaged before the checks, and a NaN survives a sum. Under `stop` every rank
// throws at the same step; under `skip` every rank skips it and the ranks' weights stay equal.
#include <catch2/catch.hpp>

#include <limits>

#include "dist/dist_support.h"
#include "kernels/error.h"

using namespace tiller;
using namespace tiller::rl;
using namespace tiller::testing;

namespace {

// Rank `last` (the highest) poisons step 2: its loss, or one gradient element.
void poison_on_last_rank(Pretrainer& trainer, bool gradient) {
  trainer.set_after_backward([gradient](int64_t step, float& loss, Transformer& model) {
    if (step != 2 || world()->rank() != world()->world_size() - 1) return;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    if (!gradient) {
      loss = nan;
      return;
    }
    Tensor g = model.parameters().front().tensor.grad();
    g.data<float>()[0] = nan;
  });
}

}  // namespace

TEST_CASE("A NaN on one rank stops every rank at the same step, or every rank skips it", "[dist]") {
  SharedDir dir;
  const std::string shard = write_tiny_shard(dir, "train.bin", 4096, 64, 5);
  for (bool gradient : {false, true}) {
    DYNAMIC_SECTION((gradient ? "NaN gradient" : "NaN loss")) {
      PretrainConfig config = tiny_pretrain(ModelFamily::gpt2);
      config.communicator = world();
      {
        Pretrainer trainer(config, {shard}, {});
        poison_on_last_rank(trainer, gradient);
        trainer.train_step();
        REQUIRE_THROWS_WITH(trainer.train_step(),
                            Catch::Contains("non-finite") && Catch::Contains("at step 2"));
      }
      config.optimizer.on_nonfinite = NonFinitePolicy::skip;
      Pretrainer trainer(config, {shard}, {});
      poison_on_last_rank(trainer, gradient);
      for (int i = 0; i < 3; ++i) trainer.train_step();
      REQUIRE(trainer.skipped_steps() == 1);
      // The same weights on every rank: rank 0's broadcast equals each rank's own.
      for (const auto& p : trainer.model().parameters()) {
        Tensor mine = p.tensor.detach().clone();
        Tensor root = mine.clone();
        world()->broadcast(root, 0);
        REQUIRE(root.to_vector() == mine.to_vector());
      }
    }
  }
}
