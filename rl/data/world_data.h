// Adapters from the built-in task world (core/world) to the trainers' generic data types, kept
// apart so rl/data's formats (JSONL, conversations, preference pairs, token shards) know nothing
// about the world.
//
// prepare_world_pretraining_data reuses its files when a previous call with the same world seed,
// size and vocabulary left them there (recorded in data.json), so a pipeline that calls it at
// every start pays for tokenizer training once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <vector>

#include "core/text/tokenizer.h"
#include "core/world/world.h"
#include "rl/data/pretrain_data.h"
#include "rl/data/reward_data.h"
#include "rl/data/sft_data.h"

namespace tiller::rl {

// The world's curated SFT chats; sources read "world example <i>".
SftDataset world_sft_dataset(const std::vector<world::SftExample>& examples,
                             const Tokenizer& tokenizer, const SftDataOptions& options = {});

// The world's pairs: the prompt through render_generation_prompt, the raw completions encoded
// with special tokens allowed — the same tokens as the text form of the files the world writes.
std::vector<PreferenceExample> preference_examples(const Tokenizer& tokenizer,
                                                   const std::vector<world::PreferencePair>& pairs);

// The unique training prompts of the world's preference pairs that fit in `room` tokens, rendered
// as generation prompts, each with the answer the world's scorer expects (PPO's and GRPO's
// verifiable reward). Throws when none fits.
struct WorldPrompts {
  std::vector<std::vector<int32_t>> tokens;
  std::map<std::vector<int32_t>, world::Expected> expected;
};
WorldPrompts world_training_prompts(const World& world, const Tokenizer& tokenizer, int64_t room);

// Leaves out the prompts whose expected answer sentence is an assistant turn of a chat in the
// JSONL files `sft_data` ({"messages": [...]} rows, as sft reads them): the facts SFT already
// taught, which its model answers from memory, so that RL practises on facts only pretraining
// stated. Returns how many were left out; throws (naming the file and line) on a malformed row
// and when no prompt would be left.
int64_t drop_prompts_answered_in(WorldPrompts& prompts,
                                 const std::vector<std::filesystem::path>& sft_data);

// The built-in world's pretraining corpus, end to end: corpus -> tokenizer -> shards in `dir`.
CorpusShards prepare_world_pretraining_data(const WorldConfig& world,
                                            const std::filesystem::path& dir,
                                            const CorpusShardOptions& options = {});

}  // namespace tiller::rl
