// Decontamination, diversity selection, the Curator's config, errors and determinism.
#include <catch2/catch.hpp>

#include <fstream>

#include "core/data/curate.h"
#include "core/data/decontaminate.h"
#include "core/data/diversity.h"
#include "kernels/error.h"
#include "support/temp_dir.h"

using namespace tiller;
using namespace tiller::data;

namespace {

Row chat(const std::string& q, const std::string& a, const std::string& task = "") {
  std::string line = R"({"messages":[{"role":"user","content":")" + q +
                     R"("},{"role":"assistant","content":")" + a + R"("}])";
  if (!task.empty()) line += R"(,"task":")" + task + "\"";
  return parse_row(line + "}", "t.jsonl:0");
}

Row doc(const std::string& text) {
  return parse_row(R"({"text":")" + text + "\"}", "d.jsonl:0");
}

}  // namespace

TEST_CASE("decontamination finds exact questions and planted n-grams, not near misses",
          "[curate]") {
  const std::string eval_doc =
      "one two three four five six seven eight nine ten eleven twelve thirteen";
  Decontaminator decontaminator(
      {chat("What is Zorvik's colour?", ""), doc(eval_doc),
       chat("Please tell me the exact number of legs that the creature Baron has", "")});
  const auto exact = decontaminator.check(chat("what is ZORVIK'S colour", "Blue."));
  REQUIRE(exact);
  CHECK(exact->reason == "exact_question");
  CHECK(exact->eval_index == 0);
  // A short eval question (5 words < 8) found whole inside a longer chat.
  const auto inside =
      decontaminator.check(chat("Quiz: what is Zorvik's colour? Answer fast.", "Blue."));
  REQUIRE(inside);
  CHECK(inside->reason == "ngram_overlap");
  // 8 shared words with the long question: a chat 8-gram.
  const auto chat_hit = decontaminator.check(
      chat("Hi. Tell me the exact number of legs that the creature Zorvik has", "Four."));
  REQUIRE(chat_hit);
  CHECK(chat_hit->eval_index == 2);
  // 7 shared words: below n, not a match.
  CHECK_FALSE(
      decontaminator.check(chat("Hi. Say the exact number of legs that the beast has", "4.")));
  // Documents use 13-grams: the whole eval document planted is found, 12 of its words are not.
  CHECK(decontaminator.check(doc("prefix words " + eval_doc + " suffix")));
  CHECK_FALSE(decontaminator.check(
      doc("prefix one two three four five six seven eight nine ten eleven twelve suffix")));
}

TEST_CASE("k-center greedy on a toy 2-D set picks the farthest points in order", "[curate]") {
  // A cluster near the origin, and outliers at (10, 0), (0, 10), (10, 10).
  Embeddings points{{0, 0, 0.1f, 0, 0, 0.1f, 10, 0, 0, 10, 10, 10, 0.1f, 0.1f}, 2};
  CHECK(k_center_greedy(points, 4, 0) == std::vector<int64_t>{0, 5, 3, 4});
  CHECK(k_center_greedy(points, 2, 3) == std::vector<int64_t>{3, 4});
  CHECK(k_center_greedy(points, 10, 0).size() == 7);
}

TEST_CASE("DEITA selection skips rows too similar to a kept one and walks score order",
          "[curate]") {
  Embeddings e{{1, 0, 0.99f, 0.141f, 0, 1, 0.6f, 0.8f}, 2};  // row 1 is ~row 0 (cos 0.99)
  CHECK(deita_select(e, {0, 1, 2, 3}, 3, 0.9) == std::vector<int64_t>{0, 2, 3});
  CHECK(deita_select(e, {1, 0, 2, 3}, 2, 0.9) == std::vector<int64_t>{1, 2});
  CHECK(deita_select(e, {0, 1}, 5, 0.9) == std::vector<int64_t>{0});  // fewer than the budget
  CHECK(mean_nearest_neighbour_distance(e, {0, 2}) == Approx(1.0));
}

