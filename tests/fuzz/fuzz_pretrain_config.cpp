// Fuzz harness: a pretraining config file (pretrain_config_from_json, what `examples/pretrain
// --config` reads), validated as the trainer does, then written back and read again.
#include "fuzz/fuzz_support.h"
#include "rl/trainers/pretrain.h"

namespace tiller::fuzz {

void pretrain_config_target(std::string_view input) {
  expect_result_or_error([&] {
    rl::PretrainConfig config = rl::pretrain_config_from_json(std::string(input));
    config.validate();
    std::string written = rl::pretrain_config_to_json(config);
    if (rl::pretrain_config_to_json(rl::pretrain_config_from_json(written)) != written)
      finding("pretrain config written back does not read back the same:\n" + written);
  });
}

}  // namespace tiller::fuzz

TILLER_FUZZ_MAIN(tiller::fuzz::pretrain_config_target)
