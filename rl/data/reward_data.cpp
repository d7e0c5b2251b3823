// Preference records -> token ids, and padding into batches (formats in rl/reward_data.h).
#include "rl/data/reward_data.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/text/chat.h"
#include "kernels/error.h"
#include "core/text/special_tokens.h"

namespace tiller::rl {

namespace {

using Json = nlohmann::json;

std::vector<int32_t> encode_special(const Tokenizer& tokenizer, const std::string& text) {
  return tokenizer.encode(text, /*allow_special=*/true);
}

// A chat-form response: the assistant's content, then the end-of-turn token.
std::vector<int32_t> chat_response(const Tokenizer& tokenizer, const Json& value, const char* key,
                                   std::string_view where) {
  std::string content;
  if (value.is_string()) {
    content = value.get<std::string>();
  } else {
    TILLER_CHECK(value.is_array() && value.size() == 1 && value[0].is_object() &&
                     value[0].value("role", "") == "assistant" && value[0].contains("content") &&
                     value[0]["content"].is_string(),
                 "preferences: {}: \"{}\" must be a string or [{{\"role\": \"assistant\", "
                 "\"content\": ...}}] when \"prompt\" is a list of messages",
                 where, key);
    content = value[0]["content"].get<std::string>();
  }
  std::vector<int32_t> tokens = tokenizer.encode(content, /*allow_special=*/false);
  tokens.push_back(tokenizer.token_id(special_tokens::kEndOfTurn));
  return tokens;
}

std::vector<ChatMessage> chat_prompt(const Json& messages, std::string_view where) {
  TILLER_CHECK(!messages.empty(), "preferences: {}: \"prompt\" is an empty list of messages",
               where);
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& m = messages[i];
    TILLER_CHECK(m.is_object() && m.contains("role") && m["role"].is_string() &&
                     m.contains("content") && m["content"].is_string(),
                 "preferences: {}: prompt message {} needs string \"role\" and \"content\"", where,
                 i);
    out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return out;
}

}  // namespace

PreferenceExample parse_preference_record(const Tokenizer& tokenizer, std::string_view json_line,
                                          std::string_view where) {
  Json record;
  try {
    record = Json::parse(json_line);
  } catch (const Json::exception& e) {
    fail("preferences: {}: not valid JSON: {}", where, e.what());
  }
  TILLER_CHECK(record.is_object(), "preferences: {}: expected a JSON object, got {}", where,
               record.type_name());
  for (const char* key : {"prompt", "chosen", "rejected"})
    TILLER_CHECK(record.contains(key),
                 "preferences: {}: missing \"{}\" (expected \"prompt\", "
                 "\"chosen\", \"rejected\")",
                 where, key);

  PreferenceExample example;
  if (record.contains("margin")) {
    TILLER_CHECK(record["margin"].is_number(), "preferences: {}: \"margin\" must be a number",
                 where);
    example.margin = record["margin"].get<float>();
  }
  const Json& prompt = record["prompt"];
  if (prompt.is_array()) {
    example.prompt = render_generation_prompt(tokenizer, chat_prompt(prompt, where));
    example.chosen = chat_response(tokenizer, record["chosen"], "chosen", where);
    example.rejected = chat_response(tokenizer, record["rejected"], "rejected", where);
  } else {
    TILLER_CHECK(prompt.is_string(),
                 "preferences: {}: \"prompt\" must be a string or a list of messages", where);
    for (const char* key : {"chosen", "rejected"})
      TILLER_CHECK(record[key].is_string(),
                   "preferences: {}: \"{}\" must be a string when \"prompt\" is a string", where,
                   key);
    example.prompt = encode_special(tokenizer, prompt.get<std::string>());
    example.chosen = encode_special(tokenizer, record["chosen"].get<std::string>());
    example.rejected = encode_special(tokenizer, record["rejected"].get<std::string>());
  }
  TILLER_CHECK(!example.chosen.empty() && !example.rejected.empty(),
               "preferences: {}: \"chosen\" and \"rejected\" must not be empty", where);
  return example;
}

std::vector<PreferenceExample> load_preferences_jsonl(const Tokenizer& tokenizer,
                                                      const std::string& path) {
  std::ifstream in(path);
  TILLER_CHECK(in.good(), "preferences: cannot open {}", path);
  std::vector<PreferenceExample> out;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (std::all_of(line.begin(), line.end(), [](unsigned char c) { return std::isspace(c); }))
      continue;
    out.push_back(parse_preference_record(tokenizer, line, fmt::format("{}:{}", path, number)));
  }
  TILLER_CHECK(!out.empty(), "preferences: {} holds no records", path);
  return out;
}

