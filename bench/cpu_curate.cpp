// Curation benchmark: rows/s of each stage on synthetic data, and near-duplicate recall and
// precision against an exact all-pairs Jaccard baseline.
//
//   bench_cpu_curate [--chats 100000] [--documents 10000] [--seed 1] [--write DIR]
//
// Data, generated here from the seed (kernels/random.h) so every run sees the same rows:
//   chats      a question of 8-15 and an answer of 20-35 words (~60 tokens) over a 4,000-word
//              vocabulary drawn with a skew; 5% exact copies (case and punctuation changed), 5%
//              near copies (1-2 answer words replaced), 3% broken (empty, truncated, repeating)
//   documents  ~2,000 words in lines of ~12 and paragraphs of 5 lines, with stop words; one in
//              ten each is short, bulleted, line-repeating, hash-tagged or numeric (Gopher
//              rejects), 3% exact and 3% near copies
//   recall     3,000 documents of 200 words; 250 pairs planted at each Jaccard level 0.6, 0.7,
//              0.8, 0.9 (words replaced at random positions until the shingle Jaccard reaches
//              the level), compared with the exact all-pairs Jaccard >= 0.7 baseline
// --write DIR also writes subsets and the C++ verdicts for bench/py_curate.py (datasketch and
// datatrove side by side).
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/data/curate.h"
#include "core/data/normalise.h"
#include "kernels/random.h"

using namespace tiller;
using namespace tiller::data;

namespace {

// One stream of the shared counter-based RNG.
struct Stream {
  uint64_t seed, counter = 0;
  uint64_t next() { return random::bits(seed, counter++); }
  double uniform() { return random::uniform(seed, counter++); }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
};

std::vector<std::string> make_vocabulary(uint64_t seed, size_t size) {
  static const char* kSyllables[] = {"ka",  "lo",  "mi",  "ren", "tas", "vo",  "zu",  "pel",
                                     "dra", "nor", "si",  "ul",  "bek", "fa",  "gri", "ho",
                                     "jun", "qua", "sto", "wen", "yl",  "cor", "dim", "esh",
                                     "tor", "bai", "mun", "pri", "sol", "vex"};
  Stream s{seed};
  std::vector<std::string> words;
  for (size_t i = 0; i < size; ++i) {
    std::string w;
    const size_t syllables = 2 + s.below(2);
    for (size_t k = 0; k < syllables; ++k) w += kSyllables[s.below(30)];
    words.push_back(w);
  }
  return words;
}

const std::vector<std::string> kStopWords = {"the",  "and", "of", "to", "with", "that",
                                             "have", "be",  "in", "a",  "is",   "it"};

// A skewed pick: low indices are frequent (u^2), like the head of a Zipf curve.
const std::string& pick(Stream& s, const std::vector<std::string>& vocabulary) {
  const double u = s.uniform();
  return vocabulary[static_cast<size_t>(u * u * static_cast<double>(vocabulary.size()))];
}

std::string words_text(Stream& s, const std::vector<std::string>& vocabulary, size_t n,
                       double stop_fraction) {
  std::string text;
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) text += ' ';
    text +=
        s.uniform() < stop_fraction ? kStopWords[s.below(kStopWords.size())] : pick(s, vocabulary);
  }
  return text;
}

std::string chat_line(const std::string& question, const std::string& answer) {
  return nlohmann::json{
      {"messages",
       {{{"role", "user"}, {"content", question}}, {{"role", "assistant"}, {"content", answer}}}}}
      .dump();
}

std::string replace_words(Stream& s, const std::string& text,
                          const std::vector<std::string>& vocabulary, int count) {
  std::vector<std::string> words;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    words.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  for (int k = 0; k < count; ++k) words[s.below(words.size())] = pick(s, vocabulary);
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) out += (i ? " " : "") + words[i];
  return out;
}

std::vector<Row> make_chats(size_t n, uint64_t seed, const std::vector<std::string>& vocabulary) {
  Stream s{seed};
  std::vector<Row> rows;
  rows.reserve(n);
  std::vector<std::pair<std::string, std::string>> originals;
  for (size_t i = 0; i < n; ++i) {
    const double u = s.uniform();
    std::string question, answer;
    if (u < 0.05 && !originals.empty()) {  // exact copy after normalisation
      std::tie(question, answer) = originals[s.below(originals.size())];
      question[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(question[0])));
      answer.insert(answer.size() / 2, ",");
    } else if (u < 0.10 && !originals.empty()) {  // near copy
      std::tie(question, answer) = originals[s.below(originals.size())];
      answer =
          replace_words(s, answer.substr(0, answer.size() - 1), vocabulary, 1 + s.below(2)) + ".";
    } else {
      question = words_text(s, vocabulary, 8 + s.below(8), 0.25) + "?";
      answer = words_text(s, vocabulary, 20 + s.below(16), 0.3) + ".";
      question[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(question[0])));
      answer[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(answer[0])));
      originals.emplace_back(question, answer);
      const double broken = s.uniform();
      if (broken < 0.01)
        answer = " ";
      else if (broken < 0.02)
        answer = answer.substr(0, answer.size() / 2);
      else if (broken < 0.03)
        answer = answer.substr(0, answer.size() - 1) + " again and again and again.";
    }
    rows.push_back(parse_row(chat_line(question, answer), fmt::format("chats:{}", i + 1)));
  }
  return rows;
}

