// Row store for data curation: JSONL rows kept verbatim next to the fields curation reads.
//
// Formats, told apart per line by their keys:
//   chat               {"messages": [{"role", "content"}, ...]}
//   prompt_completion  {"prompt": "...", "completion": "..."}
//   preference         {"prompt", "chosen", "rejected"}; "prompt" a string (the rendered text form
//                      of rl/data/reward_data.h, whose <|role|> markers are stripped here) or an
//                      array of messages
//   text               {"text": "..."} (pretraining documents)
// A file whose name does not end in .jsonl is plain text: split into documents at <|endoftext|>
// when it holds one (the built-in world's corpus.txt), else one document; each document becomes a
// text row whose `raw` is {"text": ...}.
//
// Design choice: `raw` is the input line byte for byte, so curated.jsonl is the kept rows
// unchanged; the parsed fields are only what the stages read (`prompt` = the user turns, `response`
// = the assistant turns or the chosen answer, `text` = everything a duplicate check compares).
// An optional string "task" field is kept for the diversity report.
//
// Invariants: rows keep input order (files in the order given, lines in file order); `source` is
// "<file>:<line>" and every error message starts with it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace tiller::data {

enum class RowFormat { chat, prompt_completion, preference, text };
std::string_view format_name(RowFormat format);

struct Message {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

struct Row {
  std::string raw;     // the JSONL line verbatim (text files: {"text": ...})
  std::string source;  // "sft.jsonl:12"
  RowFormat format = RowFormat::text;
  std::vector<Message> messages;  // chat and prompt_completion; empty otherwise
  std::string prompt;             // user turns joined by "\n"; preference prompt; empty for text
  std::string response;           // assistant turns joined by "\n"; completion; chosen
  std::string text;               // prompt + "\n" + response, or the document
  std::string task;               // the row's "task" field when it has one
  bool has_assistant_turn() const;
};

// A line that could not be read under skip_malformed: kept so rejected.jsonl lists it.
struct MalformedLine {
  std::string raw;
  std::string source;
  std::string problem;
};

struct ReadOptions {
  bool skip_malformed = false;  // false: the first malformed line throws "<file>:<line>: ..."
};

struct RowStore {
  std::vector<Row> rows;
  std::vector<MalformedLine> malformed;
};

// Parses one JSONL line; throws tiller::Error "<source>: <problem>" when it is not a known format.
Row parse_row(std::string_view line, std::string source);

// Reads every file in order. Blank lines are skipped. Throws when a file cannot be opened.
RowStore read_rows(const std::vector<std::filesystem::path>& paths,
                   const ReadOptions& options = {});

}  // namespace tiller::data
