// A rank that dies or hangs mid-run must not leave the others waiting forever. Hidden from the
// normal run ([.fault]); tests/dist/fault.cmake launches it under mpirun with TILLER_TEST_FAULT:
//   die   rank 1 kills itself (SIGKILL) after its backward in step 3: mpirun sees the death and
//         stops the job, naming the rank;
//   hang  rank 1 sleeps instead: rank 0's next collective times out (TILLER_DIST_TIMEOUT) with a
//         tiller::Error naming the collective, and dist::abort_job ends the job.
#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "dist/dist_support.h"

using namespace tiller;
using namespace tiller::rl;
using namespace tiller::testing;

TEST_CASE("A dead or hung rank stops the job with a named error", "[.fault]") {
  const char* fault = std::getenv("TILLER_TEST_FAULT");
  REQUIRE(fault != nullptr);
  SharedDir dir;
  const std::string shard = write_tiny_shard(dir, "train.bin", 4096, 64, 1);
  PretrainConfig config = tiny_pretrain(ModelFamily::gpt2);
  config.steps = 6;
  config.communicator = world();
  Pretrainer trainer(config, {shard}, {});
  trainer.set_after_backward([&](int64_t step, float&, Transformer&) {
    if (step != 3 || world()->rank() != 1) return;
    if (std::string(fault) == "die") std::raise(SIGKILL);
    std::this_thread::sleep_for(std::chrono::hours(1));
  });
  try {
    trainer.train();
  } catch (const std::exception& error) {
    std::cerr << "rank " << world()->rank() << " stopped: " << error.what() << std::endl;
    dist::abort_job(3);
    throw;
  }
  FAIL("the run finished although rank 1 " << fault);
}
