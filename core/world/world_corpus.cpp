// The pretraining corpus of the task world: prose documents that state every fact several times,
// joined by special_tokens::kEndOfText.
//
// Document families: creature profiles (mentions_per_fact per creature, the first in canonical
// answer sentences, the rest in varied phrasings and orders), terse quiz sheets ("Q: age of Zorvik?
// A: 34."; deliberately not the chat layout, so SFT still has a format to teach), town rosters,
// short stories that restate facts in context, and arithmetic tables plus mixed practice sheets.
// Invariant: each fact's canonical sentence (statement template 0, the exact answer the scorer
// expects) appears at least once, eval facts included; that is what makes eval answerable.
#include <fmt/format.h>

#include "core/world/world_detail.h"

namespace tiller::world {
namespace {

using detail::Rng;

constexpr TaskType kEntityTasks[] = {
    TaskType::kColour, TaskType::kHomeTown, TaskType::kFavouriteFood, TaskType::kAge,
    TaskType::kLegs,   TaskType::kSpelling, TaskType::kCapitals};

std::string joined_list(const std::vector<std::string>& names) {
  if (names.size() == 1) return names[0];
  std::string text;
  for (size_t i = 0; i + 1 < names.size(); ++i) text += (i ? ", " : "") + names[i];
  return text + " and " + names.back();
}

std::string profile(const Entity& entity, int mention, Rng& rng) {
  static const std::vector<std::string_view> intros = {
      "This is the story of {n}.", "Let me tell you about {n}.",
      "{n} is one of the creatures of our world.", "Here is what we know about {n}."};
  std::string sentences = detail::creature_sentences(entity, kEntityTasks, mention, rng);
  std::string text = fmt::format(fmt::runtime(rng.pick(intros)), fmt::arg("n", entity.name));
  return text + "\n" + sentences + "\n";
}

std::string roster(const std::string& town, const std::vector<Entity>& entities) {
  std::vector<std::string> residents;
  for (const Entity& entity : entities) {
    if (entity.home_town == town) residents.push_back(entity.name);
  }
  if (residents.empty())
    return fmt::format("About {0}.\n{0} is a quiet town. Nobody lives there.\n", town);
  return fmt::format("About {0}.\n{0} is a town. The creatures who live in {0} are {1}.\n", town,
                     joined_list(residents));
}

std::string story(const Entity& guest, const Entity& host) {
  return fmt::format(
      "A visit.\nOne day {0} left {1} to visit {2} in {3}. {0} brought some {4}, because {2}'s "
      "favourite food is {4}. {2}, who is {5} and has {6} legs, was happy. {0} is {7} years old "
      "and {2} is {8} years old.\n",
      guest.name, guest.home_town, host.name, host.home_town, host.favourite_food, host.colour,
      host.legs, guest.age, host.age);
}

std::string table_title(const detail::Subject& subject) {
  if (subject.op == "plus") return fmt::format("Adding to {}.", subject.a);
  if (subject.op == "minus") return fmt::format("Taking away from {}.", subject.a);
  return fmt::format("The {} times table.", subject.a);
}

std::vector<std::string> arithmetic_documents(int mentions, Rng& rng) {
  std::vector<Expected> all = detail::all_arithmetic_facts();
  std::vector<std::string> documents;
  // Mention 0: one canonical table per (first operand, operator); all_arithmetic_facts() lists
  // each table's facts consecutively.
  std::string table_key;
  for (const Expected& fact : all) {
    detail::Subject subject = detail::parse_subject(fact);
    std::string key = fmt::format("{} {}", subject.a, subject.op);
    if (key != table_key) {
      documents.push_back(table_title(subject) + "\n");
      table_key = key;
    }
    documents.back() += fact.sentence() + "\n";
  }
  constexpr size_t kLinesPerSheet = 24;  // short documents keep a sheet inside a training window
  int count = static_cast<int>(detail::statement_templates(TaskType::kArithmetic).size());
  for (int mention = 1; mention < mentions; ++mention) {
    rng.shuffle(all);
    for (size_t begin = 0; begin < all.size(); begin += kLinesPerSheet) {
      std::string text = "Practice sheet.\n";
      for (size_t i = begin; i < std::min(all.size(), begin + kLinesPerSheet); ++i) {
        text += detail::statement(all[i], rng.below(count)) + "\n";
      }
      documents.push_back(std::move(text));
    }
  }
  return documents;
}

}  // namespace

namespace detail {

std::string statement(const Expected& fact, int template_index) {
  const auto& templates = statement_templates(fact.task);
  return fill(templates[static_cast<size_t>(template_index) % templates.size()], fact);
}

std::string creature_sentences(const Entity& entity, std::span<const TaskType> tasks, int mention,
                               Rng& rng) {
  std::vector<std::string> sentences;
  for (TaskType task : tasks) {
    Expected fact = entity_fact(task, entity);
    int count = static_cast<int>(statement_templates(task).size());
    sentences.push_back(statement(fact, mention == 0 ? 0 : rng.below(count)));
  }
  rng.shuffle(sentences);
  std::string text;
  for (size_t i = 0; i < sentences.size(); ++i) text += (i ? " " : "") + sentences[i];
  return text;
}

std::string quiz_sheet(const std::vector<const Entity*>& group, Rng& rng) {
  static const std::vector<std::pair<TaskType, std::string_view>> labels = {
      {TaskType::kColour, "colour"},
      {TaskType::kHomeTown, "home town"},
      {TaskType::kFavouriteFood, "favourite food"},
      {TaskType::kAge, "age"},
      {TaskType::kLegs, "number of legs"}};
  std::vector<std::string> lines;
  for (const Entity* entity : group)
    for (const auto& [task, label] : labels)
      lines.push_back(fmt::format("Q: {} of {}? A: {}.", label, entity->name,
                                  entity_fact(task, *entity).value));
  rng.shuffle(lines);
  std::string text = "Quiz sheet.\n";
  for (const auto& line : lines) text += line + "\n";
  return text;
}

}  // namespace detail

std::string World::pretraining_corpus() const {
  Rng rng(config_.seed, "corpus");
  std::vector<std::string> documents;
  for (const Entity& entity : entities_) {
    for (int mention = 0; mention < config_.mentions_per_fact; ++mention) {
      documents.push_back(profile(entity, mention, rng));
    }
  }
  constexpr size_t kCreaturesPerQuiz = 4;
  std::vector<const Entity*> order;
  for (const Entity& entity : entities_) order.push_back(&entity);
  rng.shuffle(order);
  for (size_t begin = 0; begin < order.size(); begin += kCreaturesPerQuiz) {
    size_t end = std::min(order.size(), begin + kCreaturesPerQuiz);
    documents.push_back(detail::quiz_sheet(
        {order.begin() + static_cast<long>(begin), order.begin() + static_cast<long>(end)}, rng));
  }
  for (const std::string& town : towns_) documents.push_back(roster(town, entities_));
  for (size_t i = 0; i < order.size(); ++i) {
    documents.push_back(story(*order[i], *order[(i + 1) % order.size()]));
  }
  for (auto& document : arithmetic_documents(config_.mentions_per_fact, rng)) {
    documents.push_back(std::move(document));
  }
  rng.shuffle(documents);
  std::string corpus;
  for (size_t i = 0; i < documents.size(); ++i) {
    if (i) corpus += special_tokens::kEndOfText;
    corpus += documents[i];
  }
  return corpus;
}

}  // namespace tiller::world
