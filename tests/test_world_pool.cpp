// The world's noisy SFT pool: its size and noise proportions, determinism, the skew of its task
// mix, and that every label tells the truth about its row (checked with the world's own scorer).
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/world/world.h"
#include "core/world/world_detail.h"
#include "kernels/error.h"

using namespace tiller;
using namespace tiller::world;

namespace {

const std::string& final_answer(const PoolRow& row) {
  return row.example.messages.back().content;
}

const Expected& final_expected(const PoolRow& row) {
  return row.example.questions.back().expected;
}

Score score_final(const PoolRow& row) {
  return score(final_expected(row), final_answer(row) + std::string(special_tokens::kEndOfTurn));
}

std::string chat_text(const SftExample& example) {
  std::string text;
  for (const ChatMessage& m : example.messages) text += m.role + "\x1f" + m.content + "\x1e";
  return text;
}

const std::vector<PoolRow>& default_pool() {
  static const World world{};
  static const std::vector<PoolRow> pool = world.noisy_sft_pool();
  return pool;
}

}  // namespace

TEST_CASE("the noisy pool has 10,000 rows with each noise kind near its configured share",
          "[world]") {
  const std::vector<PoolRow>& pool = default_pool();
  REQUIRE(pool.size() == 10000);
  std::map<PoolNoise, int> counts;
  for (const PoolRow& row : pool) ++counts[row.noise];
  const PoolNoiseShares shares;
  const std::vector<std::pair<PoolNoise, double>> expected = {
      {PoolNoise::kWrongFact, shares.wrong_fact},
      {PoolNoise::kLowerCase, shares.lower_case},
      {PoolNoise::kAnswerLabel, shares.answer_label},
      {PoolNoise::kBareValue, shares.bare_value},
      {PoolNoise::kMissingEndOfTurn, shares.missing_end_of_turn},
      {PoolNoise::kRambling, shares.rambling},
      {PoolNoise::kTruncated, shares.truncated},
      {PoolNoise::kExactDuplicate, shares.exact_duplicate},
      {PoolNoise::kNearDuplicate, shares.near_duplicate},
      {PoolNoise::kLeakedEval, shares.leaked_eval}};
  double noisy_share = 0;
  for (const auto& [noise, share] : expected) {
    // Binomial(10,000, p): four standard deviations, plus one row for the first-row fallback.
    const double sd = std::sqrt(10000 * share * (1 - share));
    INFO(pool_noise_name(noise) << ": " << counts[noise] << " rows, expected ~" << 10000 * share);
    CHECK(std::abs(counts[noise] - 10000 * share) <= 4 * sd + 1);
    CHECK(counts[noise] > 0);
    noisy_share += share;
  }
  const double clean = 10000 * (1 - noisy_share);
  CHECK(std::abs(counts[PoolNoise::kClean] - clean) <= 4 * std::sqrt(clean * noisy_share) + 1);
}

TEST_CASE("the noisy pool is deterministic and changes no other product of the world", "[world]") {
  const World a{}, b{};
  const auto pool_a = a.noisy_sft_pool(), pool_b = b.noisy_sft_pool();
  REQUIRE(pool_a.size() == pool_b.size());
  for (size_t i = 0; i < pool_a.size(); ++i) {
    REQUIRE(chat_text(pool_a[i].example) == chat_text(pool_b[i].example));
    REQUIRE(pool_a[i].noise == pool_b[i].noise);
  }
  World other(WorldConfig{.seed = 2});
  CHECK(chat_text(other.noisy_sft_pool()[0].example) != chat_text(pool_a[0].example));
  // A bigger pool leaves the SFT chats, the eval set and the preferences as they were.
  World bigger(WorldConfig{.num_pool_examples = 20000});
  CHECK(chat_text(bigger.sft_examples()[7]) == chat_text(a.sft_examples()[7]));
  CHECK(bigger.eval_prompts()[3].question.text == a.eval_prompts()[3].question.text);
  CHECK(bigger.all_preference_pairs()[5].rejected == a.all_preference_pairs()[5].rejected);
  CHECK(chat_text(bigger.noisy_sft_pool()[123].example) == chat_text(pool_a[123].example));
}

TEST_CASE("the noisy pool is skewed: colour and arithmetic each hold about a quarter", "[world]") {
  std::map<TaskType, int> counts;
  for (const PoolRow& row : default_pool()) ++counts[final_expected(row).task];
  // Weights 3,1,1,1,1,3,1,1 of 12: a quarter each for colour and arithmetic, 1/12 for the others
  // (lower-case rows avoid arithmetic, leaked rows follow the eval mix: both shift this a little).
  CHECK(counts[TaskType::kColour] > 2200);
  CHECK(counts[TaskType::kArithmetic] > 2200);
  for (TaskType task : {TaskType::kHomeTown, TaskType::kFavouriteFood, TaskType::kAge,
                        TaskType::kLegs, TaskType::kSpelling, TaskType::kCapitals}) {
    INFO(task_name(task) << ": " << counts[task]);
    CHECK(counts[task] > 600);
    CHECK(counts[task] < 1100);
  }
}

