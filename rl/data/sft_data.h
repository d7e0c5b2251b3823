// SFT data: conversations -> tokenised examples with a loss mask -> (optionally packed) batches.
//
// Sources: JSONL files of {"messages":[{"role","content"},...]} or {"prompt","completion"}
// records (core/chat.h parses one line), or the built-in world's SftExample lists directly. Every
// conversation is rendered with the chat template (core/chat.h), whose mask marks the assistant
// content and the <|end|> closing each assistant turn: only those tokens carry loss.
//
// Lengths: `max_length` is T, the number of input positions of a batch row. An example of n tokens
// feeds tokens[0, n-1) and predicts tokens[1, n), so it keeps at most max_length + 1 tokens;
// longer ones are cut (counted in the report). An example left without a single trainable target
// (no assistant turn, or every assistant token cut away) is skipped and reported.
//
// Packing: several examples laid end to end in one row of <= max_length inputs. Each example gets
// its own document id (attention stays inside it, ForwardOptions::document_ids) and positions
// restarting at 0, so a packed example produces exactly the logits it produces alone. The row's
// padding tail is a document of its own with no loss. Unpacked rows are right-padded: with causal
// attention no real token can see the padding, so no mask is needed.
//
// Invariants: every example in a dataset has tokens.size() == trainable.size() >= 2 and at least
// one trainable target; a dataset is never empty (construction throws instead).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "core/text/chat.h"
#include "core/tensor/tensor.h"
#include "core/text/tokenizer.h"
#include "core/world/world.h"

namespace tiller::rl {

enum class MalformedLinePolicy { stop, skip };  // skip: count, remember the message, go on

struct SftDataOptions {
  int64_t max_length = 256;  // T: input positions per row (see the header comment)
  MalformedLinePolicy on_malformed = MalformedLinePolicy::stop;
};

struct SftExample {
  std::vector<TokenId> tokens;
  std::vector<uint8_t> trainable;  // 1 where tokens[t] is a target that carries loss
  std::string source;              // "sft.jsonl line 12", "world example 5"

  int64_t trainable_targets() const;  // trainable entries at t >= 1 (token 0 is never predicted)
};

struct SftDataReport {
  int64_t examples = 0;          // kept
  int64_t truncated = 0;         // kept but cut to max_length + 1 tokens
  int64_t truncated_tokens = 0;  // tokens removed by the cuts
  int64_t malformed_lines = 0;   // JSONL lines skipped under MalformedLinePolicy::skip
  int64_t without_targets = 0;   // skipped: no assistant turn, or nothing trainable left
  int64_t trainable_tokens = 0;  // over the kept examples
  int64_t total_tokens = 0;
  std::vector<std::string> problems;  // one message per skipped line or example, with its source

  std::string summary() const;  // one line: "1000 examples, 12 truncated, ..."
};

class SftDataset {
 public:
  // Reads a JSONL file; blank lines are ignored. A malformed line throws (stop) or is counted
  // (skip) with a message "sft.jsonl line 7: ...". Throws when no example is left.
  static SftDataset from_jsonl(const std::filesystem::path& path, const Tokenizer& tokenizer,
                               const SftDataOptions& options = {});
  static SftDataset from_world(const std::vector<world::SftExample>& examples,
                               const Tokenizer& tokenizer, const SftDataOptions& options = {});
  // `sources` names each conversation in messages ("what line"); same length as conversations.
  static SftDataset from_conversations(const std::vector<std::vector<ChatMessage>>& conversations,
                                       const std::vector<std::string>& sources,
                                       const Tokenizer& tokenizer,
                                       const SftDataOptions& options = {});

  // A seeded held-out split: round(fraction * size) examples (at least 1 when fraction > 0) go to
  // the second dataset. Both halves must be non-empty. Reports are recomputed per half.
  std::pair<SftDataset, SftDataset> split(double held_out_fraction, uint64_t seed) const;

  int64_t size() const { return static_cast<int64_t>(examples_.size()); }
  const SftExample& operator[](int64_t i) const { return examples_.at(static_cast<size_t>(i)); }
  const std::vector<SftExample>& examples() const { return examples_; }
  const SftDataReport& report() const { return report_; }
  int64_t max_length() const { return max_length_; }

 private:
  SftDataset(std::vector<SftExample> examples, SftDataReport report, int64_t max_length);
  // Truncates, checks for targets and appends (or records why not).
  static void add_example(RenderedChat rendered, std::string source, int64_t max_length,
                          std::vector<SftExample>& out, SftDataReport& report);

  std::vector<SftExample> examples_;
  SftDataReport report_;
  int64_t max_length_ = 0;
};

// The example indices laid end to end in one batch row.
using SftRow = std::vector<int64_t>;

// Rows for training. Unpacked: one example per row, in order. Packed: examples taken in a seeded
// shuffled order and placed first-fit into rows of <= max_length inputs (an order-independent
// row count would need bin packing; first-fit wastes little with short chats).
std::vector<SftRow> plan_rows(const SftDataset& data, bool pack, uint64_t seed = 0);

struct SftBatch {
  Tensor inputs;        // (B, T) i32
  Tensor targets;       // (B, T) i32; -100 where there is no loss
  Tensor positions;     // (B, T) i32, restarting per example; undefined unless a row is packed
  Tensor document_ids;  // (B, T) i32; undefined unless a row is packed
  int64_t trainable_tokens = 0;  // targets != -100
  int64_t input_tokens = 0;      // real (non-padding) inputs
};

// Lays out `rows` (right padding to the longest row) on `device`.
SftBatch collate(const SftDataset& data, std::span<const SftRow> rows,
                 Device device = Device::cpu());

}  // namespace tiller::rl
