// Tokenizer: GPT-2 compatible byte-level BPE — load, save, encode, decode, train.
//
// Text -> ids: (1) added tokens (special tokens such as <|endoftext|>) are cut out as whole
// strings, special ones only when allowed; (2) every remaining stretch is split by the GPT-2
// pre-tokeniser (core/pretokenize.h); (3) each piece's bytes start as the 256 byte tokens and are
// merged pair by pair, always the lowest-ranked merge first, leftmost on ties — the heap order
// Hugging Face `tokenizers` uses, which equals GPT-2's encoder for consistent merge lists.
// Encoded pieces are cached (pieces repeat heavily in natural text).
//
// Tokens are held as raw bytes; the GPT-2 bytes->unicode mapping is applied only at the file
// boundary (vocab.json, merges.txt, tokenizer.json keys). Because every byte has a token and the
// pre-tokeniser covers every byte, decode(encode(s)) == s for any byte string, valid UTF-8 or not.
//
// Invariants: ids are 0..vocab_size()-1 without holes; every byte value has an ordinary token;
// ordinary tokens have distinct bytes;
// each merge (left, right) produces the ordinary token whose bytes are left's + right's; added
// tokens never take part in merges.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tiller {

using TokenId = int32_t;

// A token matched as a whole string before BPE. `special` ones are only matched when the caller
// allows it; the others are always matched (Hugging Face semantics for added tokens).
struct AddedToken {
  std::string content;
  TokenId id = 0;
  bool special = true;
};

struct BpeTrainProgress {
  int64_t merges_done = 0;
  int64_t merges_planned = 0;  // upper bound; training stops early when no pair repeats
};

struct BpeTrainOptions {
  // Final vocabulary size, counting the 256 byte tokens, the merged tokens and `special_tokens`.
  int64_t vocab_size = 2048;
  std::vector<std::string> special_tokens;  // appended after the merged tokens, in this order
  int64_t min_pair_count = 2;               // a pair seen fewer times is never merged
  std::function<void(const BpeTrainProgress&)> progress;  // called every `progress_every` merges
  int64_t progress_every = 100;
};

class Tokenizer {
 public:
  // The base byte-level vocabulary: token i is byte i, no merges, no added tokens.
  Tokenizer();

  // From parts: `token_bytes[id]` for every id, merges as pairs of ids in rank order, and the
  // added tokens (their ids may be anywhere; their entries in token_bytes are set to their
  // content). Validates everything and throws tiller::Error naming what is inconsistent.
  Tokenizer(std::vector<std::string> token_bytes, std::vector<std::pair<TokenId, TokenId>> merges,
            std::vector<AddedToken> added_tokens);

  // GPT-2 files. Vocab entries that are not byte-level text, or that name one of
  // special_tokens::kAll, become special added tokens.
  static Tokenizer load_vocab_merges(const std::string& vocab_json_path,
                                     const std::string& merges_txt_path);
  // Hugging Face tokenizer.json (model.vocab, model.merges as "a b" or ["a","b"], added_tokens).
  static Tokenizer load_tokenizer_json(const std::string& path);
  // A tokenizer.json file, or a directory holding tokenizer.json or vocab.json + merges.txt.
  static Tokenizer load(const std::string& path);

  // Both writers replace the target atomically (temporary file, flush, rename).
  void save_vocab_merges(const std::string& vocab_json_path,
                         const std::string& merges_txt_path) const;
  void save_tokenizer_json(const std::string& path) const;

  std::vector<TokenId> encode(std::string_view text, bool allow_special = false) const;
  std::string decode(std::span<const TokenId> ids) const;

  int64_t vocab_size() const { return static_cast<int64_t>(token_bytes_.size()); }
  int64_t merge_count() const { return static_cast<int64_t>(merges_.size()); }
  const std::vector<std::pair<TokenId, TokenId>>& merges() const { return merges_; }
  const std::vector<AddedToken>& added_tokens() const { return added_tokens_; }
  // The bytes a token decodes to (an added token's content).
  const std::string& token_bytes(TokenId id) const;

  // Id of an added token by content; throws naming the token when it is absent.
  TokenId token_id(std::string_view added_token) const;
  bool has_added_token(std::string_view content) const;
  // Appends a special token (or returns the id it already has).
  TokenId add_special_token(std::string_view content);

 private:
  struct Merge {
    int32_t rank;
    TokenId result;
  };
  struct PieceCache;

  void build_indexes();  // validates and fills the lookup tables below from the primary data
  void bpe(std::string_view piece, std::vector<TokenId>& out) const;
  void encode_ordinary(std::string_view text, std::vector<TokenId>& out) const;

  // Primary data.
  std::vector<std::string> token_bytes_;             // id -> bytes (added tokens: their content)
  std::vector<std::pair<TokenId, TokenId>> merges_;  // rank -> (left, right)
  std::vector<AddedToken> added_tokens_;

  // Derived lookups.
  std::vector<bool> is_added_;  // id -> whether it is an added token
  TokenId byte_token_[256] = {};
  std::unordered_map<uint64_t, Merge> merge_by_pair_;  // (left << 32 | right) -> merge
  std::unordered_map<std::string, TokenId> ordinary_by_bytes_;
  std::shared_ptr<PieceCache> cache_;  // shared by copies: the merges never change after build
};

// Accumulates pre-tokenised word counts from any number of texts, then learns merges.
// Merges are chosen by a max-heap of pair counts updated incrementally after each merge; ties
// go to the smaller (left id, right id), so the result depends only on the texts.
class BpeTrainer {
 public:
  void add_text(std::string_view text);
  int64_t distinct_words() const { return static_cast<int64_t>(word_counts_.size()); }
  Tokenizer train(const BpeTrainOptions& options) const;

 private:
  std::unordered_map<std::string, int64_t> word_counts_;
};

}  // namespace tiller
