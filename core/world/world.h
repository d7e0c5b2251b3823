// The built-in task world: a seeded, self-contained generator of every data set the alignment
// pipeline needs (pretraining prose → SFT chats → preference pairs → verifiable PPO reward), about
// invented creatures and small arithmetic, so that a tiny transformer can learn it on a laptop and
// every answer can be checked exactly. examples/WORLD.md documents the world and the scoring rules.
//
// Design choices a reader must keep:
// - Determinism is part of the contract: the same WorldConfig gives byte-identical outputs on every
//   platform. Randomness comes only from world_detail.h's Rng (over kernels/random.h's Stream),
//   never from <random> distributions, whose results differ between standard libraries. Each
//   product (entities, splits, SFT, eval, preferences, corpus) draws from its own stream, so asking
//   for more SFT examples does not change the entities or the eval set.
// - Every question has a key: "<task>/<subject>" (e.g. "home_town/Zorvik", "arithmetic/7 plus 5").
//   Keys are partitioned once: eval keys never occur in SFT or preference prompts, and held-out
//   preference keys never occur in training preference prompts. The pretraining corpus states every
//   fact, eval facts included, in the exact canonical answer sentence at least once.
// - An answer is one canonical sentence `prefix + value + suffix` ("Zorvik lives in " "Pelmora"
// ".").
//   A model's raw completion must end its turn with special_tokens::kEndOfTurn; score() reads the
//   text before that token. Chats use core/chat.h's ChatMessage, so they render with render_chat.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/text/chat.h"
#include "core/text/special_tokens.h"

