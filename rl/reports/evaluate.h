// Evaluation on the built-in world: greedy chat completions of the held-out eval prompts, scored
// by the world's exact scorer — the one yardstick shared by the SFT, reward-model and PPO stages.
//
// Each prompt is rendered with render_generation_prompt (core/chat.h) and completed by
// rl::generate at temperature 0 with <|end|> as the stop token, in batches. The raw completion
// handed to the scorer is the decoded generated tokens, the <|end|> included when the model
// emitted it — exactly what world::score expects. A row that reaches max_new_tokens without
// <|end|> simply fails ends_turn.
//
// An optional callback scores (prompt, response) pairs with anything else — the reward model
// plugs in here — and its mean is reported beside the world's rates.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/models/model.h"
#include "core/text/chat.h"
#include "core/text/tokenizer.h"
#include "core/world/world.h"

namespace tiller::rl {

// `response` is the raw completion (with <|end|> when generated); returns a scalar score.
using ResponseScorer =
    std::function<double(const std::vector<ChatMessage>& prompt, const std::string& response)>;

struct EvaluationConfig {
  int64_t max_new_tokens = 48;  // capped per batch by the model's max_seq_len
  int64_t batch_size = 16;      // prompts generated together (left-padded)
  int64_t limit = 0;            // evaluate only the first `limit` items; 0 = all
  std::string jsonl_path;       // per-example records; empty = none
  ResponseScorer scorer;        // optional extra score, e.g. a reward model
  // Other prompt layouts (few-shot: rl/reports/few_shot.h's few_shot_evaluation). When set: the
  // prompt tokens of items[index]; the stop tokens (empty: <|end|>); the completion as the world
  // scorer reads it (the report keeps the raw one).
  std::function<std::vector<TokenId>(const world::EvalItem& item, int64_t index)> render_prompt;
  std::vector<TokenId> stop_tokens;
  std::function<std::string(std::string_view completion)> response_for_scoring;
};

struct EvaluatedExample {
  int eval_id = 0;
  std::string question;
  std::string expected;  // the canonical sentence
  std::string response;  // raw completion
  int64_t response_tokens = 0;
  world::Score score;
  std::optional<double> extra_score;  // the callback's value
};

struct EvaluationReport {
  int64_t prompts = 0;
  double exact_match_rate = 0.0;   // exact_match (the answer is the canonical sentence)
  double format_rate = 0.0;        // format_ok
  double fact_correct_rate = 0.0;  // right value in the right template
  double ends_turn_rate = 0.0;     // <|end|> emitted within max_new_tokens
  double mean_reward = 0.0;        // world::reward_for, the PPO reward
  double mean_response_tokens = 0.0;
  std::optional<double> mean_extra_score;  // set when a scorer was given
  double seconds = 0.0;
  std::vector<EvaluatedExample> examples;

  std::string summary() const;  // "exact 12.5%  format 80.0%  fact 20.0%  ..." on one line
};

// Runs without autograd and leaves the model's weights untouched. Throws when `items` is empty or
// a prompt leaves no room to generate within max_seq_len.
EvaluationReport evaluate_world(Transformer& model, const Tokenizer& tokenizer,
                                const std::vector<world::EvalItem>& items,
                                const EvaluationConfig& config = {});

}  // namespace tiller::rl
