// Fuzz harness: a whole SFT JSONL file through SftDataset::from_jsonl (lines, blank lines,
// malformed-line policy, truncation, examples without targets), then packing and one batch.
// The first byte picks the malformed-line policy; the rest is the file.
#include "fuzz/fuzz_support.h"
#include "rl/data/sft_data.h"

namespace tiller::fuzz {

void sft_jsonl_target(std::string_view input) {
  if (input.empty()) return;
  const bool skip = (input[0] & 1) != 0;
  std::string path = write_scratch("sft.jsonl", input.substr(1)).string();
  expect_result_or_error([&] {
    rl::SftDataOptions options{
        .max_length = 16,
        .on_malformed = skip ? rl::MalformedLinePolicy::skip : rl::MalformedLinePolicy::stop};
    rl::SftDataset data = rl::SftDataset::from_jsonl(path, small_tokenizer(), options);
    std::vector<rl::SftRow> rows = rl::plan_rows(data, /*pack=*/true, /*seed=*/1);
    rl::collate(data, std::span<const rl::SftRow>(rows.data(), 1));
  });
}

}  // namespace tiller::fuzz

TILLER_FUZZ_MAIN(tiller::fuzz::sft_jsonl_target)
