// World construction: invented entities, the train/eval partition of every task's facts, and the
// SFT, eval and preference sets built on that partition.
//
// Invariants kept here (and checked by tests/test_world.cpp):
// - eval_facts_[t] and training_facts_[t] are disjoint; SFT and preference prompts (every turn of a
//   multi-turn chat included) only ask training facts, so no eval key reaches SFT or RL.
// - Preference training pairs and held-out pairs use disjoint keys (the tail of each task's
//   training facts is held out).
// - Task types are assigned round-robin, so every count differs by at most one between tasks, and
//   rejection kinds cycle within each task.
// - Unseen creatures come from their own stream ("unseen") after everything else is built, so
//   adding them changes no other product; their names are in no data set and neither start nor
//   are started by a corpus creature's name.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include "core/world/world_detail.h"
#include "kernels/error.h"

namespace tiller::world {
namespace {

using detail::Rng;

std::string invented_name(Rng& rng, int syllables, std::string_view ending) {
  static const std::vector<std::string> onsets = {"b",  "d",  "f",  "g",  "k",  "l", "m",
                                                  "n",  "p",  "r",  "s",  "t",  "v", "z",
                                                  "br", "dr", "kr", "tr", "sh", "th"};
  static const std::vector<std::string> vowels = {"a", "e", "i", "o", "u", "ai", "ou"};
  static const std::vector<std::string> codas = {"", "", "", "n", "r", "l", "s", "k"};
  std::string name;
  for (int i = 0; i < syllables; ++i) name += rng.pick(onsets) + rng.pick(vowels);
  name += ending.empty() ? rng.pick(codas) : std::string(ending);
  name[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(name[0])));
  return name;
}

std::vector<std::string> unique_names(Rng& rng, int count, std::set<std::string>& taken,
                                      bool towns) {
  static const std::vector<std::string> town_endings = {"ford", "mere", "by",
                                                        "holm", "wick", "dale"};
  std::vector<std::string> names;
  for (int attempts = 0; static_cast<int>(names.size()) < count; ++attempts) {
    TILLER_CHECK(attempts < 1000 * count + 1000,
                 "world: could not invent {} distinct names; ask for fewer", count);
    std::string name = towns ? invented_name(rng, 2, rng.pick(town_endings))
                             : invented_name(rng, rng.between(2, 3), "");
    if (taken.insert(name).second) names.push_back(std::move(name));
  }
  return names;
}

// Round-robin share of `total` items for task `index`: the first total % k tasks get one more.
int share(int total, int index) {
  return total / kNumTaskTypes + (index < total % kNumTaskTypes ? 1 : 0);
}

Question make_question(const Expected& expected, int template_index) {
  const auto& templates = detail::question_templates(expected.task);
  Question question;
  question.template_index = template_index % static_cast<int>(templates.size());
  question.text = detail::fill(templates[static_cast<size_t>(question.template_index)], expected);
  question.expected = expected;
  return question;
}

int random_template(Rng& rng, TaskType task) {
  return rng.below(static_cast<int>(detail::question_templates(task).size()));
}

// A creature's attributes, drawn in a fixed order (the order keeps every world byte-identical).
Entity random_entity(std::string name, const std::vector<std::string>& towns, Rng& rng) {
  Entity entity;
  entity.name = std::move(name);
  entity.colour = rng.pick(detail::colours());
  entity.home_town = rng.pick(towns);
  entity.favourite_food = rng.pick(detail::foods());
  entity.age = rng.between(kMinAge, kMaxAge);
  entity.legs = rng.pick(detail::leg_counts());
  return entity;
}

}  // namespace

