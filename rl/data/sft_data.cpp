// SFT datasets, packing and collation (see rl/sft_data.h).
//
// Targets follow the next-token convention of Transformer::loss: input position t predicts
// tokens[t + 1], and carries loss exactly when trainable[t + 1] — so the mask computed by the chat
// template on tokens is shifted by one here, in one place (collate).
#include "rl/data/sft_data.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "kernels/error.h"
#include "kernels/random.h"

namespace tiller::rl {

namespace {

constexpr int32_t kIgnore = -100;  // cross_entropy's default ignore_index
constexpr size_t kMaxProblemsKept = 100;

void note_problem(SftDataReport& report, std::string message) {
  if (report.problems.size() < kMaxProblemsKept) report.problems.push_back(std::move(message));
}

SftDataReport recount(const std::vector<SftExample>& examples) {
  SftDataReport report;
  report.examples = static_cast<int64_t>(examples.size());
  for (const auto& example : examples) {
    report.trainable_tokens += example.trainable_targets();
    report.total_tokens += static_cast<int64_t>(example.tokens.size());
  }
  return report;
}

// render_chat's errors ("message 0 has role 'robot'") prefixed with where the chat came from.
RenderedChat render_named(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                          const std::string& source) {
  try {
    return render_chat(tokenizer, messages);
  } catch (const Error& error) {
    fail("{}: {}", source, error.what());
  }
}

}  // namespace

int64_t SftExample::trainable_targets() const {
  int64_t count = 0;
  for (size_t t = 1; t < trainable.size(); ++t) count += trainable[t] ? 1 : 0;
  return count;
}

std::string SftDataReport::summary() const {
  return fmt::format(
      "{} examples ({} tokens, {} trainable), {} truncated ({} tokens cut), {} malformed lines "
      "skipped, {} without a trainable target skipped",
      examples, total_tokens, trainable_tokens, truncated, truncated_tokens, malformed_lines,
      without_targets);
}

SftDataset::SftDataset(std::vector<SftExample> examples, SftDataReport report, int64_t max_length)
    : examples_(std::move(examples)), report_(std::move(report)), max_length_(max_length) {}

void SftDataset::add_example(RenderedChat rendered, std::string source, int64_t max_length,
                             std::vector<SftExample>& out, SftDataReport& report) {
  SftExample example{std::move(rendered.tokens), std::move(rendered.trainable), std::move(source)};
  const auto limit = static_cast<size_t>(max_length + 1);
  const bool cut = example.tokens.size() > limit;
  const auto removed = cut ? static_cast<int64_t>(example.tokens.size() - limit) : 0;
  if (cut) {
    example.tokens.resize(limit);
    example.trainable.resize(limit);
  }
  if (example.trainable_targets() == 0) {
    ++report.without_targets;
    note_problem(report, fmt::format("{}: {}", example.source,
                                     cut ? "no assistant token left after truncation to " +
                                               std::to_string(max_length + 1) + " tokens"
                                         : std::string("no assistant turn")));
    return;
  }
  report.truncated += cut ? 1 : 0;
  report.truncated_tokens += removed;
  ++report.examples;
  report.trainable_tokens += example.trainable_targets();
  report.total_tokens += static_cast<int64_t>(example.tokens.size());
  out.push_back(std::move(example));
}

SftDataset SftDataset::from_conversations(
    const std::vector<std::vector<ChatMessage>>& conversations,
    const std::vector<std::string>& sources, const Tokenizer& tokenizer,
    const SftDataOptions& options) {
  TILLER_CHECK(options.max_length > 0, "sft data: max_length must be positive, got {}",
               options.max_length);
  TILLER_CHECK(sources.size() == conversations.size(),
               "sft data: {} conversations but {} source names", conversations.size(),
               sources.size());
  std::vector<SftExample> examples;
  SftDataReport report;
  for (size_t i = 0; i < conversations.size(); ++i)
    add_example(render_named(tokenizer, conversations[i], sources[i]), sources[i],
                options.max_length, examples, report);
  TILLER_CHECK(!examples.empty(), "sft data: no usable example among {} conversations ({})",
               conversations.size(), report.summary());
  return SftDataset(std::move(examples), std::move(report), options.max_length);
}

SftDataset SftDataset::from_world(const std::vector<world::SftExample>& examples,
                                  const Tokenizer& tokenizer, const SftDataOptions& options) {
  std::vector<std::vector<ChatMessage>> conversations;
  std::vector<std::string> sources;
  for (size_t i = 0; i < examples.size(); ++i) {
    conversations.push_back(examples[i].messages);
    sources.push_back(fmt::format("world example {}", i));
  }
  TILLER_CHECK(!conversations.empty(), "sft data: the world gave no SFT examples");
  return from_conversations(conversations, sources, tokenizer, options);
}

SftDataset SftDataset::from_jsonl(const std::filesystem::path& path, const Tokenizer& tokenizer,
                                  const SftDataOptions& options) {
  TILLER_CHECK(options.max_length > 0, "sft data: max_length must be positive, got {}",
               options.max_length);
  std::ifstream in(path);
  TILLER_CHECK(in.good(), "sft data: cannot open {}", path.string());
  const std::string name = path.filename().string();
  std::vector<SftExample> examples;
  SftDataReport report;
  std::string line;
  int64_t line_number = 0, records = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++records;
    const std::string where = fmt::format("{} line {}", name, line_number);
    std::vector<ChatMessage> messages;
    try {
      messages = parse_chat_record(line, where);
      add_example(render_named(tokenizer, messages, where), where, options.max_length, examples,
                  report);
    } catch (const Error& error) {
      if (options.on_malformed == MalformedLinePolicy::stop)
        fail("sft data: {} (pass on_malformed = skip to skip such lines)", error.what());
      ++report.malformed_lines;
      note_problem(report, error.what());
    }
  }
  TILLER_CHECK(!examples.empty(), "sft data: {} holds no usable example ({} records; {})",
               path.string(), records, report.summary());
  return SftDataset(std::move(examples), std::move(report), options.max_length);
}