std::string make_document(Stream& s, const std::vector<std::string>& vocabulary, size_t words,
                          int kind) {
  if (kind == 0) return words_text(s, vocabulary, 30, 0.3) + ".";  // too short
  std::string text;
  size_t written = 0, line = 0;
  std::vector<std::string> lines;
  while (written < words) {
    const size_t n = 8 + s.below(9);
    std::string l = words_text(s, vocabulary, n, 0.3);
    if (kind == 3) l += " #" + pick(s, vocabulary) + " #" + pick(s, vocabulary);
    if (kind == 4)
      for (int k = 0; k < 4; ++k) l += " " + std::to_string(s.below(100000));
    l += ".";
    if (kind == 1) l = "- " + l;
    if (kind == 2 && !lines.empty() && s.uniform() < 0.4) l = lines[s.below(lines.size())];
    lines.push_back(l);
    text += l;
    text += (++line % 5 == 0 && kind != 1) ? "\n\n" : "\n";  // bullet lists have no breaks
    written += n;
  }
  return text;
}

std::vector<Row> make_documents(size_t n, size_t words, uint64_t seed,
                                const std::vector<std::string>& vocabulary) {
  Stream s{seed};
  std::vector<Row> rows;
  std::vector<size_t> originals;
  for (size_t i = 0; i < n; ++i) {
    const double u = s.uniform();
    std::string text;
    if (u < 0.03 && !originals.empty()) {
      text = rows[originals[s.below(originals.size())]].text;
    } else if (u < 0.06 && !originals.empty()) {
      const std::string& base = rows[originals[s.below(originals.size())]].text;
      text = base.substr(0, base.size() * 19 / 20) + " " + words_text(s, vocabulary, 50, 0.3) + ".";
    } else {
      const int kind = static_cast<int>(s.below(10));
      text = make_document(s, vocabulary, words, kind <= 4 ? kind : 9);
      originals.push_back(rows.size());
    }
    rows.push_back(parse_row(nlohmann::json{{"text", text}}.dump(), fmt::format("docs:{}", i + 1)));
  }
  return rows;
}

