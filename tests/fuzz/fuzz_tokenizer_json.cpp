// Fuzz harness: Tokenizer::load_tokenizer_json on a tokenizer.json, then encode/decode of a short
// text with the loaded tokenizer; decode(encode(s)) == s is the tokenizer's documented invariant.
#include "fuzz/fuzz_support.h"
#include "fuzz/fuzz_tokenizer_check.h"

namespace tiller::fuzz {

void tokenizer_json_target(std::string_view input) {
  std::string path = write_scratch("tokenizer.json", input).string();
  expect_result_or_error([&] { check_loaded_tokenizer(Tokenizer::load_tokenizer_json(path)); });
}

}  // namespace tiller::fuzz

TILLER_FUZZ_MAIN(tiller::fuzz::tokenizer_json_target)
