// Curator: the stages in order. See curate.h.
#include "core/data/curate.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <ostream>
#include <unordered_map>

#include "core/data/normalise.h"
#include "kernels/error.h"

namespace tiller::data {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct State {
  const std::vector<Row>& rows;
  std::vector<std::optional<Rejection>>& rejections;
  RowScores& scores;
  bool scored = false;

  std::vector<int64_t> alive() const {
    std::vector<int64_t> out;
    for (size_t i = 0; i < rows.size(); ++i)
      if (!rejections[i]) out.push_back(static_cast<int64_t>(i));
    return out;
  }
  void reject(int64_t row, StageReport& report, Rejection rejection) {
    ++report.removed_by_reason[rejection.reason];
    rejections[static_cast<size_t>(row)] = std::move(rejection);
  }
};

// The score a rank_by names: "auto" is the reward when there is one, else the perplexity.
std::string resolved_rank_by(const std::string& rank_by, bool has_reward) {
  if (rank_by == "auto") return has_reward ? "reward" : "perplexity";
  return rank_by;
}

// Higher is better; NaN when the row has no value for the chosen score.
double rank_value(const RowScores& scores, const std::string& rank_by, bool has_reward, int64_t i) {
  const auto at = [&](const std::vector<double>& v) {
    return v.empty() ? kNaN : v[static_cast<size_t>(i)];
  };
  const std::string by = resolved_rank_by(rank_by, has_reward);
  if (by == "reward") return at(scores.reward);
  if (by == "perplexity") return -at(scores.perplexity);
  if (by == "ifd") return at(scores.ifd);
  fail("curate: unknown rank_by '{}'; expected auto, reward, perplexity or ifd", rank_by);
}

// Indices sorted best first; rows without a value go last in input order.
std::vector<int64_t> ranked(std::vector<int64_t> indices, const std::vector<double>& value) {
  std::stable_sort(indices.begin(), indices.end(), [&](int64_t a, int64_t b) {
    const double va = value[static_cast<size_t>(a)], vb = value[static_cast<size_t>(b)];
    if (std::isnan(va)) return false;
    if (std::isnan(vb)) return true;
    return va > vb;
  });
  return indices;
}

// Subtracts the pool's mean embedding, then L2-normalises each row. Mean-pooled hidden states of
// a small model are anisotropic (every raw cosine near 1, so DEITA's θ = 0.9 would keep a
// handful of rows); centring makes cosines measure how rows differ from the pool's average.
void center_and_normalise(Embeddings& e) {
  const int64_t n = e.size();
  if (n == 0) return;
  std::vector<double> mean(static_cast<size_t>(e.dim), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t d = 0; d < e.dim; ++d) mean[static_cast<size_t>(d)] += e.row(i)[d];
  for (double& m : mean) m /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    float* row = e.values.data() + i * e.dim;
    double norm = 0;
    for (int64_t d = 0; d < e.dim; ++d) {
      row[d] = static_cast<float>(row[d] - mean[static_cast<size_t>(d)]);
      norm += static_cast<double>(row[d]) * row[d];
    }
    if (norm > 0)
      for (int64_t d = 0; d < e.dim; ++d) row[d] = static_cast<float>(row[d] / std::sqrt(norm));
  }
}

// CaR's rule of thumb for k when none is given: round(sqrt(rows / 2)), at least 1.
int64_t clusters_for(int64_t configured, int64_t rows) {
  return configured > 0 ? configured
                        : std::max<int64_t>(1, std::llround(std::sqrt(rows / 2.0)));
}

}  // namespace

Curator::Curator(CurateConfig config, std::vector<Row> eval_rows, ScoreProvider* provider)
    : config_(std::move(config)), eval_rows_(std::move(eval_rows)), provider_(provider) {
  static const std::vector<std::string> kStages = {"exact_dedup",   "near_dedup", "quality",
                                                   "decontaminate", "scores",     "select"};
  for (const std::string& stage : config_.stages)
    TILLER_CHECK(std::find(kStages.begin(), kStages.end(), stage) != kStages.end(),
                 "curate: unknown stage '{}'; expected one of {}", stage, fmt::join(kStages, ", "));
}

