// Metrics -> gnuplot data, script and PNG (see rl/plot.h).
//
// The script picks pngcairo when this gnuplot has it and falls back to the libgd png terminal,
// so it renders on any Debian gnuplot build. gnuplot runs as a child process through the shell
// with every path single-quoted; its stderr goes to <png>.log so a failure can be reported.
#include "rl/reports/plot.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include "core/io/atomic_file.h"
#include "kernels/error.h"

namespace tiller::rl {

namespace {

constexpr size_t kMaxPointsWithMarkers = 60;

// A double-quoted gnuplot string literal.
std::string gnuplot_string(const std::string& text) {
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return quoted + "\"";
}

// A single-quoted shell word.
std::string shell_word(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::filesystem::path with_extension(const std::filesystem::path& png, const char* extension) {
  auto path = png;
  return path.replace_extension(extension);
}

std::string script_header(const PlotResult& result, const PlotOptions& options) {
  std::string script = "# Written by tiller (rl/plot.cpp); render with: gnuplot <this file>\n";
  script += fmt::format("data_file = {}\n", gnuplot_string(result.data.string()));
  script += fmt::format(
      "if (strstrt(GPVAL_TERMINALS, \"pngcairo\") > 0) {{ set terminal pngcairo size {},{} "
      "enhanced font \"sans,10\" }} else {{ set terminal png size {},{} }}\n",
      options.width, options.height, options.width, options.height);
  script += fmt::format("set output {}\n", gnuplot_string(result.png.string()));
  script += fmt::format("set title {} noenhanced\n", gnuplot_string(options.title));
  script += fmt::format("set xlabel {} noenhanced\n", gnuplot_string(options.x_label));
  script += fmt::format("set ylabel {} noenhanced\n", gnuplot_string(options.y_label));
  return script;
}

// Runs gnuplot on the written script; fills rendered and message (never throws for gnuplot).
void render(PlotResult& result) {
  const std::string kept =
      fmt::format("kept {} and {}", result.script.string(), result.data.string());
  if (std::system("gnuplot --version > /dev/null 2>&1") != 0) {
    result.message = fmt::format(
        "plot: gnuplot not found (Debian: apt-get install gnuplot-nox); {}; render with "
        "gnuplot {}",
        kept, result.script.string());
    return;
  }
  const auto log_path = with_extension(result.png, ".log");
  std::error_code ignored;
  std::filesystem::remove(result.png, ignored);  // so a stale PNG never passes for a new one
  const std::string command =
      fmt::format("gnuplot {} > {} 2>&1", shell_word(result.script), shell_word(log_path));
  if (std::system(command.c_str()) != 0 || !std::filesystem::exists(result.png)) {
    result.message = fmt::format("plot: gnuplot failed on {} (see {}); {}", result.script.string(),
                                 log_path.string(), kept);
    return;
  }
  std::filesystem::remove(log_path, ignored);
  result.rendered = true;
  result.message = fmt::format("plot: wrote {}", result.png.string());
}

}  // namespace

std::vector<std::pair<double, double>> read_series(const PlotSeries& series) {
  std::ifstream in(series.metrics_path);
  TILLER_CHECK(in.good(), "plot: cannot open metrics file {}", series.metrics_path.string());
  std::vector<std::pair<double, double>> points;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    auto record = nlohmann::json::parse(line, nullptr, false);
    if (record.is_discarded()) {
      // A crash can tear only the last line (MetricsLog flushes per record); anything else is
      // not a metrics file.
      TILLER_CHECK(in.peek() == std::char_traits<char>::eof(), "plot: {} line {} is not JSON",
                   series.metrics_path.string(), number);
      continue;
    }
    if (!series.stage.empty() && record.value("stage", std::string()) != series.stage) continue;
    auto x = record.find(series.x_key), y = record.find(series.key);
    if (x == record.end() || y == record.end() || !x->is_number() || !y->is_number()) continue;
    points.emplace_back(x->get<double>() + series.x_offset, y->get<double>());
  }
  return points;
}

PlotResult plot_metrics(const std::vector<PlotSeries>& series,
                        const std::filesystem::path& png_path, const PlotOptions& options) {
  TILLER_CHECK(!series.empty(), "plot: no series to plot into {}", png_path.string());
  TILLER_CHECK(options.width > 0 && options.height > 0, "plot: size {}x{} must be positive",
               options.width, options.height);
  PlotResult result;
  result.png = png_path;
  result.script = with_extension(png_path, ".gp");
  result.data = with_extension(png_path, ".dat");
  if (png_path.has_parent_path()) std::filesystem::create_directories(png_path.parent_path());

  // One gnuplot index (blocks separated by two blank lines) per non-empty series.
  std::string data;
  std::vector<std::string> plot_clauses;
  std::vector<std::string> empty_series;
  for (const PlotSeries& s : series) {
    const std::string label = s.label.empty() ? s.key : s.label;
    auto points = read_series(s);
    if (points.empty()) {
      empty_series.push_back(label);
      continue;
    }
    data += "# " + label + "\n";
    for (auto [x, y] : points) data += fmt::format("{:.9g} {:.9g}\n", x, y);
    data += "\n\n";
    // Sparse series (validation every N steps) get point markers so each measurement shows.
    const char* style =
        points.size() <= kMaxPointsWithMarkers ? "linespoints pt 7 ps 0.8" : "lines";
    plot_clauses.push_back(fmt::format("{} index {} using 1:2 with {} lw 2 title {}",
                                       plot_clauses.empty() ? "data_file" : "''",
                                       plot_clauses.size(), style, gnuplot_string(label)));
  }
  write_file_atomic(result.data, data);

  std::string script = script_header(result, options);
  // An opaque, boxed key stays readable where the curves run under it.
  script += "set key top right noenhanced box opaque\nset grid\n";
  if (options.log_y) script += "set logscale y\n";
  if (!plot_clauses.empty()) {
    script += "plot ";
    for (size_t i = 0; i < plot_clauses.size(); ++i)
      script += (i ? ", \\\n     " : "") + plot_clauses[i];
    script += "\n";
  }
  write_file_atomic(result.script, script);

  const std::string kept =
      fmt::format("kept {} and {}", result.script.string(), result.data.string());
  if (plot_clauses.empty()) {
    result.message = fmt::format("plot: no points for {}; {}", fmt::join(empty_series, ", "), kept);
    return result;
  }
  render(result);
  if (!result.rendered) return result;
  if (!empty_series.empty())
    result.message += fmt::format(" (no points for {})", fmt::join(empty_series, ", "));
  return result;
}

PlotResult plot_bars(const std::vector<std::string>& categories,
                     const std::vector<BarSeries>& series, const std::filesystem::path& png_path,
                     const PlotOptions& options) {
  TILLER_CHECK(!categories.empty() && !series.empty(), "plot_bars: no {} to plot into {}",
               categories.empty() ? "categories" : "series", png_path.string());
  for (const BarSeries& s : series)
    TILLER_CHECK(s.values.size() == categories.size(),
                 "plot_bars: series '{}' has {} values for {} categories", s.label, s.values.size(),
                 categories.size());
  PlotResult result;
  result.png = png_path;
  result.script = with_extension(png_path, ".gp");
  result.data = with_extension(png_path, ".dat");
  if (png_path.has_parent_path()) std::filesystem::create_directories(png_path.parent_path());
  // One row per category: its quoted name, then one column per series ("NaN": no bar).
  std::string data = "# category";
  for (const BarSeries& s : series) {
    data += ' ';
    data += gnuplot_string(s.label);
  }
  data += "\n";
  for (size_t c = 0; c < categories.size(); ++c) {
    data += gnuplot_string(categories[c]);
    for (const BarSeries& s : series)
      data += std::isfinite(s.values[c]) ? fmt::format(" {:.9g}", s.values[c]) : " NaN";
    data += "\n";
  }
  write_file_atomic(result.data, data);
  std::string script = script_header(result, options);
  script +=
      "set key outside right noenhanced\nset grid ytics\nset yrange [0:*]\n"
      "set style data histogram\nset style histogram cluster gap 1\n"
      "set style fill solid 0.85 border -1\nset boxwidth 0.9\nset xtics noenhanced\n";
  if (options.log_y) script += "set logscale y\n";
  script += "plot ";
  for (size_t i = 0; i < series.size(); ++i)
    script +=
        fmt::format("{}{} using {}{} title {}", i ? ", \\\n     " : "", i ? "''" : "data_file",
                    i + 2, i ? "" : ":xtic(1)", gnuplot_string(series[i].label));
  script += "\n";
  write_file_atomic(result.script, script);
  render(result);
  return result;
}

}  // namespace tiller::rl