namespace tiller::world {

enum class TaskType {
  kColour,
  kHomeTown,
  kFavouriteFood,
  kAge,
  kLegs,
  kArithmetic,
  kSpelling,  // "How do you spell Zorvik?" → "Zorvik is spelled Z-O-R-V-I-K."
  kCapitals,  // "Write Zorvik in capital letters." → "Zorvik in capital letters is ZORVIK."
};
inline constexpr int kNumTaskTypes = 8;
std::string_view task_name(TaskType task);  // "colour", "home_town", ...
TaskType task_from_index(int index);        // 0 .. kNumTaskTypes-1, in declaration order
// The attributes a creature has and only the corpus teaches: colour, home_town, favourite_food,
// age and legs (spelling and capitals follow from the name; arithmetic has no creature).
bool is_creature_attribute(TaskType task);

// The noisy SFT pool (World::noisy_sft_pool): what share of its rows carries each kind of noise;
// the rest are clean. Every share is in [0, 1] and together they are at most 1.
struct PoolNoiseShares {
  double wrong_fact = 0.10;           // the final answer states a wrong value
  double lower_case = 0.03;           // the canonical sentence, all lower case
  double answer_label = 0.03;         // "Answer: <value>" instead of the sentence
  double bare_value = 0.03;           // the value alone ("Pelmora." or "Pelmora")
  double missing_end_of_turn = 0.03;  // the answer runs on into the next user turn
  double rambling = 0.06;             // the answer repeats itself (world::score's rambling)
  double truncated = 0.05;            // the sentence cut off at a word boundary
  double exact_duplicate = 0.10;      // a verbatim copy of an earlier row
  double near_duplicate = 0.08;       // an earlier row with its case, spacing or opener changed
  double leaked_eval = 0.02;          // an eval question with its canonical answer
  // Leaked rows repeat a few eval questions rather than touching all of them (contamination comes
  // in clumps): they ask only this share of the eval prompts.
  double leaked_eval_prompts = 0.2;
};

struct WorldConfig {
  uint64_t seed = 1;
  int num_entities = 100;  // 25 per task are eval facts; fewer creatures, more exposures each
  int num_towns = 12;
  // Times the corpus states each fact (the first in canonical sentences, the rest in varied
  // templates and orders). Many varied statements, few epochs: at 4 mentions the pipeline's base
  // memorised its 70k-token corpus (train loss 0.02, validation rising from step 400) and the
  // probe knew 50% of creature attributes; at 24 (1.4 MB, ~8 epochs in the same 1,500 steps) it
  // knows 82% (issue 11's measurements: examples/pipeline/main.cpp, kPretrainDefaults).
  int mentions_per_fact = 24;
  int num_sft_examples = 1000;  // LIMA-sized; spread evenly over the task types
  double sft_multi_turn_fraction = 0.2;
  int num_eval_prompts = 200;       // spread evenly over the task types
  int num_preference_pairs = 2000;  // train + held-out
  double preference_heldout_fraction = 0.1;
  // The control of the knowledge claims: creatures that appear nowhere (not in the corpus, SFT,
  // preferences or eval), one attribute question each, round-robin over the creature attributes.
  int num_unseen_prompts = 50;
  // The noisy SFT pool: chats that look automatically collected (see noisy_sft_pool). Its task
  // mix is skewed on purpose: colour and arithmetic each get 3 shares, the other tasks 1.
  int num_pool_examples = 10000;
  PoolNoiseShares pool_noise = {};
};

struct Entity {
  std::string name;
  std::string colour;
  std::string home_town;
  std::string favourite_food;
  int age = 0;
  int legs = 0;
};

// What a correct answer looks like: the sentence prefix + value + suffix, nothing else.
struct Expected {
  TaskType task = TaskType::kColour;
  std::string key;  // "<task>/<subject>", see the header comment
  std::string prefix;
  std::string value;
  std::string suffix;
  std::string sentence() const { return prefix + value + suffix; }
};

// One question as asked: the text depends on the template chosen for the key.
struct Question {
  std::string text;
  int template_index = 0;
  Expected expected;
  std::string template_key() const;  // key + "#" + template_index: one exact question form
};

struct SftExample {
  TaskType task = TaskType::kColour;  // task of the final question
  std::vector<Question> questions;    // every question asked, in order (more than one: multi-turn)
  std::vector<ChatMessage> messages;  // optional system, then user/assistant turns; ends assistant
};

struct EvalItem {
  int id = 0;  // index into World::eval_prompts()
  Question question;
  std::vector<ChatMessage> prompt;  // the conversation to complete: a single user turn
};

enum class Rejection { kWrongFact, kMalformed, kRambling, kMissingEndOfTurn };
std::string_view rejection_name(Rejection rejection);

// chosen and rejected are raw completions: they carry the end-of-turn token where one belongs, so
// a rejection can be "forgot to end the turn".
struct PreferencePair {
  Question question;
  std::vector<ChatMessage> prompt;
  std::string chosen;
  std::string rejected;
  Rejection rejection = Rejection::kWrongFact;
  bool held_out = false;
};

enum class Split { kTrain, kHeldOut };

// What one row of the noisy SFT pool carries. Only the last assistant turn of a chat is noisy;
// duplicates copy an earlier row whatever it carries (PoolRow::copied_noise says what).
enum class PoolNoise {
  kClean,
  kWrongFact,
  kLowerCase,
  kAnswerLabel,
  kBareValue,
  kMissingEndOfTurn,
  kRambling,
  kTruncated,
  kExactDuplicate,
  kNearDuplicate,
  kLeakedEval,
};
inline constexpr int kNumPoolNoiseKinds = 11;
std::string_view pool_noise_name(PoolNoise noise);  // "clean", "wrong_fact", ...

// One row of the noisy pool and its label. The label is ground truth for reports; a curation
// pipeline must never read it.
struct PoolRow {
  SftExample example;  // questions[].expected: what each turn should have answered
  PoolNoise noise = PoolNoise::kClean;
  PoolNoise copied_noise = PoolNoise::kClean;  // duplicates: the noise of the row they copy
  int duplicate_of = -1;                       // duplicates: the index of the (first) row copied
  int eval_id = -1;                            // leaked rows: the World::eval_prompts() index asked
};

struct Score {
  bool ends_turn = false;         // the end-of-turn token follows the answer
  bool single_sentence = false;   // starts upper-case or with a digit, one terminal '.', one line
  bool follows_template = false;  // prefix + a well-formed value of the task's kind + suffix
  bool rambling = false;          // a word run repeats back to back, or the answer is overlong
  bool format_ok = false;         // ends_turn && single_sentence && follows_template && !rambling
  bool fact_correct = false;      // follows_template and the value equals the expected value
  bool exact_match = false;       // the answer is exactly the canonical sentence
  std::string answer;             // the completion before the end-of-turn token, trimmed
  double reward = 0.0;            // reward_for(*this)
};

inline constexpr double kRewardCorrect = 1.0;      // exact_match && format_ok
inline constexpr double kRewardFormatOnly = 0.25;  // format_ok with a wrong fact
inline constexpr int kMaxAnswerChars = 160;        // longer answers count as rambling
inline constexpr int kMinAge = 2;                  // creatures' ages are drawn from this range
inline constexpr int kMaxAge = 95;

// The exact scorer (rules in WORLD.md). `response` is the raw model completion.
Score score(const Expected& expected, std::string_view response);
Score score(const EvalItem& item, std::string_view response);
// The verifiable PPO reward: kRewardCorrect, kRewardFormatOnly or 0.
double reward_for(const Score& score);

// The generation prompt as text, in the layout core/chat.h documents (which renders to token ids):
// "<|role|>\n{content}<|end|>\n" per message, then "<|assistant|>\n". Preference files need text.
std::string render_prompt(const std::vector<ChatMessage>& messages);
// The raw completion a perfect model produces: the canonical sentence then the end-of-turn token.
std::string completion_for(const Expected& expected);

class World {
 public:
  explicit World(WorldConfig config = {});

