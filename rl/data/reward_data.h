// Preference data for reward modelling: (prompt, chosen, rejected) as token ids, read from JSONL
// or built from the built-in world's pairs, and padded into batches.
//
// JSONL records `{"prompt", "chosen", "rejected"}` (plus an optional numeric "margin") come in two
// forms, told apart by the type of "prompt":
//   text  "prompt" is a string: the rendered prompt text exactly as the model sees it (what
//         core/world.h writes: "<|user|>\n...<|end|>\n<|assistant|>\n"), and "chosen" /
//         "rejected" are raw completions. All three are encoded WITH special tokens allowed, so the
//         "<|end|>" a completion carries (or lacks) is the real end-of-turn token — whether a
//         response ends its turn is part of what the reward model learns.
//   chat  "prompt" is an array of {"role", "content"} messages rendered with the chat template's
//         generation prompt (core/chat.h); "chosen" / "rejected" are the assistant's content (a
//         string, or a one-element array holding an assistant message) and become content tokens
//         + <|end|>. Contents are encoded with special tokens NOT allowed, as render_chat does.
// A malformed line is a tiller::Error naming "<file>:<line>" and the problem; blank lines are
// skipped.
//
// Truncation keeps the END of prompt + response (the reward is read at the last token) and drops
// tokens from the start of the prompt; a response that alone exceeds max_length is cut from its
// start too. Both are counted so callers can report them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor/tensor.h"
#include "core/text/tokenizer.h"

namespace tiller::rl {

struct PreferenceExample {
  std::vector<int32_t> prompt;
  std::vector<int32_t> chosen;  // response tokens, end-of-turn included where one belongs
  std::vector<int32_t> rejected;
  float margin = 0.f;  // required reward gap (per-pair margin of the loss)
};

// One JSONL record; errors start with `where` (e.g. "prefs.jsonl:12").
PreferenceExample parse_preference_record(const Tokenizer& tokenizer, std::string_view json_line,
                                          std::string_view where);
// Every non-blank line of `path`. An empty file is an error.
std::vector<PreferenceExample> load_preferences_jsonl(const Tokenizer& tokenizer,
                                                      const std::string& path);

enum class PaddingSide { left, right };

// Sequences padded to the longest one: ids (N, T) i32 and attention_mask (N, T) i32, 1 = real.
struct PaddedSequences {
  Tensor ids;
  Tensor attention_mask;
};
// Every sequence must be non-empty. Pad positions hold `pad_id` (any valid token: it is masked).
PaddedSequences pad_sequences(const std::vector<std::vector<int32_t>>& sequences,
                              PaddingSide side = PaddingSide::right, int32_t pad_id = 0,
                              Device device = Device::cpu());

// prompt + response, truncated from the start to at most max_length tokens (0: no limit).
// Sets *truncated when tokens were dropped.
std::vector<int32_t> join_truncated(const std::vector<int32_t>& prompt,
                                    const std::vector<int32_t>& response, int64_t max_length,
                                    bool* truncated = nullptr);

// Which columns of right-padded rows (rows[i] = join_truncated(prompt, response)) are the
// response: the last min(response_tokens[i], rows[i].size()) real tokens. (N, T) i32, 1 = response;
// T >= every row's length. What RewardModel's likelihood term averages over.
Tensor right_padded_response_mask(const std::vector<std::vector<int32_t>>& rows,
                                  const std::vector<int64_t>& response_tokens, int64_t T,
                                  Device device = Device::cpu());

// A training batch of B pairs as one forward pass: rows [0, B) are prompt + chosen, rows
// [B, 2B) prompt + rejected, right-padded. All of it stays on the host: RewardModel::forward
// reads the padding layout from the ids and masks and uploads what the device needs, and the
// trainer uploads the margins for the loss, so a step copies nothing back from the device.
struct PreferenceBatch {
  PaddedSequences sequences;  // (2B, T)
  Tensor response_mask;       // (2B, T) i32, 1 at the response's tokens
  Tensor margins;             // (B) f32
  int64_t pairs = 0;          // B
  int64_t truncated = 0;      // sequences that lost tokens to max_length
};
PreferenceBatch make_preference_batch(const std::vector<PreferenceExample>& examples,
                                      const std::vector<size_t>& indices, int64_t max_length);

}  // namespace tiller::rl
