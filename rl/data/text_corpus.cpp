// Reading documents from .jsonl and plain-text files (see rl/data/text_corpus.h).
#include "rl/data/text_corpus.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <sstream>

#include "core/io/atomic_file.h"
#include "core/text/special_tokens.h"
#include "kernels/error.h"

namespace tiller::rl {
namespace {

bool is_blank(std::string_view text) {
  return text.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

void add_document(std::vector<std::string>& documents, std::string_view text) {
  if (!is_blank(text)) documents.emplace_back(text);
}

void read_jsonl(const std::string& path, const std::string& bytes,
                std::vector<std::string>& documents) {
  std::istringstream lines(bytes);
  std::string line;
  for (int64_t number = 1; std::getline(lines, line); ++number) {
    if (is_blank(line)) continue;
    auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    TILLER_CHECK(!record.is_discarded() && record.is_object() && record.contains("text") &&
                     record["text"].is_string(),
                 "text corpus: {}:{}: expected a JSON object with a string \"text\", got {:.80}",
                 path, number, line);
    add_document(documents, record["text"].get_ref<const std::string&>());
  }
}

void read_plain(const std::string& bytes, std::vector<std::string>& documents) {
  const std::string_view text = bytes;
  const std::string_view end_of_text = special_tokens::kEndOfText;
  if (text.find(end_of_text) != std::string_view::npos) {
    size_t start = 0;
    for (size_t at; (at = text.find(end_of_text, start)) != std::string_view::npos;
         start = at + end_of_text.size())
      add_document(documents, text.substr(start, at - start));
    add_document(documents, text.substr(start));
    return;
  }
  // Paragraphs: a line that is blank ends the current document.
  std::istringstream lines(bytes);
  std::string line, paragraph;
  while (std::getline(lines, line)) {
    if (is_blank(line)) {
      add_document(documents, paragraph);
      paragraph.clear();
    } else {
      paragraph += paragraph.empty() ? line : "\n" + line;
    }
  }
  add_document(documents, paragraph);
}

}  // namespace

std::vector<std::string> read_text_documents(const std::vector<std::string>& paths) {
  std::vector<std::string> documents;
  for (const std::string& path : paths) {
    const size_t before = documents.size();
    const std::string bytes = read_file_bytes(path);
    if (std::filesystem::path(path).extension() == ".jsonl") {
      read_jsonl(path, bytes, documents);
    } else {
      read_plain(bytes, documents);
    }
    TILLER_CHECK(documents.size() > before, "text corpus: {} holds no document", path);
  }
  return documents;
}

}  // namespace tiller::rl