PaddedSequences pad_sequences(const std::vector<std::vector<int32_t>>& sequences, PaddingSide side,
                              int32_t pad_id, Device device) {
  TILLER_CHECK(!sequences.empty(), "pad_sequences: no sequences");
  size_t T = 0;
  for (size_t i = 0; i < sequences.size(); ++i) {
    TILLER_CHECK(!sequences[i].empty(), "pad_sequences: sequence {} is empty", i);
    T = std::max(T, sequences[i].size());
  }
  const size_t N = sequences.size();
  std::vector<int32_t> ids(N * T, pad_id), mask(N * T, 0);
  for (size_t i = 0; i < N; ++i) {
    const std::vector<int32_t>& s = sequences[i];
    size_t start = i * T + (side == PaddingSide::left ? T - s.size() : 0);
    std::copy(s.begin(), s.end(), ids.begin() + static_cast<std::ptrdiff_t>(start));
    std::fill_n(mask.begin() + static_cast<std::ptrdiff_t>(start), s.size(), 1);
  }
  const Shape shape = {static_cast<int64_t>(N), static_cast<int64_t>(T)};
  return {Tensor::from_ints(ids, shape).to(device), Tensor::from_ints(mask, shape).to(device)};
}

std::vector<int32_t> join_truncated(const std::vector<int32_t>& prompt,
                                    const std::vector<int32_t>& response, int64_t max_length,
                                    bool* truncated) {
  std::vector<int32_t> joined(prompt);
  joined.insert(joined.end(), response.begin(), response.end());
  const bool too_long = max_length > 0 && static_cast<int64_t>(joined.size()) > max_length;
  if (too_long) joined.erase(joined.begin(), joined.end() - max_length);
  if (truncated) *truncated = too_long;
  return joined;
}

Tensor right_padded_response_mask(const std::vector<std::vector<int32_t>>& rows,
                                  const std::vector<int64_t>& response_tokens, int64_t T,
                                  Device device) {
  TILLER_CHECK(rows.size() == response_tokens.size(),
               "right_padded_response_mask: {} rows but {} response lengths", rows.size(),
               response_tokens.size());
  const auto N = static_cast<int64_t>(rows.size());
  std::vector<int32_t> mask(static_cast<size_t>(N * T), 0);
  for (int64_t n = 0; n < N; ++n) {
    const auto length = static_cast<int64_t>(rows[static_cast<size_t>(n)].size());
    TILLER_CHECK(length <= T && response_tokens[static_cast<size_t>(n)] >= 0,
                 "right_padded_response_mask: row {} has {} tokens (width {}) and {} response "
                 "tokens",
                 n, length, T, response_tokens[static_cast<size_t>(n)]);
    const int64_t first = length - std::min(length, response_tokens[static_cast<size_t>(n)]);
    for (int64_t t = first; t < length; ++t) mask[static_cast<size_t>(n * T + t)] = 1;
  }
  return Tensor::from_ints(mask, {N, T}).to(device);
}

PreferenceBatch make_preference_batch(const std::vector<PreferenceExample>& examples,
                                      const std::vector<size_t>& indices, int64_t max_length) {
  TILLER_CHECK(!indices.empty(), "make_preference_batch: no pairs selected");
  PreferenceBatch batch;
  batch.pairs = static_cast<int64_t>(indices.size());
  std::vector<std::vector<int32_t>> rows(2 * indices.size());
  std::vector<float> margins;
  std::vector<int64_t> response_tokens(2 * indices.size());
  for (size_t i = 0; i < indices.size(); ++i) {
    TILLER_CHECK(indices[i] < examples.size(),
                 "make_preference_batch: pair index {} but there are {} pairs", indices[i],
                 examples.size());
    const PreferenceExample& e = examples[indices[i]];
    bool cut_chosen = false, cut_rejected = false;
    rows[i] = join_truncated(e.prompt, e.chosen, max_length, &cut_chosen);
    rows[indices.size() + i] = join_truncated(e.prompt, e.rejected, max_length, &cut_rejected);
    batch.truncated += static_cast<int64_t>(cut_chosen) + static_cast<int64_t>(cut_rejected);
    response_tokens[i] = static_cast<int64_t>(e.chosen.size());
    response_tokens[indices.size() + i] = static_cast<int64_t>(e.rejected.size());
    margins.push_back(e.margin);
  }
  batch.sequences = pad_sequences(rows, PaddingSide::right, 0, Device::cpu());
  batch.response_mask =
      right_padded_response_mask(rows, response_tokens, batch.sequences.ids.size(1), Device::cpu());
  batch.margins = Tensor::from_vector(margins, {batch.pairs});
  return batch;
}

}  // namespace tiller::rl
