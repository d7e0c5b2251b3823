// Fuzz harness: one JSONL row of preference data, text or chat form (parse_preference_record),
// then the pair laid out in a training batch with a short max_length (truncation from the start).
#include "fuzz/fuzz_support.h"
#include "rl/data/reward_data.h"

namespace tiller::fuzz {

void preference_record_target(std::string_view input) {
  expect_result_or_error([&] {
    rl::PreferenceExample example =
        rl::parse_preference_record(small_tokenizer(), input, "fuzz.jsonl:1");
    rl::make_preference_batch({example}, {0}, /*max_length=*/8);
  });
}

}  // namespace tiller::fuzz

TILLER_FUZZ_MAIN(tiller::fuzz::preference_record_target)
