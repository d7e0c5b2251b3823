// Corpus -> tokenizer -> train/val shards (see rl/pretrain_data.h).
//
// The reuse record (data.json) is written last, after the shards and the tokenizer, so its
// presence means the files it describes are complete; a crash mid-way simply rebuilds them.
#include "rl/data/pretrain_data.h"

#include <nlohmann/json.hpp>

#include <cmath>

#include "core/io/atomic_file.h"
#include "kernels/error.h"
#include "core/data/shards.h"
#include "core/text/special_tokens.h"

namespace tiller::rl {

std::vector<std::string_view> split_documents(std::string_view corpus) {
  std::vector<std::string_view> documents;
  const std::string_view separator = special_tokens::kEndOfText;
  size_t begin = 0;
  while (begin <= corpus.size()) {
    size_t end = corpus.find(separator, begin);
    if (end == std::string_view::npos) end = corpus.size();
    if (end > begin) documents.push_back(corpus.substr(begin, end - begin));
    begin = end + separator.size();
  }
  return documents;
}

Tokenizer train_corpus_tokenizer(const std::vector<std::string_view>& documents,
                                 int64_t vocab_size) {
  int64_t minimum = 256 + static_cast<int64_t>(special_tokens::kAll.size());
  TILLER_CHECK(vocab_size >= minimum,
               "train_corpus_tokenizer: vocab_size {} is below the {} byte and special tokens",
               vocab_size, minimum);
  BpeTrainer trainer;
  for (std::string_view document : documents) trainer.add_text(document);
  BpeTrainOptions options;
  options.vocab_size = vocab_size;
  options.special_tokens.assign(special_tokens::kAll.begin(), special_tokens::kAll.end());
  return trainer.train(options);
}

CorpusShards write_corpus_shards(const std::vector<std::string_view>& documents,
                                 const Tokenizer& tokenizer, const std::filesystem::path& dir,
                                 double val_fraction) {
  TILLER_CHECK(val_fraction > 0.0 && val_fraction <= 0.5,
               "write_corpus_shards: val_fraction {} must be in (0, 0.5]", val_fraction);
  TILLER_CHECK(documents.size() >= 2,
               "write_corpus_shards: {} documents; need at least 2 to hold one out",
               documents.size());
  const auto every = static_cast<size_t>(std::lround(1.0 / val_fraction));
  const TokenId end_of_text = tokenizer.token_id(special_tokens::kEndOfText);

  std::vector<TokenId> train, val;
  for (size_t i = 0; i < documents.size(); ++i) {
    std::vector<TokenId>& destination = (i % every == every - 1) ? val : train;
    std::vector<TokenId> ids = tokenizer.encode(documents[i]);
    destination.insert(destination.end(), ids.begin(), ids.end());
    destination.push_back(end_of_text);
  }

  std::filesystem::create_directories(dir);
  CorpusShards shards;
  shards.tokenizer_path = dir / "tokenizer.json";
  tokenizer.save_tokenizer_json(shards.tokenizer_path.string());
  const int width = shard_token_width(tokenizer.vocab_size());
  auto train_path = dir / "train.bin", val_path = dir / "val.bin";
  write_token_shard(train_path, train, width);
  write_token_shard(val_path, val, width);
  shards.train_shards = {train_path.string()};
  shards.val_shards = {val_path.string()};
  shards.train_tokens = static_cast<int64_t>(train.size());
  shards.val_tokens = static_cast<int64_t>(val.size());
  shards.vocab_size = tokenizer.vocab_size();
  return shards;
}

namespace {

// What decides the bytes of the outputs; a data.json holding the same object means reuse.
nlohmann::json data_fingerprint(const WorldConfig& world, const CorpusShardOptions& options) {
  return {{"world_seed", world.seed},
          {"num_entities", world.num_entities},
          {"num_towns", world.num_towns},
          {"mentions_per_fact", world.mentions_per_fact},
          {"vocab_size", options.vocab_size},
          {"val_fraction", options.val_fraction},
          {"tokenizer_path", options.tokenizer_path}};
}

}  // namespace

CorpusShards prepare_world_pretraining_data(const WorldConfig& world,
                                            const std::filesystem::path& dir,
                                            const CorpusShardOptions& options) {
  const auto record_path = dir / "data.json";
  const nlohmann::json fingerprint = data_fingerprint(world, options);
  if (std::filesystem::exists(record_path)) {
    auto record = nlohmann::json::parse(read_file_bytes(record_path), nullptr, false);
    if (!record.is_discarded() && record.value("fingerprint", nlohmann::json()) == fingerprint &&
        std::filesystem::exists(dir / "train.bin") && std::filesystem::exists(dir / "val.bin") &&
        std::filesystem::exists(dir / "tokenizer.json")) {
      CorpusShards shards;
      shards.tokenizer_path = dir / "tokenizer.json";
      shards.train_shards = {(dir / "train.bin").string()};
      shards.val_shards = {(dir / "val.bin").string()};
      shards.train_tokens = record.at("train_tokens").get<int64_t>();
      shards.val_tokens = record.at("val_tokens").get<int64_t>();
      shards.vocab_size = record.at("vocab_size").get<int64_t>();
      shards.reused = true;
      return shards;
    }
  }

  const std::string corpus = World(world).pretraining_corpus();
  const auto documents = split_documents(corpus);
  const Tokenizer tokenizer = options.tokenizer_path.empty()
                                  ? train_corpus_tokenizer(documents, options.vocab_size)
                                  : Tokenizer::load(options.tokenizer_path);
  CorpusShards shards = write_corpus_shards(documents, tokenizer, dir, options.val_fraction);
  nlohmann::json record = {{"fingerprint", fingerprint},
                           {"train_tokens", shards.train_tokens},
                           {"val_tokens", shards.val_tokens},
                           {"vocab_size", shards.vocab_size},
                           {"documents", documents.size()}};
  write_file_atomic(record_path, record.dump(2) + "\n");
  return shards;
}

}  // namespace tiller::rl
