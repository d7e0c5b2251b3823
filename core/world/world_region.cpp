// The new region of the task world (see core/world/world_region.h).
#include "core/world/world_region.h"

#include <fmt/format.h>

#include <cctype>
#include <set>

#include "core/world/world_detail.h"
#include "kernels/error.h"

namespace tiller::world {
namespace {

using detail::Rng;

// First letters no original onset has (the original world's are b d f g k l m n p r s t v z).
std::string region_name(Rng& rng, int syllables, std::string_view ending) {
  static const std::vector<std::string> onsets = {"c", "h", "j", "w", "y", "qu", "ch", "wh"};
  static const std::vector<std::string> inner = {"b", "d", "l", "m", "n", "r", "s", "v", "x"};
  static const std::vector<std::string> vowels = {"a", "e", "i", "o", "u", "ee", "oa"};
  static const std::vector<std::string> codas = {"", "", "x", "m", "sh", "th"};
  std::string name = rng.pick(onsets) + rng.pick(vowels);
  for (int i = 1; i < syllables; ++i) name += rng.pick(inner) + rng.pick(vowels);
  name += ending.empty() ? rng.pick(codas) : std::string(ending);
  name[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(name[0])));
  return name;
}

std::vector<std::string> distinct_names(Rng& rng, int count, std::set<std::string>& taken,
                                        bool towns) {
  static const std::vector<std::string> town_endings = {"moor", "haven", "wick", "holm"};
  std::vector<std::string> names;
  for (int attempts = 0; static_cast<int>(names.size()) < count; ++attempts) {
    TILLER_CHECK(attempts < 100 * count + 1000,
                 "world region: could not invent {} distinct names; ask for fewer", count);
    std::string name = towns ? region_name(rng, 2, rng.pick(town_endings))
                             : region_name(rng, rng.between(2, 3), "");
    if (taken.insert(name).second) names.push_back(std::move(name));
  }
  return names;
}

std::string profile(const Entity& entity, int mention, Rng& rng) {
  std::string sentences = detail::creature_sentences(entity, region_fact_tasks(), mention, rng);
  return fmt::format("A creature of the new region: {}.\n", entity.name) + sentences + "\n";
}

}  // namespace

const std::vector<TaskType>& region_fact_tasks() {
  static const std::vector<TaskType> tasks = {TaskType::kColour, TaskType::kHomeTown,
                                              TaskType::kFavouriteFood, TaskType::kAge,
                                              TaskType::kLegs};
  return tasks;
}

Region::Region(const World& original, RegionConfig config) : config_(config) {
  TILLER_CHECK(config_.num_entities > 0 && config_.num_towns > 0 && config_.mentions_per_fact > 0,
               "world region: num_entities {}, num_towns {} and mentions_per_fact {} must be "
               "positive",
               config_.num_entities, config_.num_towns, config_.mentions_per_fact);
  std::set<std::string> taken(original.towns().begin(), original.towns().end());
  for (const Entity& entity : original.entities()) taken.insert(entity.name);
  Rng rng(config_.seed, "region");
  towns_ = distinct_names(rng, config_.num_towns, taken, /*towns=*/true);
  for (std::string& name : distinct_names(rng, config_.num_entities, taken, /*towns=*/false)) {
    Entity entity;
    entity.name = std::move(name);
    entity.colour = rng.pick(detail::colours());
    entity.home_town = rng.pick(towns_);
    entity.favourite_food = rng.pick(detail::foods());
    entity.age = rng.between(2, 95);
    entity.legs = rng.pick(detail::leg_counts());
    entities_.push_back(std::move(entity));
  }
}

std::string Region::corpus() const {
  Rng rng(config_.seed, "region corpus");
  std::vector<std::string> documents;
  for (const Entity& entity : entities_) {
    for (int mention = 0; mention < config_.mentions_per_fact; ++mention)
      documents.push_back(profile(entity, mention, rng));
  }
  std::vector<const Entity*> order;
  for (const Entity& entity : entities_) order.push_back(&entity);
  rng.shuffle(order);
  constexpr size_t kCreaturesPerQuiz = 4;
  for (size_t begin = 0; begin < order.size(); begin += kCreaturesPerQuiz) {
    std::vector<const Entity*> group(order.begin() + static_cast<std::ptrdiff_t>(begin),
                                     order.begin() + static_cast<std::ptrdiff_t>(std::min(
                                                         order.size(), begin + kCreaturesPerQuiz)));
    documents.push_back(detail::quiz_sheet(group, rng));
  }
  for (const std::string& town : towns_) {
    std::string residents;
    for (const Entity& entity : entities_)
      if (entity.home_town == town) residents += (residents.empty() ? "" : ", ") + entity.name;
    documents.push_back(
        residents.empty()
            ? fmt::format("About {0}.\n{0} is a new town. Nobody lives there yet.\n", town)
            : fmt::format("About {0}.\n{0} is a town of the new region. Its creatures are {1}.\n",
                          town, residents));
  }
  rng.shuffle(documents);
  std::string text;
  for (const std::string& document : documents) {
    if (!text.empty()) text += special_tokens::kEndOfText;
    text += document;
  }
  return text;
}

std::vector<Expected> Region::facts() const {
  std::vector<Expected> facts;
  for (const Entity& entity : entities_)
    for (TaskType task : region_fact_tasks()) facts.push_back(detail::entity_fact(task, entity));
  return facts;
}

std::vector<Expected> entity_facts(const World& world) {
  std::vector<Expected> facts;
  for (const Entity& entity : world.entities())
    for (TaskType task : region_fact_tasks()) facts.push_back(detail::entity_fact(task, entity));
  return facts;
}

std::vector<std::string> fact_values(TaskType task, const std::vector<std::string>& towns) {
  std::vector<std::string> values;
  switch (task) {
    case TaskType::kColour:
      return detail::colours();
    case TaskType::kFavouriteFood:
      return detail::foods();
    case TaskType::kHomeTown:
      return towns;
    case TaskType::kAge:
      for (int age = 2; age <= 95; ++age) values.push_back(std::to_string(age));
      return values;
    case TaskType::kLegs:
      for (int legs : detail::leg_counts()) values.push_back(std::to_string(legs));
      return values;
    default:
      fail("world region: no value list for task {}", task_name(task));
  }
}

}  // namespace tiller::world
