// The world's vocabulary: the portable RNG, value pools, question and statement templates, and the
// construction of canonical answers from them.
//
// The canonical answer of a task is defined once, by statement_templates(task)[0]: entity_fact()
// splits that template at "{v}" into the answer's prefix and suffix, so the corpus sentence and the
// answer the scorer expects cannot drift apart.
#include <fmt/format.h>

#include <cctype>
#include <cstdio>

#include "core/world/world_detail.h"
#include "kernels/error.h"

namespace tiller::world {

std::string_view task_name(TaskType task) {
  switch (task) {
    case TaskType::kColour:
      return "colour";
    case TaskType::kHomeTown:
      return "home_town";
    case TaskType::kFavouriteFood:
      return "favourite_food";
    case TaskType::kAge:
      return "age";
    case TaskType::kLegs:
      return "legs";
    case TaskType::kArithmetic:
      return "arithmetic";
    case TaskType::kSpelling:
      return "spelling";
    case TaskType::kCapitals:
      return "capitals";
  }
  fail("world: unknown task type {}", static_cast<int>(task));
}

TaskType task_from_index(int index) {
  TILLER_CHECK(index >= 0 && index < kNumTaskTypes, "world: task index {} is not in [0, {})", index,
               kNumTaskTypes);
  return static_cast<TaskType>(index);
}

bool is_creature_attribute(TaskType task) {
  return task == TaskType::kColour || task == TaskType::kHomeTown ||
         task == TaskType::kFavouriteFood || task == TaskType::kAge || task == TaskType::kLegs;
}

std::string_view rejection_name(Rejection rejection) {
  switch (rejection) {
    case Rejection::kWrongFact:
      return "wrong_fact";
    case Rejection::kMalformed:
      return "malformed";
    case Rejection::kRambling:
      return "rambling";
    case Rejection::kMissingEndOfTurn:
      return "missing_end_of_turn";
  }
  fail("world: unknown rejection kind {}", static_cast<int>(rejection));
}

std::string Question::template_key() const {
  return fmt::format("{}#{}", expected.key, template_index);
}

namespace detail {

Rng::Rng(uint64_t seed, std::string_view purpose) : stream_(random::derive(seed, purpose)) {}

uint64_t Rng::next() {
  return stream_.next();
}

int Rng::below(int bound) {
  TILLER_CHECK(bound > 0, "world: Rng::below({}) needs a positive bound", bound);
  return static_cast<int>(stream_.below(static_cast<uint64_t>(bound)));
}

int Rng::between(int low, int high) {
  return low + below(high - low + 1);
}

bool Rng::chance(double probability) {
  return stream_.uniform01() < probability;
}

const std::vector<std::string>& colours() {
  static const std::vector<std::string> pool = {"red",    "blue",   "green", "yellow",
                                                "purple", "orange", "white", "black",
                                                "grey",   "pink",   "brown", "silver"};
  return pool;
}

const std::vector<std::string>& foods() {
  static const std::vector<std::string> pool = {"apples", "turnips",   "honey",   "bread",
                                                "cheese", "mushrooms", "carrots", "plums",
                                                "rice",   "beans",     "fish",    "pears"};
  return pool;
}

const std::vector<int>& leg_counts() {
  static const std::vector<int> pool = {2, 4, 6, 8};
  return pool;
}

const std::vector<std::string_view>& question_templates(TaskType task) {
  static const std::vector<std::vector<std::string_view>> tables = {
      {"What colour is {n}?", "What is {n}'s colour?", "Tell me the colour of {n}.",
       "Which colour does {n} have?", "Do you know what colour {n} is?",
       "I am curious about {n}. What colour is it?"},
      {"Where does {n} live?", "What is {n}'s home town?", "In which town does {n} live?",
       "Tell me where {n} lives.", "Which town is home to {n}?", "Name the town {n} lives in."},
      {"What is {n}'s favourite food?", "What does {n} like to eat most?",
       "Which food does {n} love best?", "Tell me {n}'s favourite food.",
       "What food does {n} prefer?", "If you cooked for {n}, what should you make?"},
      {"How old is {n}?", "What is {n}'s age?", "Tell me the age of {n}.",
       "How many years old is {n}?", "Do you know how old {n} is?", "What age is {n}?"},
      {"How many legs does {n} have?", "What is the number of legs {n} has?",
       "Count {n}'s legs for me.", "Tell me how many legs {n} has.",
       "On how many legs does {n} walk?", "How many legs has {n} got?"},
      {"What is {a} {op} {b}?", "Compute {a} {sym} {b}.", "How much is {a} {op} {b}?",
       "Calculate {a} {op} {b}.", "What do you get for {a} {sym} {b}?",
       "Work out {a} {op} {b}, please."},
      {"How do you spell {n}?", "Spell the name {n} letter by letter.", "Spell {n} for me.",
       "Write out the letters of {n}.", "Can you spell {n}?", "What are the letters in {n}?"},
      {"Write {n} in capital letters.", "How is {n} written in capital letters?",
       "Give me {n} in upper case.", "Put the name {n} in capitals.",
       "Capitalise every letter of {n}.", "Write the name {n} in all caps."},
  };
  return tables.at(static_cast<size_t>(task));
}

const std::vector<std::string_view>& statement_templates(TaskType task) {
  static const std::vector<std::vector<std::string_view>> tables = {
      {"{n}'s colour is {v}.", "{n} is {v} all over.", "The colour of {n} is {v}.",
       "Everyone knows that {n} is {v}."},
      {"{n} lives in {v}.", "{n}'s home town is {v}.", "{n} has always lived in {v}.",
       "The town of {v} is home to {n}."},
      {"{n}'s favourite food is {v}.", "{n} loves to eat {v} more than anything.",
       "Above all, {n} likes {v}.", "Given the choice, {n} always picks {v}."},
      {"{n} is {v} years old.", "{n} has lived for {v} years.", "The age of {n} is {v}.",
       "{n} turned {v} this year."},
      {"{n} has {v} legs.", "{n} walks on {v} legs.", "Count them: {n} has {v} legs.",
       "The number of legs {n} has is {v}."},
      {"{a} {op} {b} is {v}.", "{a} {sym} {b} = {v}.", "If you take {a} {op} {b}, you get {v}.",
       "The answer to {a} {op} {b} is {v}."},
      {"{n} is spelled {v}.", "The name {n} is written {v}.", "Letter by letter, {n} is {v}.",
       "To spell {n}, write {v}."},
      {"{n} in capital letters is {v}.", "In capitals, {n} is written {v}.",
       "Shouted, the name {n} becomes {v}.", "Written large, {n} is {v}."},
  };
  return tables.at(static_cast<size_t>(task));
}

namespace {

std::string_view symbol_of(std::string_view op) {
  if (op == "plus") return "+";
  if (op == "minus") return "-";
  if (op == "times") return "*";
  fail("world: unknown arithmetic operator '{}'", op);
}

std::string fill_fields(std::string_view template_text, const Subject& subject,
                        std::string_view value) {
  std::string_view symbol = subject.op.empty() ? std::string_view{} : symbol_of(subject.op);
  return fmt::format(fmt::runtime(template_text), fmt::arg("n", subject.name), fmt::arg("v", value),
                     fmt::arg("a", subject.a), fmt::arg("b", subject.b), fmt::arg("op", subject.op),
                     fmt::arg("sym", symbol));
}

Expected fact_from_canonical(TaskType task, const Subject& subject, std::string value) {
  std::string_view canonical = statement_templates(task)[0];
  size_t slot = canonical.find("{v}");
  Expected expected;
  expected.task = task;
  expected.key = task_key(task, subject.name);
  expected.prefix = fill_fields(canonical.substr(0, slot), subject, "");
  expected.suffix = fill_fields(canonical.substr(slot + 3), subject, "");
  expected.value = std::move(value);
  return expected;
}

}  // namespace

std::string task_key(TaskType task, std::string_view subject) {
  return fmt::format("{}/{}", task_name(task), subject);
}

Subject parse_subject(const Expected& expected) {
  size_t slash = expected.key.find('/');
  TILLER_CHECK(slash != std::string::npos, "world: key '{}' has no '/'", expected.key);
  Subject subject;
  subject.name = expected.key.substr(slash + 1);
  if (expected.task == TaskType::kArithmetic) {
    char op[16] = {};
    int parsed = std::sscanf(subject.name.c_str(), "%d %15s %d", &subject.a, op, &subject.b);
    TILLER_CHECK(parsed == 3, "world: arithmetic key '{}' is not '<a> <op> <b>'", expected.key);
    subject.op = op;
  }
  return subject;
}

std::string spelled(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (!out.empty()) out += '-';
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string uppercased(std::string_view name) {
  std::string out(name);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

Expected entity_fact(TaskType task, const Entity& entity) {
  Subject subject;
  subject.name = entity.name;
  switch (task) {
    case TaskType::kColour:
      return fact_from_canonical(task, subject, entity.colour);
    case TaskType::kHomeTown:
      return fact_from_canonical(task, subject, entity.home_town);
    case TaskType::kFavouriteFood:
      return fact_from_canonical(task, subject, entity.favourite_food);
    case TaskType::kAge:
      return fact_from_canonical(task, subject, std::to_string(entity.age));
    case TaskType::kLegs:
      return fact_from_canonical(task, subject, std::to_string(entity.legs));
    case TaskType::kSpelling:
      return fact_from_canonical(task, subject, spelled(entity.name));
    case TaskType::kCapitals:
      return fact_from_canonical(task, subject, uppercased(entity.name));
    case TaskType::kArithmetic:
      break;
  }
  fail("world: entity_fact cannot build a {} fact", task_name(task));
}

Expected arithmetic_fact(int a, std::string_view op, int b) {
  int result = op == "plus" ? a + b : op == "minus" ? a - b : a * b;
  symbol_of(op);  // rejects unknown operators
  Subject subject{.name = fmt::format("{} {} {}", a, op, b), .a = a, .b = b, .op = std::string(op)};
  return fact_from_canonical(TaskType::kArithmetic, subject, std::to_string(result));
}

std::vector<Expected> all_arithmetic_facts() {
  std::vector<Expected> facts;
  for (int a = 0; a <= 20; ++a) {
    for (int b = 0; b <= 20; ++b) facts.push_back(arithmetic_fact(a, "plus", b));
    for (int b = 0; b <= a; ++b) facts.push_back(arithmetic_fact(a, "minus", b));
    for (int b = 0; b <= 12 && a <= 12; ++b) facts.push_back(arithmetic_fact(a, "times", b));
  }
  return facts;
}

std::string fill(std::string_view template_text, const Expected& expected) {
  return fill_fields(template_text, parse_subject(expected), expected.value);
}

}  // namespace detail
}  // namespace tiller::world
