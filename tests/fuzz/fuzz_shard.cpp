// Fuzz harness: a token shard file (core/shards.h) opened and validated by TokenShard, every token
// read back, then a TokenLoader over it taking two batches (what pretraining does with a shard).
#include "core/data/loader.h"
#include "core/data/shards.h"
#include "fuzz/fuzz_support.h"

namespace tiller::fuzz {

void shard_target(std::string_view input) {
  std::string path = write_scratch("shard.bin", input).string();
  expect_result_or_error([&] {
    TokenShard shard(path);
    std::vector<TokenId> tokens(static_cast<size_t>(shard.size()));
    shard.read(0, shard.size(), tokens.data());
    for (int64_t i = 0; i < shard.size(); ++i) {
      if (shard[i] != tokens[static_cast<size_t>(i)])
        finding("TokenShard: operator[] and read() disagree at token " + std::to_string(i));
    }
    TokenLoader loader({path}, {.batch_size = 1, .seq_len = 4, .seed = 1});
    loader.next();
    loader.next();
  });
}

}  // namespace tiller::fuzz

TILLER_FUZZ_MAIN(tiller::fuzz::shard_target)
