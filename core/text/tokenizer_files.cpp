// Tokenizer file formats: GPT-2 vocab.json + merges.txt and Hugging Face tokenizer.json.
//
// Both store tokens as byte-level text (core/pretokenize.h: bytes_to_unicode); tiller converts to
// raw bytes on load and back on save. A vocab entry that is not byte-level text, or that is one of
// special_tokens::kAll, is an added special token. vocab.json + merges.txt cannot mark any other
// added token, so save_vocab_merges refuses to write one (it would come back as ordinary text);
// tokenizer.json keeps them all in "added_tokens".
//
// Every error names the file and what is wrong with it.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

#include "core/io/atomic_file.h"
#include "kernels/error.h"
#include "core/text/pretokenize.h"
#include "core/text/special_tokens.h"
#include "core/text/tokenizer.h"

namespace tiller {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

Json parse_json_file(const std::string& path) {
  std::string text = read_file_bytes(path);
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    fail("Tokenizer: '{}' is not valid JSON: {}", path, e.what());
  }
}

bool is_declared_special(std::string_view text) {
  return std::find(special_tokens::kAll.begin(), special_tokens::kAll.end(), text) !=
         special_tokens::kAll.end();
}

// Collects vocabulary entries from a file, then the merges that refer to them.
class VocabBuilder {
 public:
  explicit VocabBuilder(std::string file) : file_(std::move(file)) {}

  void add_vocab_entry(const std::string& text, const Json& id_value) {
    TILLER_CHECK(id_value.is_number_integer() && id_value.get<int64_t>() >= 0 &&
                     id_value.get<int64_t>() < INT32_MAX,
                 "Tokenizer: '{}': vocab entry '{}' has id {}, expected a non-negative integer",
                 file_, text, id_value.dump());
    auto id = static_cast<TokenId>(id_value.get<int64_t>());
    slot(id, text);
    std::string bytes;
    if (is_declared_special(text) || !unicode_to_bytes(text, bytes)) {
      set_added(id, text, true);
    } else {
      token_bytes_[id] = std::move(bytes);
    }
  }

  // tokenizer.json "added_tokens": may repeat an id already in the vocab (then it turns that
  // entry into an added token) or extend the vocab.
  void add_added_token(const Json& entry) {
    TILLER_CHECK(entry.is_object() && entry.contains("id") && entry.contains("content") &&
                     entry["id"].is_number_integer() && entry["content"].is_string(),
                 "Tokenizer: '{}': added_tokens entry {} needs an integer \"id\" and a string "
                 "\"content\"",
                 file_, entry.dump());
    auto id = static_cast<TokenId>(entry["id"].get<int64_t>());
    TILLER_CHECK(id >= 0, "Tokenizer: '{}': added token id {} is negative", file_, id);
    std::string content = entry["content"].get<std::string>();
    bool special = entry.value("special", true);
    if (id >= static_cast<TokenId>(present_.size()) || !present_[id]) slot(id, content);
    set_added(id, content, special);
  }

  // Ids of ordinary tokens by their byte-level text; call after all vocab entries are in.
  void finish_vocab() {
    for (size_t id = 0; id < present_.size(); ++id) {
      TILLER_CHECK(present_[id],
                   "Tokenizer: '{}': token ids are not contiguous: id {} is missing "
                   "(largest id {})",
                   file_, id, present_.size() - 1);
    }
    std::vector<bool> is_added(present_.size(), false);
    for (const AddedToken& added : added_) is_added[added.id] = true;
    for (size_t id = 0; id < token_bytes_.size(); ++id) {
      if (!is_added[id]) ordinary_by_bytes_.emplace(token_bytes_[id], static_cast<TokenId>(id));
    }
    for (int b = 0; b < 256; ++b) {
      TILLER_CHECK(ordinary_by_bytes_.count(std::string(1, static_cast<char>(b))),
                   "Tokenizer: '{}': no token for byte 0x{:02X} ('{}'); a byte-level BPE vocab "
                   "needs all 256",
                   file_, b, byte_to_unicode(static_cast<uint8_t>(b)));
    }
  }

