// Few-shot (in-context) prompts: k solved examples placed before a question, as chat turns or as
// plain text, chosen, ordered and mixed by seeded rules, and cut to fit the context.
//
// Formats (token by token; tests/test_few_shot.cpp checks both):
//   chat   render_generation_prompt (core/text/chat.h) of [user q1, assistant a1, ..., user q]:
//          each shot is a finished user/assistant exchange, then the question's user turn and
//          "<|assistant|>\n". Generation stops at <|end|>.
//   plain  <|endoftext|> then encode("Q: q1\nA: a1\nQ: q2\nA: a2\n...Q: q\nA:") with special
//          tokens not allowed: the "Q: ... A: ..." lines of the world's quiz sheets, which a base
//          model saw in pretraining, with the question and its canonical answer sentence.
//          Generation stops at any token holding a newline (or <|endoftext|>); the answer is the
//          line, its leading space dropped, and a completed line counts as an ended turn.
//
// Selection (select_shots): shots come from a pool of training examples only, and a shot whose
// key equals the question's key is never used, so an eval fact never answers itself.
//   mix same-task    all k shots from the question's task;
//   mix mixed-tasks  k/2 (rounded down) from the question's task, the rest from the other tasks;
//   order random           a seeded shuffle of the chosen shots;
//   order same-task-first  the question's-task shots first (furthest from the question);
//   order same-task-last   the question's-task shots last (next to the question).
// Draws use kernels/random.h with a stream derived from (seed, query index), so a question's shots
// do not depend on which other questions are evaluated.
//
// Context: render_few_shot_prompt drops shots from the front (the furthest from the question)
// until the prompt fits max_tokens and reports how many it dropped; the question is never cut.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/text/chat.h"
#include "core/text/tokenizer.h"
#include "core/world/world.h"
#include "rl/reports/evaluate.h"

namespace tiller::rl {

enum class ShotFormat { chat, plain };
enum class ShotOrder { random, same_task_first, same_task_last };
enum class ShotMix { same_task, mixed_tasks };

// "chat" | "plain", "random" | "same-task-first" | "same-task-last", "same-task" | "mixed-tasks";
// anything else is a tiller::Error listing the choices.
ShotFormat parse_shot_format(std::string_view name);
ShotOrder parse_shot_order(std::string_view name);
ShotMix parse_shot_mix(std::string_view name);
std::string_view shot_format_name(ShotFormat format);
std::string_view shot_order_name(ShotOrder order);
std::string_view shot_mix_name(ShotMix mix);

struct FewShotExample {
  std::string task;      // shots are mixed and ordered by task
  std::string key;       // the fact it asks about; never shown for a question of the same key
  std::string question;  // user text
  std::string answer;    // the solved answer (assistant text)
};

struct FewShotOptions {
  int64_t shots = 0;  // k
  ShotFormat format = ShotFormat::chat;
  ShotOrder order = ShotOrder::random;
  ShotMix mix = ShotMix::same_task;
  uint64_t seed = 0;
};

// The k shots for question `query_index` of task `task` and key `key`, ordered as asked. When the
// question's task has too few examples (or `task` is empty, unknown) the rest come from the other
// tasks; fewer than k only when the whole pool has too few eligible examples.
std::vector<FewShotExample> select_shots(const std::vector<FewShotExample>& pool,
                                         std::string_view task, std::string_view key,
                                         const FewShotOptions& options, uint64_t query_index);

struct FewShotPrompt {
  std::vector<TokenId> tokens;
  int64_t shots_used = 0;
  int64_t shots_dropped = 0;  // cut from the front to fit max_tokens
};

// Throws when the question alone (no shots) is longer than max_tokens.
FewShotPrompt render_few_shot_prompt(const Tokenizer& tokenizer,
                                     const std::vector<FewShotExample>& shots,
                                     const std::string& question, ShotFormat format,
                                     int64_t max_tokens);

// The messages of the chat format (shots as finished exchanges, then the question's user turn).
std::vector<ChatMessage> few_shot_messages(const std::vector<FewShotExample>& shots,
                                           const std::string& question);
// The text of the plain format after <|endoftext|>.
std::string few_shot_plain_text(const std::vector<FewShotExample>& shots,
                                const std::string& question);

// Tokens that end a completion in this format (see the header comment).
std::vector<TokenId> few_shot_stop_tokens(const Tokenizer& tokenizer, ShotFormat format);
// A raw completion as world::score reads it: chat unchanged; plain cut at its first newline, the
// leading space dropped, and the end-of-turn token appended when the line was finished.
std::string few_shot_response_for_scoring(std::string_view completion, ShotFormat format);

// The world's shot pool: every question of the SFT examples (training keys only; eval keys never
// occur in SFT), one per key, with its canonical answer sentence.
std::vector<FewShotExample> world_shot_pool(const World& world);

struct FewShotStats {
  int64_t prompts = 0;
  int64_t shots_used = 0;
  int64_t prompts_truncated = 0;  // prompts that lost shots to the context limit
  int64_t shots_dropped = 0;
};

// `base` with its prompt hooks set to few-shot prompts of `options` drawn from `pool`, each cut
// to max_seq_len - base.max_new_tokens tokens; the query index of select_shots is the item's
// position in the evaluated list. `tokenizer` must outlive the returned config. Counts go to
// `stats` when given.
EvaluationConfig few_shot_evaluation(EvaluationConfig base, const Tokenizer& tokenizer,
                                     std::vector<FewShotExample> pool, FewShotOptions options,
                                     int64_t max_seq_len,
                                     std::shared_ptr<FewShotStats> stats = nullptr);

}  // namespace tiller::rl
