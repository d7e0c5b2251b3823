// Row store: see rows.h.
#include "core/data/rows.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/text/pretokenize.h"
#include "kernels/error.h"

namespace tiller::data {
namespace {

using json = nlohmann::json;

constexpr std::string_view kEndOfText = "<|endoftext|>";

// Removes <|...|> markers so a rendered prompt ("<|user|>\nHi<|end|>\n<|assistant|>\n") reads as
// its content ("Hi").
std::string strip_markers(std::string_view text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 2, "<|") == 0) {
      const size_t close = text.find("|>", i + 2);
      if (close != std::string_view::npos) {
        i = close + 2;
        if (i < text.size() && text[i] == '\n') ++i;
        continue;
      }
    }
    out += text[i++];
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

const json& require_string(const json& record, const char* key, const std::string& source) {
  const auto it = record.find(key);
  if (it == record.end()) fail("{}: missing \"{}\"", source, key);
  if (!it->is_string()) fail("{}: \"{}\" must be a string", source, key);
  return *it;
}

std::vector<Message> parse_messages(const json& array, const std::string& source) {
  if (!array.is_array()) fail("{}: \"messages\" must be an array", source);
  std::vector<Message> messages;
  for (size_t i = 0; i < array.size(); ++i) {
    const json& m = array[i];
    if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["role"].is_string() ||
        !m["content"].is_string())
      fail("{}: message {} needs string \"role\" and \"content\"", source, i);
    std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant")
      fail("{}: message {} has role '{}'; expected system, user or assistant", source, i, role);
    messages.push_back({std::move(role), m["content"].get<std::string>()});
  }
  return messages;
}

std::string join_role(const std::vector<Message>& messages, std::string_view role) {
  std::string out;
  for (const Message& m : messages) {
    if (m.role != role) continue;
    if (!out.empty()) out += '\n';
    out += m.content;
  }
  return out;
}

void fill_text(Row& row) {
  if (row.format == RowFormat::text) return;
  row.text = row.prompt.empty() ? row.response : row.prompt + "\n" + row.response;
}

}  // namespace

std::string_view format_name(RowFormat format) {
  switch (format) {
    case RowFormat::chat:
      return "chat";
    case RowFormat::prompt_completion:
      return "prompt_completion";
    case RowFormat::preference:
      return "preference";
    case RowFormat::text:
      return "text";
  }
  return "unknown";
}

bool Row::has_assistant_turn() const {
  if (format == RowFormat::chat) {
    for (const Message& m : messages)
      if (m.role == "assistant") return true;
    return false;
  }
  return format != RowFormat::text;
}

Row parse_row(std::string_view line, std::string source) {
  json record;
  try {
    record = json::parse(line);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({})", source, e.what());
  }
  if (!record.is_object()) fail("{}: expected a JSON object", source);
  Row row;
  row.raw = std::string(line);
  row.source = std::move(source);
  if (auto task = record.find("task"); task != record.end() && task->is_string())
    row.task = task->get<std::string>();

  if (record.contains("messages")) {
    row.format = RowFormat::chat;
    row.messages = parse_messages(record["messages"], row.source);
    row.prompt = join_role(row.messages, "user");
    row.response = join_role(row.messages, "assistant");
  } else if (record.contains("chosen") || record.contains("rejected")) {
    row.format = RowFormat::preference;
    // "chosen" / "rejected": a string, or (chat form) a one-element array holding an assistant
    // message, as rl/data/reward_data.h reads them.
    const auto answer_text = [&](const char* key) {
      if (!record.contains(key)) fail("{}: missing \"{}\"", row.source, key);
      const json& value = record[key];
      if (value.is_string()) return value.get<std::string>();
      const std::vector<Message> messages = parse_messages(value, row.source);
      if (messages.size() != 1 || messages[0].role != "assistant")
        fail("{}: \"{}\" must be a string or one assistant message", row.source, key);
      return messages[0].content;
    };
    answer_text("rejected");
    if (!record.contains("prompt")) fail("{}: missing \"prompt\"", row.source);
    const json& prompt = record["prompt"];
    if (prompt.is_string()) {
      row.prompt = strip_markers(prompt.get<std::string>());
    } else {
      row.prompt = join_role(parse_messages(prompt, row.source), "user");
    }
    row.response = strip_markers(answer_text("chosen"));
  } else if (record.contains("completion")) {
    row.format = RowFormat::prompt_completion;
    row.prompt = require_string(record, "prompt", row.source).get<std::string>();
    row.response = record["completion"].is_string()
                       ? record["completion"].get<std::string>()
                       : (fail("{}: \"completion\" must be a string", row.source), std::string());
    row.messages = {{"user", row.prompt}, {"assistant", row.response}};
  } else if (record.contains("text")) {
    row.format = RowFormat::text;
    row.text = require_string(record, "text", row.source).get<std::string>();
  } else {
    fail(
        "{}: not a known format (expected \"messages\", \"prompt\"/\"completion\", "
        "\"prompt\"/\"chosen\"/\"rejected\" or \"text\")",
        row.source);
  }
  fill_text(row);
  return row;
}

RowStore read_rows(const std::vector<std::filesystem::path>& paths, const ReadOptions& options) {
  RowStore store;
  for (const std::filesystem::path& path : paths) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("curate: cannot open '{}'", path.string());
    const std::string name = path.filename().string();
    if (path.extension() != ".jsonl") {
      std::stringstream buffer;
      buffer << in.rdbuf();
      const std::string content = buffer.str();
      size_t start = 0, index = 0;
      while (start <= content.size()) {
        size_t end = content.find(kEndOfText, start);
        if (end == std::string::npos) end = content.size();
        std::string_view doc(content.data() + start, end - start);
        while (!doc.empty() && std::isspace(static_cast<unsigned char>(doc.front())))
          doc.remove_prefix(1);
        while (!doc.empty() && std::isspace(static_cast<unsigned char>(doc.back())))
          doc.remove_suffix(1);
        ++index;
        const std::string source = fmt::format("{}:document {}", name, index);
        if (!doc.empty() && !is_valid_utf8(doc)) {
          // A JSONL row cannot carry these bytes, and nothing downstream can compare them.
          const std::string problem = "not valid UTF-8 text (convert the file to UTF-8)";
          if (!options.skip_malformed) fail("{}: {}", source, problem);
          store.malformed.push_back({std::string(doc), source, problem});
        } else if (!doc.empty()) {
          Row row;
          row.format = RowFormat::text;
          row.text = std::string(doc);
          row.raw = json{{"text", row.text}}.dump();
          row.source = source;
          store.rows.push_back(std::move(row));
        }
        if (end == content.size()) break;
        start = end + kEndOfText.size();
      }
      continue;
    }
    std::string line;
    int64_t line_number = 0;
    while (std::getline(in, line)) {
      ++line_number;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      std::string source = fmt::format("{}:{}", name, line_number);
      try {
        store.rows.push_back(parse_row(line, source));
      } catch (const Error& error) {
        if (!options.skip_malformed) throw;
        store.malformed.push_back({line, source, error.what()});
      }
    }
  }
  return store;
}

}  // namespace tiller::data