  void add_merge(const std::string& left, const std::string& right, const std::string& where) {
    TokenId left_id = ordinary_id(left, where), right_id = ordinary_id(right, where);
    TILLER_CHECK(ordinary_by_bytes_.count(bytes_of(left_id) + bytes_of(right_id)),
                 "Tokenizer: {}: merge '{} {}' produces a token that is not in the vocabulary",
                 where, left, right);
    merges_.emplace_back(left_id, right_id);
  }

  Tokenizer build() {
    try {
      return Tokenizer(std::move(token_bytes_), std::move(merges_), std::move(added_));
    } catch (const Error& e) {
      fail("{} (loading '{}')", e.what(), file_);
    }
  }

 private:
  void slot(TokenId id, const std::string& text) {
    if (id >= static_cast<TokenId>(present_.size())) {
      present_.resize(id + 1, false);
      token_bytes_.resize(id + 1);
    }
    TILLER_CHECK(!present_[id],
                 "Tokenizer: '{}': id {} is given to two tokens (the second is "
                 "'{}')",
                 file_, id, text);
    present_[id] = true;
  }

  void set_added(TokenId id, const std::string& content, bool special) {
    auto it = std::find_if(added_.begin(), added_.end(),
                           [&](const AddedToken& added) { return added.id == id; });
    if (it != added_.end()) {
      it->content = content;
      it->special = special;
    } else {
      added_.push_back({content, id, special});
    }
    token_bytes_[id] = content;
  }

  const std::string& bytes_of(TokenId id) const { return token_bytes_[id]; }

  TokenId ordinary_id(const std::string& text, const std::string& where) {
    std::string bytes;
    TILLER_CHECK(unicode_to_bytes(text, bytes), "Tokenizer: {}: '{}' is not byte-level BPE text",
                 where, text);
    auto it = ordinary_by_bytes_.find(bytes);
    TILLER_CHECK(it != ordinary_by_bytes_.end(),
                 "Tokenizer: {}: token '{}' is not in the vocabulary", where, text);
    return it->second;
  }

  std::string file_;
  std::vector<std::string> token_bytes_;
  std::vector<bool> present_;
  std::vector<AddedToken> added_;
  std::unordered_map<std::string, TokenId> ordinary_by_bytes_;
  std::vector<std::pair<TokenId, TokenId>> merges_;
};

// True when a tokenizer.json pre_tokenizer (possibly a Sequence) contains a ByteLevel step.
bool has_byte_level_step(const Json& node) {
  if (node.is_object()) {
    if (node.value("type", "") == "ByteLevel") return true;
    for (const auto& [key, value] : node.items()) {
      if (has_byte_level_step(value)) return true;
    }
  } else if (node.is_array()) {
    for (const Json& value : node) {
      if (has_byte_level_step(value)) return true;
    }
  }
  return false;
}

// Byte-level text of every token, by id, for the writers.
std::vector<std::string> file_texts(const Tokenizer& tokenizer, const std::string& path) {
  std::vector<bool> is_added(tokenizer.vocab_size(), false);
  for (const AddedToken& added : tokenizer.added_tokens()) {
    TILLER_CHECK(is_valid_utf8(added.content),
                 "Tokenizer: cannot save '{}': added token {} is not valid UTF-8", path, added.id);
    is_added[added.id] = true;
  }
  std::vector<std::string> texts(tokenizer.vocab_size());
  for (TokenId id = 0; id < tokenizer.vocab_size(); ++id) {
    texts[id] =
        is_added[id] ? tokenizer.token_bytes(id) : bytes_to_unicode(tokenizer.token_bytes(id));
  }
  return texts;
}

}  // namespace