TEST_CASE("every pool label matches its row", "[world]") {
  const World world{};
  const std::vector<PoolRow>& pool = default_pool();
  std::set<std::string> eval_questions;
  for (const EvalItem& item : world.eval_prompts()) eval_questions.insert(item.question.text);
  std::set<int> leaked_ids;
  for (size_t i = 0; i < pool.size(); ++i) {
    const PoolRow& row = pool[i];
    INFO("row " << i << " (" << pool_noise_name(row.noise) << "): " << final_answer(row));
    const Expected& expected = final_expected(row);
    const std::string sentence = expected.sentence();
    const std::string& answer = final_answer(row);
    const Score s = score_final(row);
    if (row.duplicate_of >= 0) {
      REQUIRE(row.duplicate_of < static_cast<int>(i));
      const PoolRow& source = pool[static_cast<size_t>(row.duplicate_of)];
      CHECK(row.copied_noise == (source.duplicate_of >= 0 ? source.copied_noise : source.noise));
      if (row.noise == PoolNoise::kExactDuplicate) {
        CHECK(chat_text(row.example) == chat_text(source.example));
      } else {
        REQUIRE(row.noise == PoolNoise::kNearDuplicate);
        CHECK(chat_text(row.example) != chat_text(source.example));
        CHECK(answer == final_answer(source));  // only a user turn changes
      }
      continue;
    }
    CHECK((row.noise == PoolNoise::kLeakedEval) == (row.eval_id >= 0));
    // Only leaked rows ask an eval question, in any turn.
    bool asks_eval = false;
    for (const ChatMessage& m : row.example.messages)
      if (m.role == "user") asks_eval = asks_eval || eval_questions.contains(m.content);
    CHECK(asks_eval == (row.noise == PoolNoise::kLeakedEval));
    // Every earlier turn is canonical.
    for (size_t q = 0; q + 1 < row.example.questions.size(); ++q) {
      const ChatMessage& earlier = row.example.messages[row.example.messages.size() - 1 -
                                                        2 * (row.example.questions.size() - 1 - q)];
      CHECK(earlier.content == row.example.questions[q].expected.sentence());
    }
    switch (row.noise) {
      case PoolNoise::kClean:
        CHECK(s.exact_match);
        CHECK(s.format_ok);
        break;
      case PoolNoise::kLeakedEval:
        CHECK(row.example.messages[0].content ==
              world.eval_prompts()[static_cast<size_t>(row.eval_id)].question.text);
        CHECK(s.exact_match);
        leaked_ids.insert(row.eval_id);
        break;
      case PoolNoise::kWrongFact:
        CHECK(s.follows_template);
        CHECK_FALSE(s.fact_correct);
        CHECK(s.format_ok);
        break;
      case PoolNoise::kLowerCase:
        CHECK(answer == detail::lowercased(sentence));
        CHECK(answer != sentence);
        CHECK_FALSE(s.format_ok);
        break;
      case PoolNoise::kAnswerLabel:
        CHECK(
            (answer == "Answer: " + expected.value || answer == "Answer: " + expected.value + "."));
        CHECK_FALSE(s.format_ok);
        break;
      case PoolNoise::kBareValue:
        CHECK((answer == expected.value || answer == expected.value + "."));
        CHECK_FALSE(s.format_ok);
        break;
      case PoolNoise::kMissingEndOfTurn:
        CHECK(answer.starts_with(sentence + "\nUser: "));
        CHECK_FALSE(s.format_ok);
        break;
      case PoolNoise::kRambling:
        CHECK(s.rambling);
        CHECK_FALSE(s.format_ok);
        break;
      case PoolNoise::kTruncated:
        CHECK(sentence.starts_with(answer));
        CHECK(answer.size() < sentence.size());
        CHECK_FALSE(s.format_ok);
        break;
      case PoolNoise::kExactDuplicate:
      case PoolNoise::kNearDuplicate:
        FAIL("a duplicate without duplicate_of");
    }
  }
  // Leaks clump on a fifth of the eval prompts.
  CHECK(leaked_ids.size() <= 40);
  CHECK(leaked_ids.size() >= 20);
}

TEST_CASE("the pool writers emit one chat and one label per row", "[world]") {
  const World world(WorldConfig{.num_pool_examples = 300});
  const auto pool = world.noisy_sft_pool();
  const auto dir = std::filesystem::temp_directory_path() / "tiller_world_pool_test";
  std::filesystem::create_directories(dir);
  write_pool_jsonl((dir / "pool.jsonl").string(), pool);
  write_pool_labels_jsonl((dir / "labels.jsonl").string(), pool);
  std::ifstream chats(dir / "pool.jsonl"), labels(dir / "labels.jsonl");
  std::string chat_line, label_line;
  size_t rows = 0;
  while (std::getline(chats, chat_line) && std::getline(labels, label_line)) {
    const auto chat = nlohmann::json::parse(chat_line);
    const auto label = nlohmann::json::parse(label_line);
    REQUIRE(chat["messages"].size() == pool[rows].example.messages.size());
    CHECK(chat["messages"].back()["content"] == final_answer(pool[rows]));
    CHECK(label["row"] == rows);
    CHECK(label["noise"] == std::string(pool_noise_name(pool[rows].noise)));
    CHECK(label["key"] == final_expected(pool[rows]).key);
    ++rows;
  }
  CHECK(rows == pool.size());
  std::filesystem::remove_all(dir);
}

TEST_CASE("pool noise shares that are negative or add up past one are rejected", "[world]") {
  WorldConfig config;
  config.pool_noise.wrong_fact = -0.1;
  CHECK_THROWS_WITH(World(config), Catch::Contains("pool_noise share"));
  config.pool_noise.wrong_fact = 0.9;
  CHECK_THROWS_WITH(World(config), Catch::Contains("add up to"));
  config = WorldConfig{};
  config.num_pool_examples = -1;
  CHECK_THROWS_WITH(World(config), Catch::Contains("num_pool_examples"));
}
