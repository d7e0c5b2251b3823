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

TEST_CASE("k-means finds three separated groups whatever the seed, and is deterministic",
          "[curate]") {
  // Three tight groups of 5 points around (0, 0), (10, 0) and (0, 10), in a shuffled order.
  const float centres[3][2] = {{0, 0}, {10, 0}, {0, 10}};
  const int group_of[15] = {0, 1, 2, 2, 1, 0, 0, 2, 1, 1, 0, 2, 2, 1, 0};
  Embeddings points{{}, 2};
  for (int i = 0; i < 15; ++i) {
    const float jitter = 0.1f * static_cast<float>(i % 5);
    points.values.push_back(centres[group_of[i]][0] + jitter);
    points.values.push_back(centres[group_of[i]][1] - jitter);
  }
  for (uint64_t seed : {1u, 2u, 3u, 17u}) {
    const std::vector<int32_t> cluster = k_means(points, 3, seed);
    REQUIRE(cluster.size() == 15);
    // Same group <=> same cluster.
    for (int a = 0; a < 15; ++a)
      for (int b = 0; b < 15; ++b)
        CHECK((cluster[a] == cluster[b]) == (group_of[a] == group_of[b]));
    CHECK(k_means(points, 3, seed) == cluster);
  }
  // k above n: one row per cluster; k = 1: one cluster.
  const Embeddings two{{0, 0, 1, 1}, 2};
  const std::vector<int32_t> each = k_means(two, 5, 1);
  CHECK(each[0] != each[1]);
  CHECK(k_means(points, 1, 1) == std::vector<int32_t>(15, 0));
  CHECK_THROWS_WITH(k_means(points, 0, 1), Catch::Contains("k must be >= 1"));
}

TEST_CASE("CaR's round robin gives every cluster its share, best rows first", "[curate]") {
  // Cluster 0 holds rows 0-5, cluster 1 rows 6-7, cluster 2 rows 8-9; order = best first.
  const std::vector<int32_t> cluster = {0, 0, 0, 0, 0, 0, 1, 1, 2, 2};
  const std::vector<int64_t> order = {0, 1, 2, 3, 8, 4, 5, 6, 9, 7};
  // Round 1: each cluster's best (clusters in the order of their best row: 0, 2, 1).
  CHECK(cluster_round_robin(cluster, order, 3) == std::vector<int64_t>{0, 8, 6});
  // Round 2, then cluster 0 takes the shares the small clusters cannot fill.
  CHECK(cluster_round_robin(cluster, order, 8) == std::vector<int64_t>{0, 8, 6, 1, 9, 7, 2, 3});
  CHECK(cluster_round_robin(cluster, order, 20).size() == 10);
  CHECK(cluster_round_robin(cluster, order, 0).empty());
  CHECK_THROWS_WITH(cluster_round_robin(cluster, {10}, 1), Catch::Contains("index 10"));
}

TEST_CASE("the Curator's car selection keeps a minority template's share of the budget",
          "[curate]") {
  // A skewed pool: 90 arithmetic rows of one template, 10 colour rows of another. Taking the
  // budget in input order would give ~18 arithmetic rows to 2 colour rows; CaR's clusters deal
  // the budget evenly, so the colour template gets about half.
  std::vector<Row> rows;
  for (int i = 0; i < 100; ++i) {
    if (i % 10 == 3)
      rows.push_back(chat("What colour is creature " + std::to_string(i) + "?",
                          "Creature " + std::to_string(i) + " is bright green today.", "colour"));
    else
      rows.push_back(chat("What is " + std::to_string(i) + " plus " + std::to_string(i + 3) + "?",
                          std::to_string(i) + " plus " + std::to_string(i + 3) + " makes " +
                              std::to_string(2 * i + 3) + ".",
                          "arithmetic"));
  }
  CurateConfig config;
  config.stages = {"select"};
  config.select = {.budget = 20, .method = "car", .clusters = 2, .seed = 5};
  const CurateResult result = Curator(config).run(rows);
  REQUIRE(result.diversity);
  CHECK(result.rows_kept == 20);
  CHECK(result.diversity->tasks_after.at("colour") == 10);
  CHECK(result.diversity->cluster_sizes.size() == 2);
  CHECK(result.diversity->cluster_selected == std::vector<int64_t>{10, 10});
  // Deterministic; the automatic k is round(sqrt(100 / 2)) = 7.
  const CurateResult again = Curator(config).run(rows);
  for (size_t i = 0; i < rows.size(); ++i)
    CHECK(result.rejections[i].has_value() == again.rejections[i].has_value());
  config.select.clusters = 0;
  CHECK(Curator(config).run(rows).diversity->cluster_sizes.size() == 7);
  CHECK(CurateConfig::from_json_text(R"({"select": {"method": "car", "clusters": 9}})", "c.json")
            .select.clusters == 9);
  config.select.method = "kmeans";
  CHECK_THROWS_WITH(Curator(config).run(rows), Catch::Contains("expected deita, k_center or car"));
}