Tokenizer Tokenizer::load_vocab_merges(const std::string& vocab_json_path,
                                       const std::string& merges_txt_path) {
  Json vocab = parse_json_file(vocab_json_path);
  TILLER_CHECK(vocab.is_object(), "Tokenizer: '{}': expected a JSON object {{token: id}}, got {}",
               vocab_json_path, vocab.type_name());
  VocabBuilder builder(vocab_json_path);
  for (const auto& [text, id] : vocab.items()) builder.add_vocab_entry(text, id);
  builder.finish_vocab();

  std::string merges_text = read_file_bytes(merges_txt_path);
  size_t line_start = 0;
  for (int line_number = 1; line_start < merges_text.size(); ++line_number) {
    size_t line_end = merges_text.find('\n', line_start);
    if (line_end == std::string::npos) line_end = merges_text.size();
    std::string line = merges_text.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_number == 1 && line.rfind("#version", 0) == 0)) continue;
    size_t space = line.find(' ');
    TILLER_CHECK(space != std::string::npos && space > 0 && space + 1 < line.size() &&
                     line.find(' ', space + 1) == std::string::npos,
                 "Tokenizer: '{}' line {}: expected two tokens separated by one space, got '{}'",
                 merges_txt_path, line_number, line);
    builder.add_merge(line.substr(0, space), line.substr(space + 1),
                      fmt::format("'{}' line {}", merges_txt_path, line_number));
  }
  return builder.build();
}

Tokenizer Tokenizer::load_tokenizer_json(const std::string& path) {
  Json root = parse_json_file(path);
  TILLER_CHECK(root.is_object() && root.contains("model") && root["model"].is_object(),
               "Tokenizer: '{}': no \"model\" object; not a Hugging Face tokenizer.json", path);
  const Json& model = root["model"];
  std::string type = model.value("type", "BPE");
  TILLER_CHECK(type == "BPE", "Tokenizer: '{}': model type is {}, only BPE is supported", path,
               type);
  TILLER_CHECK(!model.value("byte_fallback", false),
               "Tokenizer: '{}': byte_fallback BPE (SentencePiece style) is not supported; "
               "tiller reads byte-level BPE (GPT-2 family)",
               path);
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    TILLER_CHECK(!model.contains(affix) || model[affix].is_null() || model[affix] == "",
                 "Tokenizer: '{}': model.{} is {}; byte-level BPE uses none", path, affix,
                 model[affix].dump());
  }
  if (root.contains("pre_tokenizer") && !root["pre_tokenizer"].is_null()) {
    TILLER_CHECK(has_byte_level_step(root["pre_tokenizer"]),
                 "Tokenizer: '{}': pre_tokenizer {} has no ByteLevel step; tiller reads "
                 "byte-level BPE (GPT-2 family)",
                 path, root["pre_tokenizer"].dump());
  }
  TILLER_CHECK(model.contains("vocab") && model["vocab"].is_object() && model.contains("merges") &&
                   model["merges"].is_array(),
               "Tokenizer: '{}': model needs a \"vocab\" object and a \"merges\" array", path);

  VocabBuilder builder(path);
  for (const auto& [text, id] : model["vocab"].items()) builder.add_vocab_entry(text, id);
  if (root.contains("added_tokens") && root["added_tokens"].is_array()) {
    for (const Json& entry : root["added_tokens"]) builder.add_added_token(entry);
  }
  builder.finish_vocab();

  const Json& merges = model["merges"];
  for (size_t index = 0; index < merges.size(); ++index) {
    const Json& merge = merges[index];
    std::string where = fmt::format("'{}' merge {}", path, index);
    if (merge.is_string()) {
      const std::string& line = merge.get_ref<const std::string&>();
      size_t space = line.find(' ');
      TILLER_CHECK(space != std::string::npos && space > 0 && space + 1 < line.size() &&
                       line.find(' ', space + 1) == std::string::npos,
                   "Tokenizer: {}: expected \"left right\", got '{}'", where, line);
      builder.add_merge(line.substr(0, space), line.substr(space + 1), where);
    } else {
      TILLER_CHECK(
          merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string(),
          "Tokenizer: {}: expected \"left right\" or [\"left\", \"right\"], got {}", where,
          merge.dump());
      builder.add_merge(merge[0].get<std::string>(), merge[1].get<std::string>(), where);
    }
  }
  return builder.build();
}

