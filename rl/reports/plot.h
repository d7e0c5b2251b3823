// Line plots of training metrics (and grouped bar charts of final figures): JSONL metrics files
// (rl/metrics.h) -> gnuplot data + script -> PNG, for every trainer (pretraining, SFT, reward
// model, PPO, a whole pipeline).
//
// A series is one metric (e.g. "loss", "val_loss", "objective/kl") taken from one JSONL file,
// optionally only from records of one stage, plotted against another field (default "step"),
// shifted by x_offset so the stages of a pipeline can be laid end to end on one axis. Records
// without the metric, or where it is null (NaN/Inf), are skipped.
//
// Design choice: the .dat and .gp files are always written next to the PNG and are the product;
// rendering is a convenience. When gnuplot is missing or fails, plot_metrics returns
// rendered = false with a message saying how to render the kept files by hand, and never throws
// for that, so a training run is never lost to a plotting problem. Unreadable metrics files and
// bad arguments are still tiller::Errors.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace tiller::rl {

struct PlotSeries {
  std::string label = {};                   // legend entry; empty: the key
  std::filesystem::path metrics_path = {};  // a JSONL file
  std::string key = {};                     // the y value
  std::string stage = {};                   // only records whose "stage" equals this; empty: all
  std::string x_key = "step";
  double x_offset = 0.0;
};

struct PlotOptions {
  std::string title = {};
  std::string x_label = "step";
  std::string y_label = {};
  bool log_y = false;
  int width = 960;  // pixels
  int height = 540;
};

struct PlotResult {
  std::filesystem::path png;
  std::filesystem::path script;  // <png without extension>.gp
  std::filesystem::path data;    // <png without extension>.dat, one gnuplot index per series
  bool rendered = false;
  std::string message;  // what was written, or why the PNG was not rendered
};

// (x, y) points of one series, in file order.
std::vector<std::pair<double, double>> read_series(const PlotSeries& series);

// Writes data + script beside `png_path` and runs gnuplot on them.
PlotResult plot_metrics(const std::vector<PlotSeries>& series,
                        const std::filesystem::path& png_path, const PlotOptions& options = {});

// A grouped bar chart: one group of bars per category (x axis), one bar per series in each
// group; BarSeries::values holds one value per category (NaN: no bar). Same files and the same
// never-throw-for-gnuplot contract as plot_metrics.
struct BarSeries {
  std::string label;
  std::vector<double> values;
};
PlotResult plot_bars(const std::vector<std::string>& categories,
                     const std::vector<BarSeries>& series, const std::filesystem::path& png_path,
                     const PlotOptions& options = {});

}  // namespace tiller::rl