TEST_CASE("the Curator is deterministic and reports task coverage under a budget", "[curate]") {
  std::vector<Row> rows;
  const char* tasks[] = {"colour", "age", "legs"};
  for (int i = 0; i < 60; ++i)
    rows.push_back(chat("Question number " + std::to_string(i) + " about " + tasks[i % 3] + "?",
                        "The answer " + std::to_string(i * 7) + " is right.", tasks[i % 3]));
  CurateConfig config;
  config.select.budget = 12;
  for (const char* method : {"deita", "k_center"}) {
    config.select.method = method;
    const CurateResult a = Curator(config).run(rows);
    const CurateResult b = Curator(config).run(rows);
    CHECK(a.rows_kept == 12);
    for (size_t i = 0; i < rows.size(); ++i)
      CHECK(a.rejections[i].has_value() == b.rejections[i].has_value());
    REQUIRE(a.diversity);
    CHECK(a.diversity->tasks_before.at("age") == 20);
    int64_t after = 0;
    for (const auto& [task, count] : a.diversity->tasks_after) after += count;
    CHECK(after == 12);
  }
}

TEST_CASE("empty input, a budget larger than the data, and bad config say so", "[curate]") {
  CHECK_THROWS_WITH(Curator(CurateConfig{}).run({}), Catch::Contains("the input has no rows"));
  CurateConfig config;
  config.select.budget = 100;
  const CurateResult result = Curator(config).run({chat("A?", "B."), chat("C?", "D.")});
  CHECK(result.rows_kept == 2);
  CHECK(result.stages.back().notes.at(0).find("budget 100 >= the 2 rows left") !=
        std::string::npos);
  CHECK_THROWS_WITH(CurateConfig::from_json_text(R"({"near_dedup": {"bandz": 3}})", "c.json"),
                    Catch::Contains("unknown key 'near_dedup.bandz'"));
  CHECK_THROWS_WITH(Curator(CurateConfig::from_json_text(R"({"stages": ["dedupe"]})", "c.json")),
                    Catch::Contains("unknown stage 'dedupe'"));
  const CurateConfig parsed = CurateConfig::from_json_text(
      R"({"near_dedup": {"bands": 14, "rows_per_band": 8}, "select": {"method": "k_center"}})",
      "c.json");
  CHECK(parsed.near_dedup.bands == 14);
  CHECK(parsed.select.method == "k_center");
}

TEST_CASE("outputs: curated rows unchanged in order, every dropped row tagged", "[curate]") {
  testing::TempDir dir;
  const auto input = dir.path() / "in.jsonl";
  std::ofstream(input)
      << R"({"messages":[{"role":"user","content":"Hi?"},{"role":"assistant","content":"Hello."}]})"
      << "\n{broken\n"
      << R"({"messages":[{"role":"user","content":"Hi?"},{"role":"assistant","content":"Hello."}]})"
      << "\n"
      << R"({"text": "short doc"})"
      << "\n";
  const RowStore store = read_rows({input}, {.skip_malformed = true});
  CurateConfig config;
  const CurateResult result = Curator(config).run(store.rows);
  write_curation_outputs(dir.path() / "out", store, result, config);
  std::ifstream curated(dir.path() / "out" / "curated.jsonl");
  std::string line;
  std::getline(curated, line);
  CHECK(
      line ==
      R"({"messages":[{"role":"user","content":"Hi?"},{"role":"assistant","content":"Hello."}]})");
  CHECK_FALSE(std::getline(curated, line));
  std::ifstream rejected(dir.path() / "out" / "rejected.jsonl");
  std::vector<std::string> lines;
  while (std::getline(rejected, line)) lines.push_back(line);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].find(R"("reason":"malformed")") != std::string::npos);
  CHECK(lines[1].find(R"("reason":"exact_duplicate")") != std::string::npos);
  CHECK(lines[1].find(R"("duplicate_of":0)") != std::string::npos);
  CHECK(lines[2].find(R"("reason":"gopher_word_count")") != std::string::npos);
  CHECK(std::filesystem::exists(dir.path() / "out" / "report.md"));
}