namespace detail {

std::string swap_adjacent_letters(std::string letters, Rng& rng) {
  int n = static_cast<int>(letters.size());
  int start = rng.below(std::max(n - 1, 1));
  for (int step = 0; step + 1 < n; ++step) {
    int i = (start + step) % (n - 1);
    if (letters[static_cast<size_t>(i)] != letters[static_cast<size_t>(i) + 1]) {
      std::swap(letters[static_cast<size_t>(i)], letters[static_cast<size_t>(i) + 1]);
      return letters;
    }
  }
  return letters.substr(0, letters.size() - 1);  // all letters equal: drop one instead
}

template <typename T>
T different_from(const std::vector<T>& pool, const T& current, Rng& rng) {
  T value = current;
  while (value == current) value = rng.pick(pool);
  return value;
}

std::string wrong_value(const Expected& expected, const std::vector<std::string>& towns, Rng& rng) {
  const std::string& right = expected.value;
  switch (expected.task) {
    case TaskType::kColour:
      return different_from(detail::colours(), right, rng);
    case TaskType::kFavouriteFood:
      return different_from(detail::foods(), right, rng);
    case TaskType::kHomeTown:
      return different_from(towns, right, rng);
    case TaskType::kLegs:
      return std::to_string(different_from(detail::leg_counts(), std::stoi(right), rng));
    case TaskType::kAge:
    case TaskType::kArithmetic: {
      int value = std::stoi(right);
      int delta = rng.between(1, 3);
      return std::to_string(value - delta >= 0 && rng.chance(0.5) ? value - delta : value + delta);
    }
    case TaskType::kSpelling:
      return detail::spelled(
          swap_adjacent_letters(detail::uppercased(detail::parse_subject(expected).name), rng));
    case TaskType::kCapitals:
      return swap_adjacent_letters(detail::uppercased(detail::parse_subject(expected).name), rng);
  }
  fail("world: no wrong value for task {}", task_name(expected.task));
}

std::string lowercased(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string malformed_completion(const Expected& expected, Rng& rng) {
  std::string sentence = expected.sentence();
  std::string end(special_tokens::kEndOfTurn);
  bool lowercase_differs = lowercased(sentence) != sentence;
  switch (rng.below(4)) {
    case 0:
      return sentence.substr(0, sentence.size() - 1) + end;  // no final period
    case 1:
      return expected.value + "." + end;  // bare value, no sentence
    case 2:
      if (lowercase_differs) return lowercased(sentence) + end;
      [[fallthrough]];
    default:
      return "Answer: " + expected.value + end;  // a label instead of the sentence
  }
}

std::string rambling_answer(const Expected& expected, Rng& rng) {
  std::string sentence = expected.sentence();
  switch (rng.below(3)) {
    case 0: {  // the whole answer, over and over
      std::string text = sentence;
      for (int copies = rng.between(2, 4); copies > 1; --copies) text += " " + sentence;
      return text;
    }
    case 1: {  // the value stutters
      std::string value = expected.value;
      for (int copies = rng.between(3, 4); copies > 1; --copies) value += " " + expected.value;
      return expected.prefix + value + expected.suffix;
    }
    default:  // the answer trails off into repeated filler
      return sentence + " I hope this helps. I hope this helps. I hope this helps.";
  }
}

const std::vector<std::string>& system_prompts() {
  static const std::vector<std::string> prompts = {
      "You are a helpful assistant. Answer in one short sentence.",
      "Answer every question with a single sentence that ends with a period.",
      "You know everything about the creatures of this world. Be brief."};
  return prompts;
}

const std::vector<std::string>& follow_up_openers() {
  static const std::vector<std::string> openers = {
      "Thanks. ", "Good. Next question: ", "And one more: ", "Great! "};
  return openers;
}

}  // namespace detail

World::World(WorldConfig config) : config_(config) {
  const WorldConfig& c = config_;
  TILLER_CHECK(c.num_entities >= 2, "world: num_entities is {}, needs at least 2", c.num_entities);
  TILLER_CHECK(c.num_towns >= 2, "world: num_towns is {}, needs at least 2", c.num_towns);
  TILLER_CHECK(c.mentions_per_fact >= 1, "world: mentions_per_fact is {}, needs at least 1",
               c.mentions_per_fact);
  TILLER_CHECK(c.num_sft_examples >= 0 && c.num_eval_prompts >= 0 && c.num_preference_pairs >= 0 &&
                   c.num_unseen_prompts >= 0,
               "world: counts must be non-negative (sft {}, eval {}, preferences {}, unseen {})",
               c.num_sft_examples, c.num_eval_prompts, c.num_preference_pairs,
               c.num_unseen_prompts);
  TILLER_CHECK(c.sft_multi_turn_fraction >= 0 && c.sft_multi_turn_fraction <= 1,
               "world: sft_multi_turn_fraction is {}, must be in [0, 1]",
               c.sft_multi_turn_fraction);
  TILLER_CHECK(c.preference_heldout_fraction >= 0 && c.preference_heldout_fraction < 1,
               "world: preference_heldout_fraction is {}, must be in [0, 1)",
               c.preference_heldout_fraction);
  const PoolNoiseShares& p = c.pool_noise;
  const double shares[] = {p.wrong_fact,          p.lower_case, p.answer_label, p.bare_value,
                           p.missing_end_of_turn, p.rambling,   p.truncated,    p.exact_duplicate,
                           p.near_duplicate,      p.leaked_eval};
  double total_share = 0;
  for (double share : shares) {
    TILLER_CHECK(share >= 0 && share <= 1, "world: a pool_noise share is {}, must be in [0, 1]",
                 share);
    total_share += share;
  }
  TILLER_CHECK(total_share <= 1 + 1e-9, "world: pool_noise shares add up to {}, more than 1",
               total_share);
  TILLER_CHECK(p.leaked_eval_prompts >= 0 && p.leaked_eval_prompts <= 1,
               "world: pool_noise.leaked_eval_prompts is {}, must be in [0, 1]",
               p.leaked_eval_prompts);
  TILLER_CHECK(c.num_pool_examples >= 0, "world: num_pool_examples is {}, must be >= 0",
               c.num_pool_examples);
  build_entities();
  build_facts();
  build_eval();
  build_sft();
  build_preferences();
  build_unseen();
}

void World::build_entities() {
  Rng rng(config_.seed, "entities");
  // Pool words are reserved so that no invented name collides with a colour or food.
  std::set<std::string> taken;
  for (const auto& word : detail::colours()) taken.insert(word);
  for (const auto& word : detail::foods()) taken.insert(word);
  towns_ = unique_names(rng, config_.num_towns, taken, /*towns=*/true);
  std::vector<std::string> names = unique_names(rng, config_.num_entities, taken, false);
  entities_.clear();
  for (auto& name : names) entities_.push_back(random_entity(std::move(name), towns_, rng));
}

void World::build_unseen() {
  Rng rng(config_.seed, "unseen");
  std::set<std::string> taken;
  for (const auto& word : detail::colours()) taken.insert(word);
  for (const auto& word : detail::foods()) taken.insert(word);
  for (const auto& town : towns_) taken.insert(town);
  for (const Entity& entity : entities_) taken.insert(entity.name);
  // A name that starts another (or is started by one) shares its first tokens with a creature the
  // corpus describes; such names are drawn again, so the control is not a near-duplicate.
  auto overlaps = [&](const std::string& name) {
    for (const Entity& entity : entities_)
      if (entity.name.starts_with(name) || name.starts_with(entity.name)) return true;
    return false;
  };
  std::vector<TaskType> attributes;
  for (int t = 0; t < kNumTaskTypes; ++t)
    if (is_creature_attribute(task_from_index(t))) attributes.push_back(task_from_index(t));
  unseen_entities_.clear();
  unseen_.clear();
  for (int i = 0; i < config_.num_unseen_prompts; ++i) {
    std::string name;
    for (int attempts = 0; name.empty() || overlaps(name); ++attempts) {
      TILLER_CHECK(attempts < 1000,
                   "world: could not invent {} unseen creature names; ask for "
                   "fewer unseen prompts",
                   config_.num_unseen_prompts);
      name = unique_names(rng, 1, taken, false)[0];
    }
    unseen_entities_.push_back(random_entity(std::move(name), towns_, rng));
    const Expected fact =
        detail::entity_fact(attributes[i % attributes.size()], unseen_entities_.back());
    EvalItem item;
    item.id = i;
    item.question = make_question(fact, random_template(rng, fact.task));
    item.prompt = {{"user", item.question.text}};
    unseen_.push_back(std::move(item));
  }
}

std::vector<std::string> World::admissible_values(const Expected& expected) const {
  auto numbers = [](const std::vector<int>& values) {
    std::vector<std::string> text;
    for (int v : values) text.push_back(std::to_string(v));
    return text;
  };
  switch (expected.task) {
    case TaskType::kColour:
      return detail::colours();
    case TaskType::kFavouriteFood:
      return detail::foods();
    case TaskType::kHomeTown:
      return towns_;
    case TaskType::kLegs:
      return numbers(detail::leg_counts());
    case TaskType::kAge: {
      std::vector<int> ages;
      for (int age = kMinAge; age <= kMaxAge; ++age) ages.push_back(age);
      return numbers(ages);
    }
    case TaskType::kArithmetic: {
      const std::string op = detail::parse_subject(expected).op;
      std::set<int> results;
      for (const Expected& fact : detail::all_arithmetic_facts())
        if (detail::parse_subject(fact).op == op) results.insert(std::stoi(fact.value));
      return numbers({results.begin(), results.end()});
    }
    case TaskType::kSpelling:
    case TaskType::kCapitals: {
      const std::string name = detail::uppercased(detail::parse_subject(expected).name);
      std::vector<std::string> values = {name};
      for (size_t i = 0; i + 1 < name.size(); ++i) {
        if (name[i] == name[i + 1]) continue;
        std::string swapped = name;
        std::swap(swapped[i], swapped[i + 1]);
        if (std::find(values.begin(), values.end(), swapped) == values.end())
          values.push_back(std::move(swapped));
      }
      if (expected.task == TaskType::kSpelling)
        for (std::string& value : values) value = detail::spelled(value);
      return values;
    }
  }
  fail("world: no admissible values for task {}", task_name(expected.task));
}

void World::build_facts() {
  training_facts_.assign(kNumTaskTypes, {});
  eval_facts_.assign(kNumTaskTypes, {});
  for (int t = 0; t < kNumTaskTypes; ++t) {
    TaskType task = task_from_index(t);
    std::vector<Expected> facts;
    if (task == TaskType::kArithmetic) {
      facts = detail::all_arithmetic_facts();
    } else {
      for (const Entity& entity : entities_) facts.push_back(detail::entity_fact(task, entity));
    }
    Rng rng(config_.seed, fmt::format("split/{}", task_name(task)));
    rng.shuffle(facts);
    int num_eval = share(config_.num_eval_prompts, t);
    TILLER_CHECK(num_eval < static_cast<int>(facts.size()),
                 "world: {} eval prompts need {} {} facts held out, but the world has only {}; "
                 "raise num_entities or lower num_eval_prompts",
                 config_.num_eval_prompts, num_eval, task_name(task), facts.size());
    eval_facts_[t].assign(facts.begin(), facts.begin() + num_eval);
    training_facts_[t].assign(facts.begin() + num_eval, facts.end());
  }
}

void World::build_eval() {
  Rng rng(config_.seed, "eval");
  std::vector<size_t> cursor(kNumTaskTypes, 0);
  eval_.clear();
  for (int i = 0; i < config_.num_eval_prompts; ++i) {
    int t = i % kNumTaskTypes;
    const Expected& fact = eval_facts_[static_cast<size_t>(t)][cursor[static_cast<size_t>(t)]++];
    EvalItem item;
    item.id = i;
    item.question = make_question(fact, random_template(rng, fact.task));
    item.prompt = {{"user", item.question.text}};
    eval_.push_back(std::move(item));
  }
}

void World::build_sft() {
  Rng rng(config_.seed, "sft");
  std::vector<size_t> cursor(kNumTaskTypes, 0);
  auto next_fact = [&](int t) -> const Expected& {
    const auto& pool = training_facts_[static_cast<size_t>(t)];
    return pool[cursor[static_cast<size_t>(t)]++ % pool.size()];
  };
  sft_.clear();
  for (int i = 0; i < config_.num_sft_examples; ++i) {
    int t = i % kNumTaskTypes;
    SftExample example;
    example.task = task_from_index(t);
    if (rng.chance(0.1)) example.messages.push_back({"system", rng.pick(detail::system_prompts())});
    if (rng.chance(config_.sft_multi_turn_fraction)) {
      for (int turns = rng.between(1, 2); turns > 0; --turns) {
        const Expected& earlier = next_fact(rng.below(kNumTaskTypes));
        example.questions.push_back(make_question(earlier, random_template(rng, earlier.task)));
      }
    }
    const Expected& fact = next_fact(t);
    example.questions.push_back(make_question(fact, random_template(rng, fact.task)));
    for (size_t q = 0; q < example.questions.size(); ++q) {
      const Question& question = example.questions[q];
      bool follow_up = q > 0;
      std::string user =
          follow_up ? rng.pick(detail::follow_up_openers()) + question.text : question.text;
      example.messages.push_back({"user", std::move(user)});
      example.messages.push_back({"assistant", question.expected.sentence()});
    }
    sft_.push_back(std::move(example));
  }
}

void World::build_preferences() {
  Rng rng(config_.seed, "preferences");
  int total = config_.num_preference_pairs;
  int num_heldout = static_cast<int>(std::lround(total * config_.preference_heldout_fraction));
  // Each task's training facts split into a head (training pairs) and a tail (held-out pairs).
  std::vector<size_t> heldout_begin(kNumTaskTypes);
  for (size_t t = 0; t < heldout_begin.size(); ++t) {
    size_t size = training_facts_[t].size();
    heldout_begin[t] = size;
    if (num_heldout == 0) continue;
    TILLER_CHECK(size >= 2,
                 "world: task {} has {} training facts, too few for a held-out preference split",
                 task_name(task_from_index(static_cast<int>(t))), size);
    double tail = std::round(static_cast<double>(size) * config_.preference_heldout_fraction);
    heldout_begin[t] = size - std::clamp<size_t>(static_cast<size_t>(tail), 1, size - 1);
  }
  std::vector<size_t> train_cursor(kNumTaskTypes, 0), heldout_cursor(kNumTaskTypes, 0);
  preferences_.clear();
  for (int i = 0; i < total; ++i) {
    size_t t = static_cast<size_t>(i % kNumTaskTypes);
    bool held_out = i >= total - num_heldout;
    const auto& pool = training_facts_[t];
    size_t head = heldout_begin[t];
    const Expected& fact = held_out ? pool[head + heldout_cursor[t]++ % (pool.size() - head)]
                                    : pool[train_cursor[t]++ % head];
    PreferencePair pair;
    pair.question = make_question(fact, random_template(rng, fact.task));
    pair.prompt = {{"user", pair.question.text}};
    pair.held_out = held_out;
    pair.rejection = static_cast<Rejection>((i / kNumTaskTypes) % 4);
    pair.chosen = completion_for(fact);
    switch (pair.rejection) {
      case Rejection::kWrongFact:
        pair.rejected = fact.prefix + detail::wrong_value(fact, towns_, rng) + fact.suffix +
                        std::string(special_tokens::kEndOfTurn);
        break;
      case Rejection::kMalformed:
        pair.rejected = detail::malformed_completion(fact, rng);
        break;
      case Rejection::kRambling:
        pair.rejected =
            detail::rambling_answer(fact, rng) + std::string(special_tokens::kEndOfTurn);
        break;
      case Rejection::kMissingEndOfTurn:
        pair.rejected = fact.sentence();
        break;
    }
    preferences_.push_back(std::move(pair));
  }
}

std::vector<PreferencePair> World::preference_pairs(Split split) const {
  std::vector<PreferencePair> selected;
  for (const auto& pair : preferences_) {
    if (pair.held_out == (split == Split::kHeldOut)) selected.push_back(pair);
  }
  return selected;
}

Score World::score(int eval_id, std::string_view response) const {
  TILLER_CHECK(eval_id >= 0 && eval_id < static_cast<int>(eval_.size()),
               "World::score: eval id {} is not in [0, {})", eval_id, eval_.size());
  return world::score(eval_[static_cast<size_t>(eval_id)], response);
}

const std::vector<Expected>& World::training_facts(TaskType task) const {
  return training_facts_.at(static_cast<size_t>(task));
}

const std::vector<Expected>& World::eval_facts(TaskType task) const {
  return eval_facts_.at(static_cast<size_t>(task));
}

}  // namespace tiller::world