CurateResult Curator::run(const std::vector<Row>& rows, std::ostream* log) const {
  TILLER_CHECK(!rows.empty(),
               "curate: the input has no rows (every file was empty or every line "
               "malformed)");
  const auto run_start = std::chrono::steady_clock::now();
  const auto n = static_cast<int64_t>(rows.size());
  CurateResult result;
  result.rows_in = n;
  result.rejections.assign(rows.size(), std::nullopt);
  result.scores = {std::vector<double>(rows.size(), kNaN), std::vector<double>(rows.size(), kNaN),
                   std::vector<double>(rows.size(), kNaN)};
  State state{rows, result.rejections, result.scores};
  const bool has_reward = provider_ != nullptr && provider_->has_reward();
  std::vector<double> rank(rows.size(), kNaN);
  const auto refresh_rank = [&] {
    for (int64_t i = 0; i < n; ++i)
      rank[static_cast<size_t>(i)] =
          rank_value(result.scores, config_.scores.rank_by, has_reward, i);
  };
  // Within a duplicate group: the better rank wins, ties (and no scores) go to the earlier row.
  const auto better = [&](int64_t a, int64_t b) {
    if (!state.scored) return false;
    const double ra = rank[static_cast<size_t>(a)], rb = rank[static_cast<size_t>(b)];
    return !std::isnan(ra) && (std::isnan(rb) || ra > rb);
  };
  // The provider's embeddings by row, raw, kept between stages: the scores stage's per-cluster
  // cut embeds rows that select embeds again. Each stage centres its own subset.
  std::vector<std::vector<float>> embedded(rows.size());
  int64_t embedding_dim = 0;
  const auto embeddings_of = [&](const std::vector<int64_t>& indices) {
    std::vector<int64_t> missing;
    for (int64_t row : indices)
      if (embedded[static_cast<size_t>(row)].empty()) missing.push_back(row);
    if (!missing.empty()) {
      const Embeddings fresh = provider_->embed(rows, missing);
      embedding_dim = fresh.dim;
      for (size_t k = 0; k < missing.size(); ++k)
        embedded[static_cast<size_t>(missing[k])].assign(
            fresh.row(static_cast<int64_t>(k)), fresh.row(static_cast<int64_t>(k)) + fresh.dim);
    }
    Embeddings out;
    out.dim = embedding_dim;
    out.values.reserve(indices.size() * static_cast<size_t>(embedding_dim));
    for (int64_t row : indices) {
      const std::vector<float>& e = embedded[static_cast<size_t>(row)];
      out.values.insert(out.values.end(), e.begin(), e.end());
    }
    return out;
  };

  for (const std::string& stage : config_.stages) {
    const auto start = std::chrono::steady_clock::now();
    StageReport report;
    report.name = stage;
    const std::vector<int64_t> alive = state.alive();
    report.rows_in = static_cast<int64_t>(alive.size());

    if (stage == "exact_dedup") {
      std::unordered_map<uint64_t, int64_t> kept;  // hash -> best row so far
      std::vector<uint64_t> hashes(alive.size());
#pragma omp parallel for schedule(dynamic, 256)
      for (int64_t k = 0; k < static_cast<int64_t>(alive.size()); ++k)
        hashes[static_cast<size_t>(k)] = text_hash64(
            normalise_text(rows[static_cast<size_t>(alive[static_cast<size_t>(k)])].text));
      for (size_t k = 0; k < alive.size(); ++k) {
        auto [it, inserted] = kept.emplace(hashes[k], alive[k]);
        if (!inserted && better(alive[k], it->second)) it->second = alive[k];
      }
      for (size_t k = 0; k < alive.size(); ++k) {
        const int64_t keeper = kept[hashes[k]];
        if (keeper != alive[k])
          state.reject(alive[k], report,
                       {stage, "exact_duplicate", "same normalised text", keeper, 1.0, -1});
      }
    } else if (stage == "near_dedup") {
      std::vector<std::vector<uint64_t>> shingles(alive.size());
#pragma omp parallel for schedule(dynamic, 256)
      for (int64_t k = 0; k < static_cast<int64_t>(alive.size()); ++k)
        shingles[static_cast<size_t>(k)] = word_shingles(
            normalise_text(rows[static_cast<size_t>(alive[static_cast<size_t>(k)])].text),
            config_.near_dedup.ngram);
      std::vector<double> priority;
      if (state.scored) {
        for (int64_t row : alive) {
          const double r = rank[static_cast<size_t>(row)];
          priority.push_back(std::isnan(r) ? -std::numeric_limits<double>::infinity() : r);
        }
      }
      const NearDuplicates found = find_near_duplicates(shingles, config_.near_dedup, priority);
      for (size_t k = 0; k < alive.size(); ++k) {
        const int64_t keeper = found.kept_of[k];
        if (keeper == static_cast<int64_t>(k)) continue;
        const double similarity = jaccard(shingles[k], shingles[static_cast<size_t>(keeper)]);
        state.reject(alive[k], report,
                     {stage, "near_duplicate",
                      fmt::format("Jaccard {:.3f} with the kept row of its cluster", similarity),
                      alive[static_cast<size_t>(keeper)], similarity, -1});
      }
      report.notes.push_back(
          fmt::format("{} bands x {} rows, {}-word shingles, threshold Jaccard >= {} (S-curve "
                      "midpoint {:.3f}); "
                      "{} candidate pairs checked, {} confirmed",
                      config_.near_dedup.bands, config_.near_dedup.rows_per_band,
                      config_.near_dedup.ngram, config_.near_dedup.jaccard_threshold,
                      lsh_threshold(config_.near_dedup.bands, config_.near_dedup.rows_per_band),
                      found.candidate_pairs, found.confirmed_pairs));
    } else if (stage == "quality") {
      std::vector<RuleVerdict> verdicts(alive.size());
#pragma omp parallel for schedule(dynamic, 64)
      for (int64_t k = 0; k < static_cast<int64_t>(alive.size()); ++k) {
        const Row& row = rows[static_cast<size_t>(alive[static_cast<size_t>(k)])];
        verdicts[static_cast<size_t>(k)] = row.format == RowFormat::text
                                               ? check_document(row.text, config_.gopher)
                                               : check_chat(row, config_.chat_rules);
      }
      for (size_t k = 0; k < alive.size(); ++k)
        if (!verdicts[k].passed())
          state.reject(alive[k], report, {stage, verdicts[k].rule, verdicts[k].detail, -1, 0, -1});
    } else if (stage == "decontaminate") {
      if (eval_rows_.empty()) {
        report.notes.push_back("skipped: no eval rows (--eval)");
      } else {
        const Decontaminator decontaminator(eval_rows_, config_.decontamination);
        for (int64_t row : alive)
          if (auto hit = decontaminator.check(rows[static_cast<size_t>(row)]))
            state.reject(row, report,
                         {stage, hit->reason, fmt::format("matches eval {}", hit->eval_source), -1,
                          0, hit->eval_index});
        report.notes.push_back(fmt::format("{} eval rows", eval_rows_.size()));
      }
    } else if (stage == "scores") {
      if (provider_ == nullptr) {
        report.notes.push_back("skipped: no model (--model)");
      } else {
        const ScoreFilterConfig& filter = config_.scores;
        // IFD costs a second forward pass per row: computed only when a filter or the rank
        // reads it.
        provider_->score(
            rows, alive, result.scores,
            {.ifd = filter.max_ifd > 0 || resolved_rank_by(filter.rank_by, has_reward) == "ifd",
             .reward = true});
        state.scored = true;
        refresh_rank();
        std::vector<int64_t> survivors;
        for (int64_t row : alive) {
          const auto i = static_cast<size_t>(row);
          const double ppl = result.scores.perplexity[i], ifd = result.scores.ifd[i],
                       reward = result.scores.reward[i];
          if (filter.max_perplexity > 0 && ppl > filter.max_perplexity)
            state.reject(
                row, report,
                {stage, "perplexity_above_max",
                 fmt::format("perplexity {:.3f} > {}", ppl, filter.max_perplexity), -1, 0, -1});
          else if (filter.max_ifd > 0 && ifd > filter.max_ifd)
            state.reject(row, report,
                         {stage, "ifd_above_max",
                          fmt::format("IFD {:.3f} > {}", ifd, filter.max_ifd), -1, 0, -1});
          else if (reward < filter.min_reward)
            state.reject(row, report,
                         {stage, "reward_below_min",
                          fmt::format("reward {:.3f} < {}", reward, filter.min_reward), -1, 0, -1});
          else
            survivors.push_back(row);
        }
        if (filter.keep_top_fraction < 1.0 && !survivors.empty()) {
          // The groups the cut ranks within: every survivor, or each k-means cluster of them.
          std::vector<std::vector<int64_t>> groups;
          if (filter.keep_top_within == "clusters") {
            Embeddings embeddings = embeddings_of(survivors);
            center_and_normalise(embeddings);
            const int64_t k =
                clusters_for(filter.clusters, static_cast<int64_t>(survivors.size()));
            const std::vector<int32_t> cluster = k_means(embeddings, k, config_.select.seed);
            groups.resize(static_cast<size_t>(*std::max_element(cluster.begin(), cluster.end())) +
                          1);
            for (size_t j = 0; j < survivors.size(); ++j)
              groups[static_cast<size_t>(cluster[j])].push_back(survivors[j]);
            report.notes.push_back(fmt::format("the top {} of each of {} k-means clusters kept",
                                               filter.keep_top_fraction, groups.size()));
          } else {
            groups.push_back(survivors);
          }
          for (size_t g = 0; g < groups.size(); ++g) {
            const std::vector<int64_t> order = ranked(groups[g], rank);
            const auto keep = static_cast<size_t>(
                std::ceil(filter.keep_top_fraction * static_cast<double>(order.size())));
            const std::string where =
                groups.size() > 1 ? fmt::format(" in cluster {}", g) : std::string();
            for (size_t k = keep; k < order.size(); ++k)
              state.reject(order[k], report,
                           {stage, "below_top_fraction",
                            fmt::format("rank {} of {}{}, keeping the top {}", k + 1,
                                        order.size(), where, filter.keep_top_fraction),
                            -1, 0, -1});
          }
        }
      }
    } else if (stage == "select") {
      const SelectConfig& select = config_.select;
      if (select.budget <= 0) {
        report.notes.push_back("skipped: no budget (--budget)");
      } else {
        Embeddings embeddings;
        DiversityReport diversity;
        diversity.method = select.method;
        diversity.budget = select.budget;
        if (provider_ != nullptr) {
          embeddings = embeddings_of(alive);
          diversity.embeddings = "model (mean-pooled final hidden states)";
        } else {
          embeddings.dim = select.bag_of_words_dim;
          embeddings.values.resize(alive.size() * static_cast<size_t>(embeddings.dim));
#pragma omp parallel for schedule(dynamic, 256)
          for (int64_t k = 0; k < static_cast<int64_t>(alive.size()); ++k) {
            const std::vector<float> f = hashed_bag_of_words(
                normalise_text(rows[static_cast<size_t>(alive[static_cast<size_t>(k)])].text),
                embeddings.dim);
            std::copy(f.begin(), f.end(), embeddings.values.begin() + k * embeddings.dim);
          }
          diversity.embeddings = "hashed bag of words (no --model)";
        }
        center_and_normalise(embeddings);
        std::vector<int64_t> positions(alive.size());
        std::iota(positions.begin(), positions.end(), 0);
        std::vector<double> local_rank(alive.size(), kNaN);
        if (state.scored)
          for (size_t k = 0; k < alive.size(); ++k)
            local_rank[k] = rank[static_cast<size_t>(alive[k])];
        const std::vector<int64_t> order = ranked(positions, local_rank);
        std::vector<int64_t> chosen;
        if (select.budget >= static_cast<int64_t>(alive.size())) {
          chosen = positions;
          report.notes.push_back(
              fmt::format("budget {} >= the {} rows left: every row kept, nothing selected",
                          select.budget, alive.size()));
        } else if (select.method == "k_center") {
          chosen = k_center_greedy(embeddings, select.budget, order.empty() ? 0 : order.front());
        } else if (select.method == "deita") {
          chosen = deita_select(embeddings, order, select.budget, select.threshold);
          if (static_cast<int64_t>(chosen.size()) < select.budget)
            report.notes.push_back(
                fmt::format("DEITA threshold {} left only {} rows below the budget {}",
                            select.threshold, chosen.size(), select.budget));
        } else if (select.method == "car") {
          const auto n_alive = static_cast<int64_t>(alive.size());
          const int64_t k = clusters_for(select.clusters, n_alive);
          const std::vector<int32_t> cluster = k_means(embeddings, k, select.seed);
          chosen = cluster_round_robin(cluster, order, select.budget);
          const int64_t used = *std::max_element(cluster.begin(), cluster.end()) + 1;
          diversity.cluster_sizes.assign(static_cast<size_t>(used), 0);
          diversity.cluster_selected.assign(static_cast<size_t>(used), 0);
          for (int32_t c : cluster) ++diversity.cluster_sizes[static_cast<size_t>(c)];
          for (int64_t c : chosen)
            ++diversity.cluster_selected[static_cast<size_t>(cluster[static_cast<size_t>(c)])];
          report.notes.push_back(fmt::format("k-means: {} clusters of {} rows", used, n_alive));
        } else {
          fail("curate: unknown select method '{}'; expected deita, k_center or car",
               select.method);
        }
        std::vector<char> is_chosen(alive.size(), 0);
        for (int64_t c : chosen) is_chosen[static_cast<size_t>(c)] = 1;
        std::vector<int64_t> before_sample;
        for (size_t k = 0; k < alive.size(); ++k) {
          const Row& row = rows[static_cast<size_t>(alive[k])];
          if (!row.task.empty()) {
            ++diversity.tasks_before[row.task];
            if (is_chosen[k]) ++diversity.tasks_after[row.task];
          }
          if (!is_chosen[k])
            state.reject(
                alive[k], report,
                {stage, "not_selected",
                 fmt::format("{} selection to a budget of {}", select.method, select.budget), -1, 0,
                 -1});
        }
        // Diversity before: a seed-free, evenly spaced sample of the pool of the same size.
        const size_t sample = std::min(alive.size(), chosen.size());
        for (size_t k = 0; k < sample; ++k)
          before_sample.push_back(
              static_cast<int64_t>(k * alive.size() / std::max<size_t>(1, sample)));
        diversity.selected = static_cast<int64_t>(chosen.size());
        diversity.mean_nn_distance_before =
            mean_nearest_neighbour_distance(embeddings, before_sample);
        diversity.mean_nn_distance_after = mean_nearest_neighbour_distance(embeddings, chosen);
        result.diversity = diversity;
      }
    }
    report.rows_out = static_cast<int64_t>(state.alive().size());
    report.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (log != nullptr) {
      *log << fmt::format("curate: {:<14} {:>8} -> {:>8} rows ({:.2f} s)", stage, report.rows_in,
                          report.rows_out, report.seconds);
      for (const std::string& note : report.notes) *log << "; " << note;
      *log << "\n";
    }
    result.stages.push_back(std::move(report));
  }
  result.rows_kept = static_cast<int64_t>(state.alive().size());
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
  return result;
}

}  // namespace tiller::data