void print_stages(const char* what, const CurateResult& result) {
  double total = 0;
  for (const StageReport& stage : result.stages) {
    total += stage.seconds;
    std::string reasons;
    for (const auto& [reason, count] : stage.removed_by_reason)
      reasons += fmt::format(" {}={}", reason, count);
    fmt::print("  {:<8} {:<14} {:>8} rows in {:7.2f} s = {:>10.0f} rows/s  removed:{}\n", what,
               stage.name, stage.rows_in, stage.seconds, stage.rows_in / stage.seconds,
               reasons.empty() ? " -" : reasons);
    for (const std::string& note : stage.notes) fmt::print("           {}\n", note);
  }
  fmt::print("  {:<8} all stages {:.2f} s; {} of {} rows kept\n", what, total, result.rows_kept,
             result.rows_in);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Near-dup recall/precision on planted pairs against the exact all-pairs baseline.
void recall_table(uint64_t seed, const std::vector<std::string>& vocabulary) {
  constexpr size_t kBase = 2000, kPairsPerLevel = 250, kWords = 200;
  constexpr double kThreshold = 0.7;
  const std::vector<double> levels = {0.6, 0.7, 0.8, 0.9};
  Stream s{seed + 7};
  std::vector<std::vector<uint64_t>> sets;
  std::vector<std::string> texts;
  for (size_t i = 0; i < kBase; ++i) {
    texts.push_back(words_text(s, vocabulary, kWords, 0.3));
    sets.push_back(word_shingles(normalise_text(texts.back()), 5));
  }
  struct Planted {
    size_t a, b;
    int level;
    double jaccard;
  };
  std::vector<Planted> planted;
  for (size_t level = 0; level < levels.size(); ++level) {
    for (size_t p = 0; p < kPairsPerLevel; ++p) {
      const size_t base = level * kPairsPerLevel + p;  // distinct base rows per pair
      // Replace one word at a time while the Jaccard stays at or above the level.
      std::string copy = texts[base];
      std::vector<uint64_t> shingles = sets[base];
      for (;;) {
        std::string next = replace_words(s, copy, vocabulary, 1);
        std::vector<uint64_t> next_shingles = word_shingles(normalise_text(next), 5);
        if (jaccard(sets[base], next_shingles) < levels[level]) break;
        copy = std::move(next), shingles = std::move(next_shingles);
      }
      texts.push_back(copy);
      sets.push_back(shingles);
      planted.push_back(
          {base, sets.size() - 1, static_cast<int>(level), jaccard(sets[base], shingles)});
    }
  }
  const auto n = static_cast<int64_t>(sets.size());
  // Exact all-pairs baseline.
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::pair<int64_t, int64_t>> truth;
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t i = 0; i < n; ++i) {
    std::vector<std::pair<int64_t, int64_t>> local;
    for (int64_t j = i + 1; j < n; ++j)
      if (jaccard(sets[static_cast<size_t>(i)], sets[static_cast<size_t>(j)]) >= kThreshold)
        local.emplace_back(i, j);
#pragma omp critical
    truth.insert(truth.end(), local.begin(), local.end());
  }
  const double all_pairs_seconds = seconds_since(start);
  fmt::print(
      "\nnear-duplicate recall / precision: {} rows of {} words, {} planted pairs per level, "
      "baseline = exact all-pairs Jaccard >= {} ({} pairs, {:.2f} s)\n",
      n, kWords, kPairsPerLevel, kThreshold, truth.size(), all_pairs_seconds);
  for (const auto& [bands, rows] : std::vector<std::pair<int, int>>{{20, 5}, {14, 8}}) {
    NearDedupConfig config{.ngram = 5,
                           .bands = bands,
                           .rows_per_band = rows,
                           .jaccard_threshold = kThreshold,
                           .seed = seed};
    const auto t0 = std::chrono::steady_clock::now();
    const NearDuplicates found = find_near_duplicates(sets, config);
    const double seconds = seconds_since(t0);
    fmt::print(
        "\n  {} bands x {} rows (S-curve midpoint {:.3f}): {:.2f} s, {} candidate pairs checked\n",
        bands, rows, lsh_threshold(bands, rows), seconds, found.candidate_pairs);
    fmt::print(
        "  | planted Jaccard | measured mean | P(candidate) theory | merged | recall vs "
        "baseline |\n  |---|---:|---:|---:|---:|\n");
    for (size_t level = 0; level < levels.size(); ++level) {
      int merged = 0, true_pairs = 0, true_merged = 0;
      double mean = 0;
      for (const Planted& p : planted) {
        if (p.level != static_cast<int>(level)) continue;
        const bool same = found.kept_of[p.a] == found.kept_of[p.b];
        merged += same;
        mean += p.jaccard;
        if (p.jaccard >= kThreshold) ++true_pairs, true_merged += same;
      }
      mean /= kPairsPerLevel;
      fmt::print("  | {:.1f} | {:.3f} | {:.4f} | {}/{} | {} |\n", levels[level], mean,
                 lsh_candidate_probability(mean, bands, rows), merged, kPairsPerLevel,
                 true_pairs ? fmt::format("{:.4f} ({}/{})", true_merged / double(true_pairs),
                                          true_merged, true_pairs)
                            : std::string("- (below threshold)"));
    }
    int64_t found_truth = 0;
    for (const auto& [a, b] : truth) found_truth += found.kept_of[a] == found.kept_of[b];
    // Precision: of the rows removed as duplicates, those whose kept row is a true duplicate
    // (exact Jaccard >= threshold, directly or through a chain of true pairs).
    UnionFind truth_clusters(n);
    for (const auto& [a, b] : truth) truth_clusters.unite(a, b);
    int64_t removed = 0, removed_correctly = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (found.kept_of[static_cast<size_t>(i)] == i) continue;
      ++removed;
      removed_correctly +=
          truth_clusters.find(i) == truth_clusters.find(found.kept_of[static_cast<size_t>(i)]);
    }
    fmt::print(
        "  overall: recall {:.4f} ({}/{} baseline pairs in one cluster), precision {:.4f} "
        "({}/{} removed rows truly duplicate their kept row)\n",
        truth.empty() ? 1.0 : found_truth / double(truth.size()), found_truth, truth.size(),
        removed ? removed_correctly / double(removed) : 1.0, removed_correctly, removed);
  }
}

