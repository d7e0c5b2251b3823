// What the likelihood probe needs from the world: admissible values that are complete (every
// value the generator can draw is a candidate, the right one exactly once), and unseen creatures
// that appear in no data set, asked like the eval prompts.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "core/world/world.h"

using namespace tiller;
using namespace tiller::world;

namespace {

const World& probe_world_fixture() {
  static const World world(WorldConfig{.seed = 7});
  return world;
}

bool contains(const std::vector<std::string>& values, const std::string& value) {
  return std::count(values.begin(), values.end(), value) == 1;
}

}  // namespace

TEST_CASE("admissible values hold every creature's attribute exactly once, without repeats",
          "[world][probe]") {
  const World& world = probe_world_fixture();
  std::vector<Entity> all = world.entities();
  all.insert(all.end(), world.unseen_entities().begin(), world.unseen_entities().end());
  for (int t = 0; t < kNumTaskTypes; ++t) {
    const TaskType task = task_from_index(t);
    if (!is_creature_attribute(task)) continue;
    const Expected sample = world.eval_facts(task).front();
    const std::vector<std::string> values = world.admissible_values(sample);
    REQUIRE(std::set<std::string>(values.begin(), values.end()).size() == values.size());
    for (const Entity& entity : all) {
      const std::string value = task == TaskType::kColour          ? entity.colour
                                : task == TaskType::kHomeTown      ? entity.home_town
                                : task == TaskType::kFavouriteFood ? entity.favourite_food
                                : task == TaskType::kAge           ? std::to_string(entity.age)
                                                                   : std::to_string(entity.legs);
      REQUIRE(contains(values, value));
    }
  }
  const Expected colour = world.eval_facts(TaskType::kColour).front();
  REQUIRE(world.admissible_values(colour).size() == 12);
  REQUIRE(world.admissible_values(world.eval_facts(TaskType::kHomeTown).front()) == world.towns());
  REQUIRE(world.admissible_values(world.eval_facts(TaskType::kAge).front()).size() ==
          static_cast<size_t>(kMaxAge - kMinAge + 1));
  REQUIRE(world.admissible_values(world.eval_facts(TaskType::kLegs).front()) ==
          std::vector<std::string>{"2", "4", "6", "8"});
}

TEST_CASE(
    "arithmetic candidates are every result of the operator; every eval answer is among its "
    "candidates",
    "[world][probe]") {
  const World& world = probe_world_fixture();
  std::vector<std::string> plus;
  for (int v = 0; v <= 40; ++v) plus.push_back(std::to_string(v));
  Expected seven_plus_five{.task = TaskType::kArithmetic,
                           .key = "arithmetic/7 plus 5",
                           .prefix = "7 plus 5 is ",
                           .value = "12",
                           .suffix = "."};
  REQUIRE(world.admissible_values(seven_plus_five) == plus);
  Expected three_times_four = seven_plus_five;
  three_times_four.key = "arithmetic/3 times 4";
  // products of 0..12 x 0..12 and 13..20 x nothing: 0, 1, ..., 144 without the primes above 12.
  const auto products = world.admissible_values(three_times_four);
  REQUIRE(contains(products, "144"));
  REQUIRE(contains(products, "0"));
  REQUIRE_FALSE(contains(products, "13"));
  for (const EvalItem& item : world.eval_prompts())
    REQUIRE(
        contains(world.admissible_values(item.question.expected), item.question.expected.value));
}

TEST_CASE("spelling and capitals candidates are the name and its adjacent-letter swaps",
          "[world][probe]") {
  const World& world = probe_world_fixture();
  Expected capitals{.task = TaskType::kCapitals,
                    .key = "capitals/Zorvik",
                    .prefix = "Zorvik in capital letters is ",
                    .value = "ZORVIK",
                    .suffix = "."};
  REQUIRE(world.admissible_values(capitals) ==
          std::vector<std::string>{"ZORVIK", "OZRVIK", "ZROVIK", "ZOVRIK", "ZORIVK", "ZORVKI"});
  Expected spelling = capitals;
  spelling.task = TaskType::kSpelling;
  spelling.key = "spelling/Anna";  // equal neighbours are not swapped; repeats are dropped
  REQUIRE(world.admissible_values(spelling) ==
          std::vector<std::string>{"A-N-N-A", "N-A-N-A", "A-N-A-N"});
}

TEST_CASE("unseen creatures appear in no data set and are asked about their attributes in turn",
          "[world][probe]") {
  const World& world = probe_world_fixture();
  REQUIRE(world.unseen_prompts().size() == 50);
  REQUIRE(world.unseen_entities().size() == 50);
  const std::string corpus = world.pretraining_corpus();
  std::set<std::string> seen;
  for (const Entity& entity : world.entities()) seen.insert(entity.name);
  std::string everything = corpus;
  for (const SftExample& example : world.sft_examples())
    for (const ChatMessage& message : example.messages) everything += message.content + "\n";
  for (const PreferencePair& pair : world.all_preference_pairs())
    everything += pair.question.text + pair.chosen + pair.rejected + "\n";
  for (const EvalItem& item : world.eval_prompts()) everything += item.question.text + "\n";
  std::vector<int> per_task(kNumTaskTypes, 0);
  for (size_t i = 0; i < world.unseen_prompts().size(); ++i) {
    const EvalItem& item = world.unseen_prompts()[i];
    const Entity& entity = world.unseen_entities()[i];
    REQUIRE(item.id == static_cast<int>(i));
    REQUIRE(is_creature_attribute(item.question.expected.task));
    REQUIRE(item.question.expected.key.ends_with("/" + entity.name));
    REQUIRE(item.question.text.find(entity.name) != std::string::npos);
    REQUIRE(everything.find(entity.name) == std::string::npos);
    for (const std::string& name : seen) REQUIRE_FALSE(name.starts_with(entity.name));
    ++per_task[static_cast<size_t>(item.question.expected.task)];
  }
  for (int t = 0; t < kNumTaskTypes; ++t)
    REQUIRE(per_task[t] == (is_creature_attribute(task_from_index(t)) ? 10 : 0));
}

TEST_CASE("adding unseen prompts leaves every other product of the world unchanged",
          "[world][probe]") {
  World none(
      WorldConfig{.seed = 3, .num_entities = 60, .num_eval_prompts = 40, .num_unseen_prompts = 0});
  World some(
      WorldConfig{.seed = 3, .num_entities = 60, .num_eval_prompts = 40, .num_unseen_prompts = 20});
  REQUIRE(none.unseen_prompts().empty());
  REQUIRE(some.unseen_prompts().size() == 20);
  REQUIRE(none.pretraining_corpus() == some.pretraining_corpus());
  for (size_t i = 0; i < none.eval_prompts().size(); ++i)
    REQUIRE(none.eval_prompts()[i].question.text == some.eval_prompts()[i].question.text);
  REQUIRE_THROWS_WITH(World(WorldConfig{.num_unseen_prompts = -1}), Catch::Contains("unseen -1"));
}
