// What the tokenizer harnesses do with a tokenizer that loaded: encode and decode a short text
// (ordinary, with special tokens allowed, and invalid UTF-8) and check the round trip.
#pragma once

#include <string>
#include <vector>

#include "fuzz/fuzz_support.h"

namespace tiller::fuzz {

inline void check_loaded_tokenizer(const Tokenizer& tokenizer) {
  const std::string texts[] = {"Hello, world! It's 2 o'clock.\n  x", "a<|endoftext|>b",
                               "\xff\xfe caf\xc3\xa9 \xe2\x82"};
  for (const std::string& text : texts) {
    for (bool allow_special : {false, true}) {
      std::vector<TokenId> ids = tokenizer.encode(text, allow_special);
      for (TokenId id : ids) {
        if (id < 0 || id >= tokenizer.vocab_size())
          finding("encode produced id " + std::to_string(id) + " outside the vocabulary");
      }
      if (tokenizer.decode(ids) != text) finding("decode(encode(s)) != s for s = " + text);
    }
  }
}

}  // namespace tiller::fuzz
