// The built-in task world: determinism, the sizes and balance of each data set, the train/eval
// partition (no eval question leaks into SFT or preferences), corpus coverage of eval facts, the
// exact scorer's rules and the JSONL writers.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/world/world.h"
#include "core/world/world_detail.h"

using namespace tiller;
using namespace tiller::world;

namespace {

// Everything a world produces, flattened to one string: equal fingerprints mean equal worlds.
std::string fingerprint(const World& world) {
  std::string text = world.pretraining_corpus();
  for (const auto& example : world.sft_examples()) {
    for (const auto& message : example.messages) text += message.role + message.content;
  }
  for (const auto& item : world.eval_prompts()) {
    text += item.question.text + item.question.expected.sentence();
  }
  for (const auto& pair : world.all_preference_pairs()) {
    text += pair.question.text + pair.chosen + pair.rejected;
  }
  return text;
}

size_t count_occurrences(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

const World& default_world() {
  static const World world(WorldConfig{.seed = 7});
  return world;
}

Expected home_town_of_zorvik() {
  return Expected{.task = TaskType::kHomeTown,
                  .key = "home_town/Zorvik",
                  .prefix = "Zorvik lives in ",
                  .value = "Pelmora",
                  .suffix = "."};
}

const std::string kEnd(special_tokens::kEndOfTurn);

}  // namespace

TEST_CASE("the same seed gives the same world and another seed a different one", "[world]") {
  WorldConfig config{.seed = 11, .num_entities = 60, .num_eval_prompts = 80};
  World first(config), second(config);
  REQUIRE(fingerprint(first) == fingerprint(second));

  config.seed = 12;
  World other(config);
  REQUIRE(fingerprint(other) != fingerprint(first));
  REQUIRE(other.entities()[0].name != first.entities()[0].name);
  REQUIRE(other.eval_prompts()[0].question.expected.key !=
          first.eval_prompts()[0].question.expected.key);
}

TEST_CASE("asking for more SFT examples leaves entities and eval prompts unchanged", "[world]") {
  World few(
      WorldConfig{.seed = 3, .num_entities = 60, .num_sft_examples = 100, .num_eval_prompts = 40});
  World many(
      WorldConfig{.seed = 3, .num_entities = 60, .num_sft_examples = 400, .num_eval_prompts = 40});
  REQUIRE(few.entities().size() == many.entities().size());
  for (size_t i = 0; i < few.entities().size(); ++i) {
    REQUIRE(few.entities()[i].name == many.entities()[i].name);
  }
  for (size_t i = 0; i < few.eval_prompts().size(); ++i) {
    REQUIRE(few.eval_prompts()[i].question.text == many.eval_prompts()[i].question.text);
  }
}

TEST_CASE("entities have distinct invented names and attributes drawn from the pools", "[world]") {
  const World& world = default_world();
  REQUIRE(world.entities().size() == 100);
  REQUIRE(world.towns().size() == 12);
  std::set<std::string> names, towns(world.towns().begin(), world.towns().end());
  std::set<int> ages, legs;
  for (const auto& entity : world.entities()) {
    names.insert(entity.name);
    REQUIRE(std::isupper(static_cast<unsigned char>(entity.name[0])));
    REQUIRE(towns.count(entity.home_town) == 1);
    REQUIRE(towns.count(entity.name) == 0);
    REQUIRE(entity.age >= 2);
    REQUIRE(entity.age <= 95);
    ages.insert(entity.age);
    legs.insert(entity.legs);
  }
  REQUIRE(names.size() == 100);
  REQUIRE(ages.size() > 40);
  REQUIRE(legs == std::set<int>{2, 4, 6, 8});
}

TEST_CASE("there are exactly 1,000 SFT chats, balanced over the eight task types", "[world]") {
  const World& world = default_world();
  REQUIRE(world.sft_examples().size() == 1000);
  std::map<TaskType, int> per_task;
  int multi_turn = 0, with_system = 0;
  for (const auto& example : world.sft_examples()) {
    ++per_task[example.task];
    multi_turn += example.questions.size() > 1;
    with_system += example.messages.front().role == "system";
    REQUIRE(example.questions.back().expected.task == example.task);
    REQUIRE(example.messages.back().role == "assistant");
    // After an optional system message, turns alternate user/assistant, one pair per question.
    size_t first = example.messages.front().role == "system" ? 1 : 0;
    REQUIRE(example.messages.size() - first == 2 * example.questions.size());
    for (size_t i = first; i < example.messages.size(); ++i) {
      REQUIRE(example.messages[i].role == ((i - first) % 2 == 0 ? "user" : "assistant"));
    }
  }
  REQUIRE(per_task.size() == kNumTaskTypes);
  for (const auto& [task, count] : per_task) REQUIRE(count == 125);
  REQUIRE(multi_turn > 100);
  REQUIRE(multi_turn < 300);
  REQUIRE(with_system > 50);
  REQUIRE(with_system < 160);
}

TEST_CASE("every SFT answer is the canonical sentence and scores as correct", "[world]") {
  const World& world = default_world();
  std::set<std::string> distinct_questions;
  for (const auto& example : world.sft_examples()) {
    size_t q = 0;
    for (const auto& message : example.messages) {
      if (message.role != "assistant") continue;
      const Expected& expected = example.questions[q++].expected;
      REQUIRE(message.content == expected.sentence());
      Score result = score(expected, message.content + kEnd);
      REQUIRE(result.exact_match);
      REQUIRE(result.format_ok);
      REQUIRE(result.reward == kRewardCorrect);
    }
    distinct_questions.insert(example.questions.back().text);
  }
  // diversity: few final questions repeat (75 training facts per task x 6 phrasings, 125 chats)
  REQUIRE(distinct_questions.size() > 900);
}

TEST_CASE("eval prompts are held out from SFT by key and by exact text", "[world]") {
  const World& world = default_world();
  const auto& eval = world.eval_prompts();
  REQUIRE(eval.size() == 200);

  std::set<std::string> sft_keys, sft_template_keys, sft_user_texts;
  for (const auto& example : world.sft_examples()) {
    for (const auto& question : example.questions) {
      sft_keys.insert(question.expected.key);
      sft_template_keys.insert(question.template_key());
    }
    for (const auto& message : example.messages) {
      if (message.role == "user") sft_user_texts.insert(message.content);
    }
  }
  std::map<TaskType, int> per_task;
  std::set<std::string> eval_keys;
  for (size_t i = 0; i < eval.size(); ++i) {
    const auto& item = eval[i];
    REQUIRE(item.id == static_cast<int>(i));
    REQUIRE(item.prompt.size() == 1);
    REQUIRE(item.prompt[0].content == item.question.text);
    ++per_task[item.question.expected.task];
    eval_keys.insert(item.question.expected.key);
    REQUIRE(sft_keys.count(item.question.expected.key) == 0);
    REQUIRE(sft_template_keys.count(item.question.template_key()) == 0);
    for (const auto& text : sft_user_texts)
      REQUIRE(text.find(item.question.text) == std::string::npos);
  }
  REQUIRE(eval_keys.size() == 200);
  for (const auto& [task, count] : per_task) REQUIRE(count == 25);
  // The (entity, attribute) key form: "home_town/<name>".
  REQUIRE(eval[1].question.expected.key.starts_with("home_town/"));
}

TEST_CASE("the corpus states every eval fact in the exact answer sentence", "[world]") {
  const World& world = default_world();
  std::string corpus = world.pretraining_corpus();
  for (const auto& item : world.eval_prompts()) {
    INFO(item.question.expected.sentence());
    REQUIRE(corpus.find(item.question.expected.sentence()) != std::string::npos);
  }
  // Each creature fact is stated mentions_per_fact times or more, in any of its phrasings.
  for (size_t e = 0; e < world.entities().size(); e += 10) {
    for (TaskType task :
         {TaskType::kColour, TaskType::kHomeTown, TaskType::kFavouriteFood, TaskType::kAge,
          TaskType::kLegs, TaskType::kSpelling, TaskType::kCapitals}) {
      Expected fact = detail::entity_fact(task, world.entities()[e]);
      size_t statements = 0;
      for (auto phrasing : detail::statement_templates(task)) {
        statements += count_occurrences(corpus, detail::fill(phrasing, fact));
      }
      INFO(fact.sentence());
      REQUIRE(statements >= static_cast<size_t>(world.config().mentions_per_fact));
    }
  }
  REQUIRE(count_occurrences(corpus, "7 plus 5 is 12.") >= 1);
}

TEST_CASE("the corpus is a few hundred KB of plain documents without chat markup", "[world]") {
  std::string corpus = default_world().pretraining_corpus();
  REQUIRE(corpus.size() > 200'000);
  REQUIRE(corpus.size() < 4'000'000);
  size_t documents = count_occurrences(corpus, std::string(special_tokens::kEndOfText)) + 1;
  REQUIRE(documents > 500);
  REQUIRE(corpus.find(std::string(special_tokens::kEndOfText) +
                      std::string(special_tokens::kEndOfText)) == std::string::npos);
  for (const char* chat_token : {"<|user|>", "<|assistant|>", "<|system|>", "<|end|>"}) {
    REQUIRE(corpus.find(chat_token) == std::string::npos);
  }
  REQUIRE(corpus.find("Q: ") != std::string::npos);
}

TEST_CASE("preference pairs split by key, cover every task and rejection kind", "[world]") {
  const World& world = default_world();
  auto train = world.preference_pairs(Split::kTrain);
  auto heldout = world.preference_pairs(Split::kHeldOut);
  REQUIRE(train.size() == 1800);
  REQUIRE(heldout.size() == 200);

  std::set<std::string> train_keys, eval_keys;
  for (const auto& item : world.eval_prompts()) eval_keys.insert(item.question.expected.key);
  std::set<std::pair<TaskType, Rejection>> combinations;
  for (const auto& pair : train) {
    train_keys.insert(pair.question.expected.key);
    combinations.insert({pair.question.expected.task, pair.rejection});
  }
  REQUIRE(combinations.size() == kNumTaskTypes * 4);
  for (const auto& pair : heldout) REQUIRE(train_keys.count(pair.question.expected.key) == 0);
  for (const auto& pair : world.all_preference_pairs()) {
    REQUIRE(eval_keys.count(pair.question.expected.key) == 0);
  }
}

TEST_CASE("the scorer prefers chosen over rejected on every preference pair", "[world]") {
  for (const auto& pair : default_world().all_preference_pairs()) {
    INFO(pair.chosen << " vs " << pair.rejected);
    const Expected& expected = pair.question.expected;
    Score chosen = score(expected, pair.chosen);
    Score rejected = score(expected, pair.rejected);
    REQUIRE(chosen.exact_match);
    REQUIRE(chosen.format_ok);
    REQUIRE(chosen.reward > rejected.reward);
    switch (pair.rejection) {
      case Rejection::kWrongFact:
        REQUIRE(rejected.format_ok);
        REQUIRE_FALSE(rejected.fact_correct);
        break;
      case Rejection::kMalformed:
        REQUIRE(rejected.ends_turn);
        REQUIRE_FALSE(rejected.format_ok);
        break;
      case Rejection::kRambling:
        REQUIRE(rejected.rambling);
        break;
      case Rejection::kMissingEndOfTurn:
        REQUIRE(rejected.exact_match);
        REQUIRE_FALSE(rejected.ends_turn);
        break;
    }
  }
}

TEST_CASE("scorer: a correct answer earns the full reward", "[world]") {
  Expected expected = home_town_of_zorvik();
  Score result = score(expected, "Zorvik lives in Pelmora." + kEnd);
  REQUIRE(result.exact_match);
  REQUIRE(result.fact_correct);
  REQUIRE(result.format_ok);
  REQUIRE(result.reward == kRewardCorrect);
  // Whitespace around the answer and text after the end of turn are ignored.
  Score padded = score(expected, " Zorvik lives in Pelmora.\n" + kEnd + "\n<|user|>");
  REQUIRE(padded.exact_match);
  REQUIRE(padded.answer == "Zorvik lives in Pelmora.");
  REQUIRE(padded.reward == kRewardCorrect);
}

TEST_CASE("scorer: a well-formed wrong fact earns only the format reward", "[world]") {
  Score result = score(home_town_of_zorvik(), "Zorvik lives in Tarnwick." + kEnd);
  REQUIRE(result.format_ok);
  REQUIRE_FALSE(result.fact_correct);
  REQUIRE_FALSE(result.exact_match);
  REQUIRE(result.reward == kRewardFormatOnly);

  Expected sum{.task = TaskType::kArithmetic,
               .key = "arithmetic/7 plus 5",
               .prefix = "7 plus 5 is ",
               .value = "12",
               .suffix = "."};
  REQUIRE(score(sum, "7 plus 5 is 13." + kEnd).reward == kRewardFormatOnly);
  REQUIRE(score(sum, "7 plus 5 is 12." + kEnd).reward == kRewardCorrect);
}

TEST_CASE("scorer: malformed answers earn nothing and say what is wrong", "[world]") {
  Expected expected = home_town_of_zorvik();
  Score no_period = score(expected, "Zorvik lives in Pelmora" + kEnd);
  REQUIRE_FALSE(no_period.single_sentence);
  REQUIRE_FALSE(no_period.follows_template);
  REQUIRE(no_period.reward == 0.0);

  Score bare_value = score(expected, "Pelmora." + kEnd);
  REQUIRE(bare_value.single_sentence);
  REQUIRE_FALSE(bare_value.follows_template);
  REQUIRE(bare_value.reward == 0.0);

  Score lower_case_town = score(expected, "Zorvik lives in pelmora." + kEnd);
  REQUIRE_FALSE(lower_case_town.follows_template);

  Score two_sentences = score(expected, "Zorvik lives in Pelmora. It is nice." + kEnd);
  REQUIRE_FALSE(two_sentences.single_sentence);
  REQUIRE(two_sentences.reward == 0.0);

  Expected spelling{.task = TaskType::kSpelling,
                    .key = "spelling/Zorvik",
                    .prefix = "Zorvik is spelled ",
                    .value = "Z-O-R-V-I-K",
                    .suffix = "."};
  REQUIRE(score(spelling, "Zorvik is spelled Z-O-R-V-I-K." + kEnd).reward == kRewardCorrect);
  REQUIRE_FALSE(score(spelling, "Zorvik is spelled ZORVIK." + kEnd).follows_template);
  REQUIRE_FALSE(score(spelling, "Zorvik is spelled Z--O-R." + kEnd).follows_template);
}

TEST_CASE("scorer: a missing end of turn voids an otherwise exact answer", "[world]") {
  Score result = score(home_town_of_zorvik(), "Zorvik lives in Pelmora.");
  REQUIRE(result.exact_match);
  REQUIRE_FALSE(result.ends_turn);
  REQUIRE_FALSE(result.format_ok);
  REQUIRE(result.reward == 0.0);
}

TEST_CASE("scorer: rambling is repeated text or an overlong answer", "[world]") {
  Expected expected = home_town_of_zorvik();
  Score repeated = score(expected, "Zorvik lives in Pelmora. Zorvik lives in Pelmora." + kEnd);
  REQUIRE(repeated.rambling);
  REQUIRE(repeated.reward == 0.0);
  REQUIRE(score(expected, "Zorvik lives in Pelmora Pelmora Pelmora." + kEnd).rambling);
  REQUIRE(score(expected, "Zorvik lives in Pelmora, yes, yes, yes." + kEnd).rambling);
  std::string long_answer = "Zorvik lives in Pelmora" + std::string(kMaxAnswerChars, ',') + ".";
  REQUIRE(score(expected, long_answer + kEnd).rambling);
  // Repeated numbers that are not back to back are fine.
  Expected square{.task = TaskType::kArithmetic,
                  .key = "arithmetic/1 times 1",
                  .prefix = "1 times 1 is ",
                  .value = "1",
                  .suffix = "."};
  REQUIRE_FALSE(score(square, "1 times 1 is 1." + kEnd).rambling);
}

TEST_CASE("World::score looks up the eval item and rejects unknown ids", "[world]") {
  const World& world = default_world();
  const EvalItem& item = world.eval_prompts()[5];
  REQUIRE(world.score(5, completion_for(item.question.expected)).reward == kRewardCorrect);
  REQUIRE(world.score(5, "I do not know." + kEnd).reward == 0.0);
  REQUIRE_THROWS_WITH(world.score(200, "x"), Catch::Contains("World::score: eval id 200"));
}

TEST_CASE("render_prompt writes the chat layout ending with the assistant header", "[world]") {
  std::vector<ChatMessage> messages = {{"system", "Be brief."}, {"user", "How old is Zorvik?"}};
  REQUIRE(render_prompt(messages) ==
          "<|system|>\nBe brief.<|end|>\n<|user|>\nHow old is Zorvik?<|end|>\n<|assistant|>\n");
}

TEST_CASE("the JSONL writers produce one parseable object per item", "[world]") {
  const World& world = default_world();
  std::filesystem::path dir = std::filesystem::temp_directory_path() / "tiller_test_world";
  std::filesystem::create_directories(dir);

  write_sft_jsonl((dir / "sft.jsonl").string(), world.sft_examples());
  auto sft = read_jsonl((dir / "sft.jsonl").string());
  REQUIRE(sft.size() == 1000);
  REQUIRE(sft[3]["messages"].back()["role"] == "assistant");
  REQUIRE(sft[3]["messages"].back()["content"] == world.sft_examples()[3].messages.back().content);
  // The chat template's own reader accepts every line and sees the same conversation.
  std::ifstream sft_file(dir / "sft.jsonl");
  size_t line_number = 0;
  for (std::string line; std::getline(sft_file, line); ++line_number) {
    auto parsed = parse_chat_record(line, fmt::format("sft.jsonl line {}", line_number + 1));
    const auto& original = world.sft_examples()[line_number].messages;
    REQUIRE(parsed.size() == original.size());
    for (size_t m = 0; m < parsed.size(); ++m) {
      REQUIRE(parsed[m].role == original[m].role);
      REQUIRE(parsed[m].content == original[m].content);
    }
  }
  REQUIRE(line_number == 1000);

  auto heldout = world.preference_pairs(Split::kHeldOut);
  write_preferences_jsonl((dir / "prefs.jsonl").string(), heldout);
  auto prefs = read_jsonl((dir / "prefs.jsonl").string());
  REQUIRE(prefs.size() == heldout.size());
  REQUIRE(prefs[0]["prompt"] == render_prompt(heldout[0].prompt));
  REQUIRE(prefs[0]["chosen"] == heldout[0].chosen);
  REQUIRE(prefs[0]["rejected"] == heldout[0].rejected);

  write_eval_jsonl((dir / "eval.jsonl").string(), world.eval_prompts());
  auto eval = read_jsonl((dir / "eval.jsonl").string());
  REQUIRE(eval.size() == 200);
  REQUIRE(eval[7]["answer"] == world.eval_prompts()[7].question.expected.sentence());

  std::string corpus = world.pretraining_corpus();
  write_text((dir / "corpus.txt").string(), corpus);
  REQUIRE(std::filesystem::file_size(dir / "corpus.txt") == corpus.size());
  // Only the four finished files remain: no temporary file is left behind.
  REQUIRE(std::distance(std::filesystem::directory_iterator(dir),
                        std::filesystem::directory_iterator()) == 4);
  std::filesystem::remove_all(dir);

  REQUIRE_THROWS_WITH(write_text("/nonexistent-dir/corpus.txt", "x"),
                      Catch::Contains("/nonexistent-dir"));
}

TEST_CASE("a world too small for its eval set is refused with a hint", "[world]") {
  REQUIRE_THROWS_WITH(World(WorldConfig{.num_entities = 20}),
                      Catch::Contains("raise num_entities"));
  REQUIRE_THROWS_WITH(World(WorldConfig{.num_entities = 1}), Catch::Contains("num_entities is 1"));
  REQUIRE_THROWS_WITH(World(WorldConfig{.preference_heldout_fraction = 1.0}),
                      Catch::Contains("preference_heldout_fraction is 1"));
  World tiny(WorldConfig{.num_entities = 12,
                         .num_sft_examples = 64,
                         .num_eval_prompts = 16,
                         .num_preference_pairs = 64});
  REQUIRE(tiny.sft_examples().size() == 64);
  REQUIRE(tiny.eval_prompts().size() == 16);
}
