// Reward-model accuracy per kind of rejected answer (see rl/reports/reward_accuracy.h).
#include "rl/reports/reward_accuracy.h"

#include <cmath>

#include "rl/data/world_data.h"

namespace tiller::rl {

double PairCounts::accuracy() const {
  return total > 0 ? static_cast<double>(correct) / static_cast<double>(total) : std::nan("");
}

RewardAccuracy reward_accuracy(RewardModel& model, const Tokenizer& tokenizer,
                               const std::vector<world::PreferencePair>& pairs,
                               int64_t max_length, int64_t batch_size) {
  std::vector<std::vector<int32_t>> prompts, chosen, rejected;
  for (const PreferenceExample& e : preference_examples(tokenizer, pairs)) {
    prompts.push_back(e.prompt);
    chosen.push_back(e.chosen);
    rejected.push_back(e.rejected);
  }
  const std::vector<float> r_chosen = model.score(prompts, chosen, false, batch_size, max_length);
  const std::vector<float> r_rejected =
      model.score(prompts, rejected, false, batch_size, max_length);
  RewardAccuracy accuracy;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const int64_t right = r_chosen[i] > r_rejected[i] ? 1 : 0;
    PairCounts& kind =
        accuracy.by_rejection[std::string(world::rejection_name(pairs[i].rejection))];
    kind.correct += right;
    ++kind.total;
    accuracy.all.correct += right;
    ++accuracy.all.total;
  }
  return accuracy;
}

}  // namespace tiller::rl
