// Pretraining data preparation: text corpus -> byte-level BPE tokenizer -> train/val token shards.
//
// The corpus is a list of documents joined by <|endoftext|> (World::pretraining_corpus's layout).
// Documents, not tokens, are split between train and validation: every k-th document (k =
// round(1 / val_fraction)) goes to validation, so validation is held-out text spread over every
// document family rather than one contiguous tail. Each document is encoded on its own and
// followed by the <|endoftext|> id, so a document's tokens never depend on its neighbours.
//
// Outputs in `dir`: tokenizer.json (trained here or copied from a given tokenizer), train.bin and
// val.bin (core/shards.h). prepare_world_pretraining_data reuses the files when a previous call
// with the same world seed, size and vocabulary left them there (recorded in data.json), so a
// pipeline that calls it at every start pays for tokenizer training once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/text/tokenizer.h"
#include "core/world/world.h"

namespace tiller::rl {

struct CorpusShardOptions {
  int64_t vocab_size = 1024;        // when training a tokenizer: bytes + merges + special tokens
  double val_fraction = 0.05;       // share of documents held out for validation, in (0, 0.5]
  std::string tokenizer_path = {};  // non-empty: load this tokenizer (core/tokenizer.h) instead
};

struct CorpusShards {
  std::filesystem::path tokenizer_path;  // <dir>/tokenizer.json
  std::vector<std::string> train_shards;
  std::vector<std::string> val_shards;
  int64_t train_tokens = 0;
  int64_t val_tokens = 0;
  int64_t vocab_size = 0;
  bool reused = false;  // the files of an earlier identical call were kept
};

// Splits on <|endoftext|>; empty documents are dropped.
std::vector<std::string_view> split_documents(std::string_view corpus);

// A byte-level BPE tokenizer of `vocab_size` ids trained on the documents, with every special
// token of core/special_tokens.h (they are never merged into).
Tokenizer train_corpus_tokenizer(const std::vector<std::string_view>& documents,
                                 int64_t vocab_size);

// Encodes and writes the shards and tokenizer.json into `dir` (created when missing).
CorpusShards write_corpus_shards(const std::vector<std::string_view>& documents,
                                 const Tokenizer& tokenizer, const std::filesystem::path& dir,
                                 double val_fraction);

// The built-in world's pretraining corpus, end to end: corpus -> tokenizer -> shards in `dir`.
CorpusShards prepare_world_pretraining_data(const WorldConfig& world,
                                            const std::filesystem::path& dir,
                                            const CorpusShardOptions& options = {});

}  // namespace tiller::rl
