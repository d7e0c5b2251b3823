// A reward model's accuracy on the world's preference pairs, overall and per kind of rejected
// answer (wrong fact, malformed, rambling, missing <|end|>): which mistakes it can tell apart.
// A pair counts as right when r(chosen) > r(rejected); a tie counts as wrong, as in
// RewardTrainer's accuracy. Used by examples/reward and the pipeline's report.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/text/tokenizer.h"
#include "core/world/world.h"
#include "rl/heads/reward.h"

namespace tiller::rl {

struct PairCounts {
  int64_t correct = 0;
  int64_t total = 0;
  double accuracy() const;  // NaN when total is 0
};

struct RewardAccuracy {
  PairCounts all;
  std::map<std::string, PairCounts> by_rejection;  // world::rejection_name -> counts
};

// Scores chosen and rejected of every pair (raw rewards, no normalisation) in batches of
// batch_size, prompt + response truncated from the start to max_length (0: the backbone's).
RewardAccuracy reward_accuracy(RewardModel& model, const Tokenizer& tokenizer,
                               const std::vector<world::PreferencePair>& pairs,
                               int64_t max_length = 0, int64_t batch_size = 32);

}  // namespace tiller::rl
