// rl/plot: metrics JSONL -> gnuplot data, script and PNG; a missing gnuplot keeps the files.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>

#include "core/io/atomic_file.h"
#include "rl/reports/plot.h"
#include "support/temp_dir.h"

using namespace tiller;
using namespace tiller::rl;
using tiller::testing::TempDir;

namespace {

void write_lines(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

const char* kMetrics =
    R"({"stage": "pretrain", "step": 1, "loss": 5.5, "lr": 0.001}
{"stage": "pretrain", "step": 1, "val_loss": 5.75}
{"stage": "pretrain", "step": 2, "loss": null}
{"stage": "pretrain", "step": 3, "loss": 4.25}
{"stage": "sft", "step": 1, "loss": 2.5}
{"stage": "pretrain", "step": 4, "lo)";  // torn last line, as after a crash

bool gnuplot_installed() {
  return std::system("gnuplot --version > /dev/null 2>&1") == 0;
}

// Sets PATH for its scope and restores it.
class PathOverride {
 public:
  explicit PathOverride(const char* value)
      : saved_(std::getenv("PATH") ? std::getenv("PATH") : "") {
    setenv("PATH", value, 1);
  }
  ~PathOverride() { setenv("PATH", saved_.c_str(), 1); }

 private:
  std::string saved_;
};

}  // namespace

TEST_CASE("read_series keeps the stage's finite values, shifted by x_offset", "[pretrain][plot]") {
  TempDir dir;
  write_lines(dir / "metrics.jsonl", kMetrics);
  auto loss = read_series(
      {.metrics_path = dir / "metrics.jsonl", .key = "loss", .stage = "pretrain", .x_offset = 10});
  REQUIRE(loss == std::vector<std::pair<double, double>>{{11, 5.5}, {13, 4.25}});
  auto every_stage = read_series({.metrics_path = dir / "metrics.jsonl", .key = "loss"});
  REQUIRE(every_stage.size() == 3);
  REQUIRE(every_stage.back() == std::pair<double, double>{1, 2.5});
  auto lr_against_loss =
      read_series({.metrics_path = dir / "metrics.jsonl", .key = "lr", .x_key = "loss"});
  REQUIRE(lr_against_loss == std::vector<std::pair<double, double>>{{5.5, 0.001}});
}

TEST_CASE("read_series rejects a file that is not JSONL and names the line", "[pretrain][plot]") {
  TempDir dir;
  write_lines(dir / "bad.jsonl", "{\"step\": 1}\nnot json\n{\"step\": 2}\n");
  REQUIRE_THROWS_WITH(read_series({.metrics_path = dir / "bad.jsonl", .key = "loss"}),
                      Catch::Contains("line 2 is not JSON"));
  REQUIRE_THROWS_WITH(read_series({.metrics_path = dir / "missing.jsonl", .key = "loss"}),
                      Catch::Contains("cannot open"));
}

TEST_CASE("plot_metrics writes one data block per series and renders a PNG with gnuplot",
          "[pretrain][plot]") {
  TempDir dir;
  write_lines(dir / "metrics.jsonl", kMetrics);
  PlotResult result = plot_metrics(
      {{.label = "train loss",
        .metrics_path = dir / "metrics.jsonl",
        .key = "loss",
        .stage = "pretrain"},
       {.label = "val \"loss\"", .metrics_path = dir / "metrics.jsonl", .key = "val_loss"}},
      dir / "plots" / "loss.png", {.title = "pretraining", .y_label = "nats/token"});

  std::string data = read_file_bytes(result.data);
  REQUIRE(data == "# train loss\n1 5.5\n3 4.25\n\n\n# val \"loss\"\n1 5.75\n\n\n");
  std::string script = read_file_bytes(result.script);
  REQUIRE(script.find("index 1 using 1:2") != std::string::npos);
  REQUIRE(script.find("title \"val \\\"loss\\\"\"") != std::string::npos);
  REQUIRE(result.rendered == gnuplot_installed());
  if (result.rendered) {
    std::string png = read_file_bytes(result.png);
    REQUIRE(png.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  }
}

TEST_CASE("Without gnuplot the data and script are kept and the message says how to render",
          "[pretrain][plot]") {
  TempDir dir;
  write_lines(dir / "metrics.jsonl", kMetrics);
  PathOverride no_programs("/nonexistent");
  PlotResult result =
      plot_metrics({{.metrics_path = dir / "metrics.jsonl", .key = "loss"}}, dir / "loss.png");
  REQUIRE_FALSE(result.rendered);
  REQUIRE_FALSE(std::filesystem::exists(dir / "loss.png"));
  REQUIRE(std::filesystem::exists(result.script));
  REQUIRE(std::filesystem::exists(result.data));
  REQUIRE_THAT(result.message,
               Catch::Contains("gnuplot not found") && Catch::Contains(result.script.string()));
}

TEST_CASE("A series without points is named and nothing is rendered for it", "[pretrain][plot]") {
  TempDir dir;
  write_lines(dir / "metrics.jsonl", kMetrics);
  PlotResult result =
      plot_metrics({{.metrics_path = dir / "metrics.jsonl", .key = "reward", .stage = "ppo"}},
                   dir / "reward.png");
  REQUIRE_FALSE(result.rendered);
  REQUIRE_THAT(result.message, Catch::Contains("no points for reward"));
  REQUIRE_THROWS_WITH(plot_metrics({}, dir / "none.png"), Catch::Contains("no series"));
}

TEST_CASE("plot_bars writes one row per category, one column per series, NaN for no bar",
          "[pretrain][plot]") {
  TempDir dir;
  PlotResult result = plot_bars({"all tasks", "unseen tasks"},
                                {{"curated", {0.5, 0.25}}, {"random", {0.125, std::nan("")}}},
                                dir / "bars" / "exact.png", {.title = "exact match"});
  REQUIRE(read_file_bytes(result.data) ==
          "# category \"curated\" \"random\"\n\"all tasks\" 0.5 0.125\n\"unseen tasks\" 0.25 "
          "NaN\n");
  const std::string script = read_file_bytes(result.script);
  REQUIRE(script.find("set style histogram cluster") != std::string::npos);
  REQUIRE(script.find("using 2:xtic(1) title \"curated\"") != std::string::npos);
  REQUIRE(script.find("'' using 3 title \"random\"") != std::string::npos);
  REQUIRE(result.rendered == gnuplot_installed());
  if (result.rendered)
    REQUIRE(read_file_bytes(result.png).substr(0, 4) == std::string("\x89PNG", 4));
  REQUIRE_THROWS_WITH(plot_bars({"a", "b"}, {{"x", {1.0}}}, dir / "bad.png"),
                      Catch::Contains("series 'x' has 1 values for 2 categories"));
}