  const WorldConfig& config() const { return config_; }
  const std::vector<Entity>& entities() const { return entities_; }
  const std::vector<std::string>& towns() const { return towns_; }

  // Prose documents joined by kEndOfText; regenerated on each call (deterministic).
  std::string pretraining_corpus() const;
  const std::vector<SftExample>& sft_examples() const { return sft_; }
  const std::vector<EvalItem>& eval_prompts() const { return eval_; }
  std::vector<PreferencePair> preference_pairs(Split split) const;
  const std::vector<PreferencePair>& all_preference_pairs() const { return preferences_; }
  // The large noisy SFT pool (config().num_pool_examples rows, config().pool_noise), built on
  // the training facts like sft_examples() but from its own stream; regenerated on each call
  // (deterministic) because only the pipeline's curation needs it.
  std::vector<PoolRow> noisy_sft_pool() const;

  Score score(int eval_id, std::string_view response) const;

  // Creatures absent from every data set, and questions about them asked like eval_prompts()
  // (single user turn, a random question template; ids index this list). No model can know the
  // answers: their accuracy measures chance.
  const std::vector<Entity>& unseen_entities() const { return unseen_entities_; }
  const std::vector<EvalItem>& unseen_prompts() const { return unseen_; }

  // Every value the answer to `expected` could take, the right one included, without repeats and
  // in a fixed order: the candidates of the likelihood probe (rl/reports/probe.h).
  //   colour, favourite_food  the 12 pool words          home_town  this world's towns
  //   age                     every age the generator draws (kMinAge..kMaxAge)
  //   legs                    2, 4, 6, 8                 arithmetic every result of that operator
  //   spelling, capitals      the name with one pair of adjacent different letters swapped (the
  //                           wrong-fact family), and the name itself
  std::vector<std::string> admissible_values(const Expected& expected) const;

  // Keys of each partition, for callers that build their own prompt sets (e.g. PPO prompts).
  const std::vector<Expected>& training_facts(TaskType task) const;
  const std::vector<Expected>& eval_facts(TaskType task) const;

 private:
  void build_entities();
  void build_facts();
  void build_eval();
  void build_sft();
  void build_preferences();
  void build_unseen();

  WorldConfig config_;
  std::vector<std::string> towns_;
  std::vector<Entity> entities_;
  // Per task: the facts the model may be trained on, and the facts reserved for evaluation.
  std::vector<std::vector<Expected>> training_facts_;
  std::vector<std::vector<Expected>> eval_facts_;
  std::vector<SftExample> sft_;
  std::vector<EvalItem> eval_;
  std::vector<PreferencePair> preferences_;
  std::vector<Entity> unseen_entities_;
  std::vector<EvalItem> unseen_;
};

// JSONL / text writers, crash-safe through write_file_atomic (core/atomic_file.h); errors name
// the path.
void write_sft_jsonl(const std::string& path, const std::vector<SftExample>& examples);
void write_preferences_jsonl(const std::string& path, const std::vector<PreferencePair>& pairs);
// The pool as {"messages": [...]} lines (what a curator sees), and its labels, one line per row:
// {"row", "noise", "task", "key", "duplicate_of", "copied_noise", "eval_id"}.
void write_pool_jsonl(const std::string& path, const std::vector<PoolRow>& rows);
void write_pool_labels_jsonl(const std::string& path, const std::vector<PoolRow>& rows);
void write_eval_jsonl(const std::string& path, const std::vector<EvalItem>& items);
void write_text(const std::string& path, std::string_view text);

}  // namespace tiller::world

namespace tiller {
using world::World;
using world::WorldConfig;
}  // namespace tiller