void write_for_python(const std::filesystem::path& dir, const std::vector<Row>& chats,
                      const std::vector<Row>& docs) {
  std::filesystem::create_directories(dir);
  const NearDedupConfig near;
  {
    std::ofstream out(dir / "chats.jsonl");
    for (const Row& r : chats) out << r.raw << "\n";
    std::vector<std::vector<uint64_t>> sets;
    for (const Row& r : chats) sets.push_back(word_shingles(normalise_text(r.text), near.ngram));
    const auto t0 = std::chrono::steady_clock::now();
    const NearDuplicates found = find_near_duplicates(sets, near);
    const double seconds = seconds_since(t0);
    std::ofstream verdicts(dir / "cpp_near_dup_chats.txt");
    for (int64_t k : found.kept_of) verdicts << k << "\n";
    std::ofstream(dir / "cpp_near_dup_seconds.txt") << seconds << "\n";
  }
  {
    std::ofstream out(dir / "docs.jsonl");
    for (const Row& r : docs) out << r.raw << "\n";
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::string> rules;
    for (const Row& r : docs) {
      const RuleVerdict v = check_document(r.text);
      rules.push_back(v.passed() ? "pass" : v.rule);
    }
    const double seconds = seconds_since(t0);
    std::ofstream verdicts(dir / "cpp_gopher_docs.txt");
    for (const std::string& rule : rules) verdicts << rule << "\n";
    std::ofstream(dir / "cpp_gopher_seconds.txt") << seconds << "\n";
  }
  const MinHasher hasher(near.bands * near.rows_per_band, near.seed);
  nlohmann::json config = {{"ngram", near.ngram},
                           {"bands", near.bands},
                           {"rows_per_band", near.rows_per_band},
                           {"jaccard_threshold", near.jaccard_threshold},
                           {"a", hasher.a()},
                           {"b", hasher.b()}};
  std::ofstream(dir / "config.json") << config.dump() << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  size_t chats = 100000, documents = 10000;
  uint64_t seed = 1;
  std::string write_dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--chats"))
      chats = std::stoul(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--documents"))
      documents = std::stoul(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--seed"))
      seed = std::stoull(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--write"))
      write_dir = argv[i + 1];
    else {
      fmt::print(stderr,
                 "usage: bench_cpu_curate [--chats N] [--documents N] [--seed S] [--write DIR]\n");
      return 2;
    }
  }
  const std::vector<std::string> vocabulary = make_vocabulary(seed, 4000);

  auto t0 = std::chrono::steady_clock::now();
  const std::vector<Row> chat_rows = make_chats(chats, seed + 1, vocabulary);
  fmt::print("generated {} chats in {:.1f} s\n", chat_rows.size(), seconds_since(t0));
  CurateConfig config;
  config.stages = {"exact_dedup", "near_dedup", "quality"};
  print_stages("chats", Curator(config).run(chat_rows));
  // Decontamination against 1,000 eval questions (half of them planted in the pool) and DEITA
  // selection to 1,000 on hashed bag-of-words embeddings.
  std::vector<Row> eval_rows;
  for (size_t i = 0; i < 1000 && i < chat_rows.size(); ++i)
    eval_rows.push_back(parse_row(
        nlohmann::json{
            {"messages",
             {{{"role", "user"},
               {"content", i % 2 ? chat_rows[i * 37 % chat_rows.size()].prompt
                                 : "Unrelated eval question number " + std::to_string(i) + "?"}}}}}
            .dump(),
        fmt::format("eval:{}", i + 1)));
  config.stages = {"decontaminate", "select"};
  config.select.budget = 1000;
  print_stages("chats", Curator(config, eval_rows).run(chat_rows));
  config.select.method = "k_center";
  config.stages = {"select"};
  const std::vector<Row> first_10k(chat_rows.begin(),
                                   chat_rows.begin() + std::min<size_t>(10000, chat_rows.size()));
  print_stages("10k chats k_center", Curator(config).run(first_10k));

  t0 = std::chrono::steady_clock::now();
  const std::vector<Row> doc_rows = make_documents(documents, 2000, seed + 2, vocabulary);
  fmt::print("generated {} documents in {:.1f} s\n", doc_rows.size(), seconds_since(t0));
  config = CurateConfig{};
  config.stages = {"exact_dedup", "near_dedup", "quality"};
  print_stages("docs", Curator(config).run(doc_rows));

  recall_table(seed, vocabulary);

  if (!write_dir.empty()) {
    const std::vector<Row> chat_subset(
        chat_rows.begin(), chat_rows.begin() + std::min<size_t>(20000, chat_rows.size()));
    const std::vector<Row> doc_subset(doc_rows.begin(),
                                      doc_rows.begin() + std::min<size_t>(1000, doc_rows.size()));
    write_for_python(write_dir, chat_subset, doc_subset);
    fmt::print("\nwrote subsets and C++ verdicts for bench/py_curate.py to {}\n", write_dir);
  }
  return 0;
}
