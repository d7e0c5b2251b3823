// Fuzz harness: ModelConfig::from_hf_json on a config.json, then what every loader asks of the
// result at once (parameter count, padded vocabulary, the JSON written back and read again).
#include "core/models/model_config.h"
#include "fuzz/fuzz_support.h"

namespace tiller::fuzz {

void model_config_target(std::string_view input) {
  expect_result_or_error([&] {
    ModelConfig config = ModelConfig::from_hf_json(std::string(input));
    (void)config.num_parameters();
    (void)config.padded_vocab_size();
    ModelConfig again = ModelConfig::from_hf_json(config.to_hf_json());
    if (again.to_hf_json() != config.to_hf_json())
      finding("config.json written back does not read back the same:\n" + config.to_hf_json());
  });
}

}  // namespace tiller::fuzz

TILLER_FUZZ_MAIN(tiller::fuzz::model_config_target)