std::pair<SftDataset, SftDataset> SftDataset::split(double held_out_fraction, uint64_t seed) const {
  TILLER_CHECK(held_out_fraction >= 0.0 && held_out_fraction < 1.0,
               "sft data: held-out fraction must be in [0, 1) (0: no eval split), got {}",
               held_out_fraction);
  if (held_out_fraction == 0.0) return {*this, SftDataset({}, recount({}), max_length_)};
  auto held_out = std::max<int64_t>(
      1, static_cast<int64_t>(std::llround(held_out_fraction * static_cast<double>(size()))));
  TILLER_CHECK(held_out < size(),
               "sft data: a held-out fraction of {} of {} examples leaves nothing to train on; "
               "use a smaller --eval-fraction (0 for no eval split) or more data",
               held_out_fraction, size());
  std::vector<int64_t> order = random::epoch_order(size(), seed, 0);
  std::vector<bool> is_held_out(static_cast<size_t>(size()), false);
  for (int64_t i = 0; i < held_out; ++i) is_held_out[static_cast<size_t>(order[i])] = true;
  // Both halves keep the file order, so sources stay easy to follow in reports.
  std::vector<SftExample> train, eval;
  for (int64_t i = 0; i < size(); ++i)
    (is_held_out[static_cast<size_t>(i)] ? eval : train).push_back(examples_[i]);
  SftDataReport train_report = recount(train), eval_report = recount(eval);
  return {SftDataset(std::move(train), std::move(train_report), max_length_),
          SftDataset(std::move(eval), std::move(eval_report), max_length_)};
}

std::vector<SftRow> plan_rows(const SftDataset& data, bool pack, uint64_t seed) {
  std::vector<SftRow> rows;
  if (!pack) {
    for (int64_t i = 0; i < data.size(); ++i) rows.push_back({i});
    return rows;
  }
  const int64_t capacity = data.max_length();
  std::vector<int64_t> used;  // inputs per row
  for (int64_t index : random::epoch_order(data.size(), seed, 0)) {
    const auto inputs = static_cast<int64_t>(data[index].tokens.size()) - 1;
    size_t r = 0;
    while (r < rows.size() && used[r] + inputs > capacity) ++r;
    if (r == rows.size()) {
      rows.emplace_back();
      used.push_back(0);
    }
    rows[r].push_back(index);
    used[r] += inputs;
  }
  return rows;
}

SftBatch collate(const SftDataset& data, std::span<const SftRow> rows, Device device) {
  TILLER_CHECK(!rows.empty(), "sft collate: no rows given");
  const auto B = static_cast<int64_t>(rows.size());
  int64_t T = 0;
  bool packed = false;
  for (const SftRow& row : rows) {
    TILLER_CHECK(!row.empty(), "sft collate: an empty row");
    int64_t inputs = 0;
    for (int64_t index : row) inputs += static_cast<int64_t>(data[index].tokens.size()) - 1;
    TILLER_CHECK(inputs <= data.max_length(),
                 "sft collate: a row holds {} inputs, more than max_length {}", inputs,
                 data.max_length());
    T = std::max(T, inputs);
    packed = packed || row.size() > 1;
  }

  std::vector<int32_t> inputs(B * T, 0), targets(B * T, kIgnore), positions(B * T, 0),
      documents(B * T, 0);
  SftBatch batch;
  for (int64_t b = 0; b < B; ++b) {
    int64_t column = 0;
    int32_t document = 0;
    for (int64_t index : rows[b]) {
      const SftExample& example = data[index];
      const auto length = static_cast<int64_t>(example.tokens.size());
      for (int64_t t = 0; t + 1 < length; ++t, ++column) {
        const int64_t at = b * T + column;
        inputs[at] = example.tokens[t];
        positions[at] = static_cast<int32_t>(t);
        documents[at] = document;
        if (example.trainable[t + 1]) {
          targets[at] = example.tokens[t + 1];
          ++batch.trainable_tokens;
        }
      }
      batch.input_tokens += length - 1;
      ++document;
    }
    for (int64_t pad = 0; column < T; ++column, ++pad) {  // padding: a document of its own
      positions[b * T + column] = static_cast<int32_t>(pad);
      documents[b * T + column] = document;
    }
  }
  const TensorOptions ints = TensorOptions{}.with(DType::i32).with(device);
  batch.inputs = Tensor::from_ints(inputs, {B, T}, ints);
  batch.targets = Tensor::from_ints(targets, {B, T}, ints);
  if (packed) {
    batch.positions = Tensor::from_ints(positions, {B, T}, ints);
    batch.document_ids = Tensor::from_ints(documents, {B, T}, ints);
  }
  return batch;
}

}  // namespace tiller::rl
