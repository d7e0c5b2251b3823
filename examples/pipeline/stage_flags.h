// The flags the pipeline gives each stage program: its defaults for a full run (each measured and
// explained in stage_flags.cpp) or the tiny sizes of the ctest smoke run, each default giving way
// to the same flag in the user's --<stage>-args, which are appended after them.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace pipeline {

using FlagDefaults = std::vector<std::pair<std::string, std::string>>;

// `defaults` as flags, leaving out each one that `extra` (the user's flags) names itself as a
// whole word ("--replay" is not given by "--replay-rows"): CLI11 refuses a flag given twice.
std::vector<std::string> defaults_unless_given(const FlagDefaults& defaults,
                                               const std::string& extra);

struct UserStageArgs {  // --<stage>-args as the user typed them
  std::string pretrain, sft, reward, ppo, dpo, grpo;
};

struct StageFlags {
  std::vector<std::string> pretrain, sft, reward, ppo, dpo, grpo;
};

// `replay_shard`: the pretraining data SFT replays (<out>/pretrain/data/train.bin).
StageFlags stage_flags(const UserStageArgs& user, bool tiny,
                       const std::filesystem::path& replay_shard);

}  // namespace pipeline