namespace {

// A stand-in for a model: the perplexity is the number the answer ends with, the embedding a
// point near one of two far-apart corners by the row's task. Counts the rows it embeds.
class FakeScorer : public ScoreProvider {
 public:
  int64_t rows_embedded = 0;
  void score(const std::vector<Row>& rows, const std::vector<int64_t>& indices, RowScores& scores,
             const ScoreRequest&) override {
    for (int64_t i : indices) {
      const std::string& a = rows[static_cast<size_t>(i)].response;
      scores.perplexity[static_cast<size_t>(i)] = std::stod(a.substr(a.rfind(' ') + 1));
    }
  }
  Embeddings embed(const std::vector<Row>& rows, const std::vector<int64_t>& indices) override {
    Embeddings e;
    e.dim = 2;
    for (int64_t i : indices) {
      const bool town = rows[static_cast<size_t>(i)].task == "home_town";
      const float jitter = 0.01f * static_cast<float>(i % 7);
      e.values.push_back((town ? 10.f : -10.f) + jitter);
      e.values.push_back((town ? 10.f : -10.f) - jitter);
    }
    rows_embedded += static_cast<int64_t>(indices.size());
    return e;
  }
  bool has_reward() const override { return false; }
};

}  // namespace

TEST_CASE("the perplexity cut within clusters keeps every kind of row's best share", "[curate]") {
  // 20 colour answers with perplexity 10..29 and 20 town answers with 40..59: one global cut of
  // the top half keeps no town row; cut within two clusters it keeps each kind's best ten.
  std::vector<Row> rows;
  for (int i = 0; i < 20; ++i) {
    rows.push_back(chat("What colour is C" + std::to_string(i) + "?",
                        "C" + std::to_string(i) + " is red " + std::to_string(10 + i), "colour"));
    rows.push_back(chat("Where does T" + std::to_string(i) + " live?",
                        "T" + std::to_string(i) + " lives in Ulm " + std::to_string(40 + i),
                        "home_town"));
  }
  CurateConfig config;
  config.stages = {"scores", "select"};
  config.scores = {.rank_by = "perplexity"};
  config.scores.keep_top_fraction = 0.5;
  const auto kept_of = [&](const CurateResult& result, const std::string& task, int lo, int hi) {
    int count = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (result.rejections[i] || rows[i].task != task) continue;
      const double ppl = result.scores.perplexity[i];
      CHECK(ppl >= lo);
      CHECK(ppl <= hi);
      ++count;
    }
    return count;
  };
  {
    FakeScorer scorer;
    const CurateResult all = Curator(config, {}, &scorer).run(rows);
    CHECK(kept_of(all, "colour", 10, 29) == 20);
    CHECK(kept_of(all, "home_town", 40, 59) == 0);
    CHECK(all.stages[0].removed_by_reason.at("below_top_fraction") == 20);
  }
  config.scores.keep_top_within = "clusters";
  config.scores.clusters = 2;
  config.select = {.budget = 16, .method = "car", .clusters = 2, .seed = 3};
  FakeScorer scorer;
  const CurateResult within = Curator(config, {}, &scorer).run(rows);
  // The scores stage keeps the 10 best of each kind; select deals the budget of 16 evenly and
  // takes each cluster's best, so the 8 lowest perplexities of each kind.
  CHECK(within.stages[0].rows_out == 20);
  CHECK(within.stages[0].notes.back() == "the top 0.5 of each of 2 k-means clusters kept");
  CHECK(kept_of(within, "colour", 10, 17) == 8);
  CHECK(kept_of(within, "home_town", 40, 47) == 8);
  // select reuses the scores stage's embeddings: every row embedded once.
  CHECK(scorer.rows_embedded == 40);
  const CurateConfig parsed = CurateConfig::from_json_text(
      R"({"scores": {"keep_top_within": "clusters", "clusters": 12}})", "c.json");
  CHECK(parsed.scores.keep_top_within == "clusters");
  CHECK(parsed.scores.clusters == 12);
  CHECK_THROWS_WITH(
      CurateConfig::from_json_text(R"({"scores": {"keep_top_within": "tasks"}})", "c.json"),
      Catch::Contains("scores.keep_top_within must be \"all\" or \"clusters\""));
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
