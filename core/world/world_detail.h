// Internals shared by the world_*.cpp files: the portable random stream and the text templates.
// Not part of the API; include core/world.h instead.
//
// Randomness: Rng is a thin convenience over kernels/random.h's Stream (the project's one random
// source), never std:: distributions, whose outputs differ between standard libraries.
//
// Templates use fmt named fields: {n} subject name, {v} value, {a} {b} operands, {op} operator word
// ("plus"), {sym} operator symbol ("+"). Index 0 of every statement table is the canonical answer
// sentence, which the corpus must state at least once per fact (eval facts included).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/world/world.h"
#include "kernels/random.h"

namespace tiller::world::detail {

class Rng {
 public:
  explicit Rng(uint64_t seed) : stream_(seed) {}
  // A stream for one product of the world: independent of how much the other products draw.
  Rng(uint64_t seed, std::string_view purpose);

  uint64_t next();
  int below(int bound);            // uniform in [0, bound); bound > 0
  int between(int low, int high);  // uniform in [low, high]
  bool chance(double probability);

  template <typename T>
  void shuffle(std::vector<T>& items) {
    random::shuffle(items, stream_);
  }
  template <typename T>
  const T& pick(const std::vector<T>& items) {
    return items[static_cast<size_t>(below(static_cast<int>(items.size())))];
  }

 private:
  random::Stream stream_;
};

// The subject of a key ("Zorvik", "7 plus 5") and, for arithmetic, its parts.
struct Subject {
  std::string name;
  int a = 0;
  int b = 0;
  std::string op;  // "plus", "minus", "times"
};
Subject parse_subject(const Expected& expected);

std::string task_key(TaskType task, std::string_view subject);
Expected entity_fact(TaskType task, const Entity& entity);
Expected arithmetic_fact(int a, std::string_view op, int b);
// Every arithmetic fact of the world, grouped by first operand then operator: a plus 0..20,
// a minus 0..a, and (for a <= 12) a times 0..12, for a in 0..20.
std::vector<Expected> all_arithmetic_facts();
std::string spelled(std::string_view name);     // "Zorvik" → "Z-O-R-V-I-K"
std::string uppercased(std::string_view name);  // "Zorvik" → "ZORVIK"

// Questions a user may ask for each task; any index works for any key of that task.
const std::vector<std::string_view>& question_templates(TaskType task);
// Prose statements of one fact, index 0 is the canonical answer sentence.
const std::vector<std::string_view>& statement_templates(TaskType task);
// Fills a template with the subject and value of `expected`.
std::string fill(std::string_view template_text, const Expected& expected);
// Statement `template_index` (modulo the task's count) of one fact.
std::string statement(const Expected& fact, int template_index);

// Corpus pieces shared by the world and its new region (world_corpus.cpp):
// one sentence per task of `tasks` about `entity` (the canonical one on mention 0, a drawn
// phrasing after), in shuffled order, joined by spaces;
std::string creature_sentences(const Entity& entity, std::span<const TaskType> tasks, int mention,
                               Rng& rng);
// a terse quiz sheet ("Q: age of Zorvik? A: 34.") over the creature attributes of `group`.
std::string quiz_sheet(const std::vector<const Entity*>& group, Rng& rng);

// Pools the generator draws attribute values from.
const std::vector<std::string>& colours();
const std::vector<std::string>& foods();
const std::vector<int>& leg_counts();

// Noisy answers, shared by the preference pairs (world.cpp) and the noisy SFT pool
// (world_pool.cpp). None carries the end-of-turn token except malformed_completion, which is a
// raw completion.
std::string wrong_value(const Expected& expected, const std::vector<std::string>& towns, Rng& rng);
std::string lowercased(std::string text);
std::string malformed_completion(const Expected& expected, Rng& rng);
std::string rambling_answer(const Expected& expected, Rng& rng);

// Chat dressing shared by the SFT chats and the pool.
const std::vector<std::string>& system_prompts();
const std::vector<std::string>& follow_up_openers();

}  // namespace tiller::world::detail
