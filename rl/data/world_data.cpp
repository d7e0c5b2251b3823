// World adapters (see rl/data/world_data.h).
#include "rl/data/world_data.h"

#include <nlohmann/json.hpp>

#include <set>

#include "core/data/rows.h"
#include "core/io/atomic_file.h"
#include "core/text/chat.h"
#include "kernels/error.h"

namespace tiller::rl {

SftDataset world_sft_dataset(const std::vector<world::SftExample>& examples,
                             const Tokenizer& tokenizer, const SftDataOptions& options) {
  std::vector<std::vector<ChatMessage>> conversations;
  std::vector<std::string> sources;
  for (size_t i = 0; i < examples.size(); ++i) {
    conversations.push_back(examples[i].messages);
    sources.push_back(fmt::format("world example {}", i));
  }
  TILLER_CHECK(!conversations.empty(), "sft data: the world gave no SFT examples");
  return SftDataset::from_conversations(conversations, sources, tokenizer, options);
}

WorldPrompts world_training_prompts(const World& world, const Tokenizer& tokenizer, int64_t room) {
  WorldPrompts set;
  for (const world::PreferencePair& pair : world.preference_pairs(world::Split::kTrain)) {
    std::vector<int32_t> ids = render_generation_prompt(tokenizer, pair.prompt);
    if (static_cast<int64_t>(ids.size()) > room || set.expected.count(ids)) continue;
    set.expected.emplace(ids, pair.question.expected);
    set.tokens.push_back(std::move(ids));
  }
  TILLER_CHECK(!set.tokens.empty(), "world: no training prompt fits in {} tokens", room);
  return set;
}

int64_t drop_prompts_answered_in(WorldPrompts& prompts,
                                 const std::vector<std::filesystem::path>& sft_data) {
  std::set<std::string> taught;
  for (const data::Row& row : data::read_rows(sft_data).rows)
    for (const data::Message& message : row.messages)
      if (message.role == "assistant") taught.insert(message.content);
  WorldPrompts kept;
  for (const std::vector<int32_t>& ids : prompts.tokens) {
    const world::Expected& expected = prompts.expected.at(ids);
    if (taught.count(expected.sentence())) continue;
    kept.expected.emplace(ids, expected);
    kept.tokens.push_back(ids);
  }
  TILLER_CHECK(!kept.tokens.empty(),
               "world: every one of the {} training prompts asks a fact the SFT data states; "
               "nothing is left to train on",
               prompts.tokens.size());
  const auto dropped = static_cast<int64_t>(prompts.tokens.size() - kept.tokens.size());
  prompts = std::move(kept);
  return dropped;
}

std::vector<PreferenceExample> preference_examples(
    const Tokenizer& tokenizer, const std::vector<world::PreferencePair>& pairs) {
  std::vector<PreferenceExample> out;
  out.reserve(pairs.size());
  for (const world::PreferencePair& pair : pairs)
    out.push_back({render_generation_prompt(tokenizer, pair.prompt),
                   tokenizer.encode(pair.chosen, /*allow_special=*/true),
                   tokenizer.encode(pair.rejected, /*allow_special=*/true), 0.f});
  return out;
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
