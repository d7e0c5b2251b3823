// JSONL metrics log and progress formatting.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "rl/reports/metrics.h"

using namespace tiller::rl;

TEST_CASE("MetricsLog writes one JSON object per line in insertion order", "[metrics]") {
  auto path = std::filesystem::temp_directory_path() / "tiller_metrics_test.jsonl";
  {
    MetricsLog log("sft", path.string());
    log.write(1, Metrics().add("loss", 2.5).add("tokens", 128));
    log.write(2, Metrics().add("loss", std::nan("")));
  }
  std::ifstream in(path);
  std::string first, second;
  std::getline(in, first);
  std::getline(in, second);
  REQUIRE(first == R"({"stage": "sft", "step": 1, "loss": 2.5, "tokens": 128})");
  REQUIRE(second == R"({"stage": "sft", "step": 2, "loss": null})");
  {
    MetricsLog resumed("sft", path.string(), true);
    resumed.write(3, Metrics().add("loss", 1.0));
  }
  std::ifstream again(path);
  int lines = 0;
  for (std::string l; std::getline(again, l);) ++lines;
  REQUIRE(lines == 3);
  std::filesystem::remove(path);
}

TEST_CASE("durations print as h/m/s and metrics lookups name what is missing", "[metrics]") {
  REQUIRE(format_duration(42) == "42s");
  REQUIRE(format_duration(185) == "3m05s");
  REQUIRE(format_duration(3720) == "1h02m");
  REQUIRE_THROWS_WITH(Metrics().add("a", 1).get("b"), Catch::Contains("no value named 'b'"));
  REQUIRE(Metrics().add("a", 1).get("a") == 1);
  REQUIRE_THROWS_WITH(MetricsLog("x", "/nonexistent/dir/m.jsonl"),
                      Catch::Contains("cannot open /nonexistent/dir/m.jsonl"));
}

TEST_CASE("truncating for a resume keeps earlier records and the train record of the step",
          "[metrics]") {
  auto path = (std::filesystem::temp_directory_path() / "tiller_metrics_resume.jsonl").string();
  {
    std::ofstream out(path);
    out << R"({"stage": "sft", "step": 1, "loss": 3})"
        << "\n"
        << R"({"stage": "sft", "step": 2, "loss": 2})"
        << "\n"
        << R"({"stage": "sft", "step": 2, "eval_loss": 2.5})"
        << "\n"
        << R"({"stage": "sft", "step": 3, "loss": 1})"
        << "\n"
        << R"({"stage": "sft", "st)";  // torn last line
  }
  truncate_metrics_for_resume(path, 2, "eval_loss");
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  REQUIRE(lines == std::vector<std::string>{R"({"stage": "sft", "step": 1, "loss": 3})",
                                            R"({"stage": "sft", "step": 2, "loss": 2})"});
  std::filesystem::remove(path);
  truncate_metrics_for_resume(path, 5, "eval_loss");  // a missing file is not an error
  REQUIRE_FALSE(std::filesystem::exists(path));
}
