// Fuzz harness: Tokenizer::load_vocab_merges on a vocab.json and a merges.txt (the input holds
// both, split at the first NUL byte), then encode/decode of a short text.
#include "fuzz/fuzz_support.h"
#include "fuzz/fuzz_tokenizer_check.h"

namespace tiller::fuzz {

void vocab_merges_target(std::string_view input) {
  std::vector<std::string_view> parts = split_parts(input, 2);
  std::string vocab = write_scratch("vocab.json", parts[0]).string();
  std::string merges = write_scratch("merges.txt", parts[1]).string();
  expect_result_or_error(
      [&] { check_loaded_tokenizer(Tokenizer::load_vocab_merges(vocab, merges)); });
}

}  // namespace tiller::fuzz

TILLER_FUZZ_MAIN(tiller::fuzz::vocab_merges_target)