Tokenizer Tokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(path)) {
    fs::path dir(path);
    if (fs::exists(dir / "tokenizer.json")) return load_tokenizer_json(dir / "tokenizer.json");
    if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) {
      return load_vocab_merges(dir / "vocab.json", dir / "merges.txt");
    }
    fail("Tokenizer::load: directory '{}' has neither tokenizer.json nor vocab.json + merges.txt",
         path);
  }
  TILLER_CHECK(fs::exists(path), "Tokenizer::load: '{}' does not exist", path);
  TILLER_CHECK(fs::path(path).extension() == ".json",
               "Tokenizer::load: '{}' is not a .json file; pass tokenizer.json or a directory "
               "with vocab.json + merges.txt (or call load_vocab_merges)",
               path);
  return load_tokenizer_json(path);
}

void Tokenizer::save_vocab_merges(const std::string& vocab_json_path,
                                  const std::string& merges_txt_path) const {
  for (const AddedToken& added : added_tokens_) {
    std::string bytes;
    TILLER_CHECK(is_declared_special(added.content) || !unicode_to_bytes(added.content, bytes),
                 "Tokenizer::save_vocab_merges: added token '{}' would load back as ordinary "
                 "text from '{}'; save it with save_tokenizer_json instead",
                 added.content, vocab_json_path);
  }
  std::vector<std::string> texts = file_texts(*this, vocab_json_path);
  OrderedJson vocab = OrderedJson::object();
  for (TokenId id = 0; id < vocab_size(); ++id) {
    TILLER_CHECK(!vocab.contains(texts[id]),
                 "Tokenizer::save_vocab_merges: '{}': two tokens are written as '{}'",
                 vocab_json_path, texts[id]);
    vocab[texts[id]] = id;
  }
  std::string merges_text = "#version: 0.2\n";
  for (auto [left, right] : merges_) merges_text += texts[left] + " " + texts[right] + "\n";
  write_file_atomic(vocab_json_path, vocab.dump());
  write_file_atomic(merges_txt_path, merges_text);
}

void Tokenizer::save_tokenizer_json(const std::string& path) const {
  std::vector<std::string> texts = file_texts(*this, path);
  OrderedJson added = OrderedJson::array();
  for (const AddedToken& token : added_tokens_) {
    added.push_back({{"id", token.id},
                     {"content", token.content},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", token.special}});
  }
  OrderedJson vocab = OrderedJson::object();
  for (TokenId id = 0; id < vocab_size(); ++id) vocab[texts[id]] = id;
  OrderedJson merges = OrderedJson::array();
  for (auto [left, right] : merges_) merges.push_back({texts[left], texts[right]});
  OrderedJson byte_level = {{"type", "ByteLevel"},
                            {"add_prefix_space", false},
                            {"trim_offsets", true},
                            {"use_regex", true}};
  OrderedJson root = {{"version", "1.0"},
                      {"truncation", nullptr},
                      {"padding", nullptr},
                      {"added_tokens", added},
                      {"normalizer", nullptr},
                      {"pre_tokenizer", byte_level},
                      {"post_processor", byte_level},
                      {"decoder", byte_level},
                      {"model",
                       {{"type", "BPE"},
                        {"dropout", nullptr},
                        {"unk_token", nullptr},
                        {"continuing_subword_prefix", ""},
                        {"end_of_word_suffix", ""},
                        {"fuse_unk", false},
                        {"byte_fallback", false},
                        {"vocab", vocab},
                        {"merges", merges}}}};
  write_file_atomic(path, root.dump(2));
}

}  // namespace tiller
