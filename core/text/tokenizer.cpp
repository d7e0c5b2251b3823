// Tokenizer core: validation of the vocabulary and merges, encode (added tokens, pre-tokeniser,
// BPE) and decode. File formats live in core/tokenizer_files.cpp, training in
// core/tokenizer_train.cpp.
//
// BPE on one piece is a doubly linked list of symbols plus a min-heap of (rank, position) of the
// adjacent pairs that have a merge. Entries go stale when a neighbour merges; they are checked
// when popped (the pair at that position must still have that rank). This is O(n log n) per
// piece, so a long run of punctuation or whitespace cannot make encoding quadratic.
#include "core/text/tokenizer.h"

#include <algorithm>
#include <mutex>
#include <queue>

#include "kernels/error.h"
#include "core/text/pretokenize.h"

namespace tiller {
namespace {

uint64_t pair_key(TokenId left, TokenId right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// Above this many cached pieces the cache is cleared: bounded memory on endless streams.
constexpr size_t kMaxCachedPieces = 1 << 18;

}  // namespace

struct Tokenizer::PieceCache {
  std::mutex mutex;
  std::unordered_map<std::string, std::vector<TokenId>> pieces;
};

Tokenizer::Tokenizer() {
  token_bytes_.reserve(256);
  for (int b = 0; b < 256; ++b) token_bytes_.emplace_back(1, static_cast<char>(b));
  build_indexes();
}

Tokenizer::Tokenizer(std::vector<std::string> token_bytes,
                     std::vector<std::pair<TokenId, TokenId>> merges,
                     std::vector<AddedToken> added_tokens)
    : token_bytes_(std::move(token_bytes)),
      merges_(std::move(merges)),
      added_tokens_(std::move(added_tokens)) {
  build_indexes();
}

void Tokenizer::build_indexes() {
  const int64_t n = vocab_size();
  is_added_.assign(n, false);
  for (const AddedToken& added : added_tokens_) {
    TILLER_CHECK(added.id >= 0 && added.id < n,
                 "Tokenizer: added token '{}' has id {}, outside the vocabulary (size {})",
                 added.content, added.id, n);
    TILLER_CHECK(!is_added_[added.id], "Tokenizer: id {} is given to two added tokens ('{}')",
                 added.id, added.content);
    TILLER_CHECK(!added.content.empty(), "Tokenizer: added token {} has empty content", added.id);
    is_added_[added.id] = true;
    token_bytes_[added.id] = added.content;
  }

  ordinary_by_bytes_.clear();
  ordinary_by_bytes_.reserve(n);
  for (TokenId id = 0; id < n; ++id) {
    if (is_added_[id]) continue;
    TILLER_CHECK(!token_bytes_[id].empty(), "Tokenizer: token {} has no bytes", id);
    auto [it, inserted] = ordinary_by_bytes_.emplace(token_bytes_[id], id);
    TILLER_CHECK(inserted, "Tokenizer: tokens {} and {} have the same bytes '{}'", it->second, id,
                 bytes_to_unicode(token_bytes_[id]));
  }
  for (int b = 0; b < 256; ++b) {
    auto it = ordinary_by_bytes_.find(std::string(1, static_cast<char>(b)));
    TILLER_CHECK(it != ordinary_by_bytes_.end(),
                 "Tokenizer: no token for byte 0x{:02X}; a byte-level BPE needs all 256 bytes", b);
    byte_token_[b] = it->second;
  }

  merge_by_pair_.clear();
  merge_by_pair_.reserve(merges_.size());
  for (size_t rank = 0; rank < merges_.size(); ++rank) {
    auto [left, right] = merges_[rank];
    TILLER_CHECK(
        left >= 0 && left < n && right >= 0 && right < n && !is_added_[left] && !is_added_[right],
        "Tokenizer: merge {} ({}, {}) does not name two ordinary tokens", rank, left, right);
    auto result = ordinary_by_bytes_.find(token_bytes_[left] + token_bytes_[right]);
    TILLER_CHECK(result != ordinary_by_bytes_.end(),
                 "Tokenizer: merge {} ('{}' '{}') produces a token that is not in the vocabulary",
                 rank, bytes_to_unicode(token_bytes_[left]), bytes_to_unicode(token_bytes_[right]));
    // A repeated pair keeps its first (lowest) rank, as in GPT-2's dict of ranks.
    merge_by_pair_.emplace(pair_key(left, right),
                           Merge{static_cast<int32_t>(rank), result->second});
  }
  cache_ = std::make_shared<PieceCache>();
}

const std::string& Tokenizer::token_bytes(TokenId id) const {
  TILLER_CHECK(id >= 0 && id < vocab_size(),
               "Tokenizer::token_bytes: id {} is outside the vocabulary (size {})", id,
               vocab_size());
  return token_bytes_[id];
}

bool Tokenizer::has_added_token(std::string_view content) const {
  return std::any_of(added_tokens_.begin(), added_tokens_.end(),
                     [&](const AddedToken& added) { return added.content == content; });
}

TokenId Tokenizer::token_id(std::string_view added_token) const {
  for (const AddedToken& added : added_tokens_) {
    if (added.content == added_token) return added.id;
  }
  fail(
      "Tokenizer: no added token '{}' (the tokenizer has {} added tokens); add it with "
      "add_special_token or train with it in BpeTrainOptions::special_tokens",
      added_token, added_tokens_.size());
}

TokenId Tokenizer::add_special_token(std::string_view content) {
  for (const AddedToken& added : added_tokens_) {
    if (added.content == content) return added.id;
  }
  TILLER_CHECK(!content.empty(), "Tokenizer::add_special_token: content is empty");
  auto id = static_cast<TokenId>(vocab_size());
  token_bytes_.emplace_back(content);
  is_added_.push_back(true);
  added_tokens_.push_back({std::string(content), id, true});
  return id;
}

void Tokenizer::bpe(std::string_view piece, std::vector<TokenId>& out) const {
  if (piece.size() == 1) {
    out.push_back(byte_token_[static_cast<uint8_t>(piece[0])]);
    return;
  }
  {
    std::lock_guard lock(cache_->mutex);
    auto it = cache_->pieces.find(std::string(piece));
    if (it != cache_->pieces.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const int n = static_cast<int>(piece.size());
  std::vector<TokenId> symbol(n);
  std::vector<int> prev(n), next(n);  // neighbours in the list; -1 / n at the ends
  for (int i = 0; i < n; ++i) {
    symbol[i] = byte_token_[static_cast<uint8_t>(piece[i])];
    prev[i] = i - 1;
    next[i] = i + 1;
  }
  using Candidate = std::pair<int32_t, int>;  // (rank, left position): smallest first
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto push_pair = [&](int left) {
    if (left < 0 || next[left] >= n) return;
    auto it = merge_by_pair_.find(pair_key(symbol[left], symbol[next[left]]));
    if (it != merge_by_pair_.end()) heap.emplace(it->second.rank, left);
  };
  for (int i = 0; i + 1 < n; ++i) push_pair(i);
  constexpr TokenId kMerged = -1;  // marks a symbol absorbed into its left neighbour
  while (!heap.empty()) {
    auto [rank, left] = heap.top();
    heap.pop();
    if (symbol[left] == kMerged || next[left] >= n) continue;
    int right = next[left];
    auto it = merge_by_pair_.find(pair_key(symbol[left], symbol[right]));
    if (it == merge_by_pair_.end() || it->second.rank != rank) continue;  // stale entry
    symbol[left] = it->second.result;
    symbol[right] = kMerged;
    next[left] = next[right];
    if (next[right] < n) prev[next[right]] = left;
    push_pair(prev[left]);
    push_pair(left);
  }
  std::vector<TokenId> ids;
  for (int i = 0; i < n; i = next[i]) ids.push_back(symbol[i]);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard lock(cache_->mutex);
  if (cache_->pieces.size() >= kMaxCachedPieces) cache_->pieces.clear();
  cache_->pieces.emplace(piece, std::move(ids));
}

void Tokenizer::encode_ordinary(std::string_view text, std::vector<TokenId>& out) const {
  for (std::string_view piece : pretokenize(text)) bpe(piece, out);
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3 + 1);
  std::vector<const AddedToken*> matchable;
  for (const AddedToken& added : added_tokens_) {
    if (allow_special || !added.special) matchable.push_back(&added);
  }
  if (matchable.empty()) {
    encode_ordinary(text, ids);
    return ids;
  }
  // Next occurrence of each matchable token at or after `pos`, refreshed only when passed.
  std::vector<size_t> next_at(matchable.size());
  for (size_t k = 0; k < matchable.size(); ++k) next_at[k] = text.find(matchable[k]->content);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t best_at = std::string_view::npos;
    const AddedToken* best = nullptr;
    for (size_t k = 0; k < matchable.size(); ++k) {
      if (next_at[k] != std::string_view::npos && next_at[k] < pos) {
        next_at[k] = text.find(matchable[k]->content, pos);
      }
      size_t at = next_at[k];
      if (at == std::string_view::npos) continue;
      // Earliest match wins; at the same position the longest (e.g. "<|end|>" vs a longer one).
      if (at < best_at || (at == best_at && matchable[k]->content.size() > best->content.size())) {
        best_at = at;
        best = matchable[k];
      }
    }
    if (best == nullptr) {
      encode_ordinary(text.substr(pos), ids);
      break;
    }
    encode_ordinary(text.substr(pos, best_at - pos), ids);
    ids.push_back(best->id);
    pos = best_at + best->content.size();
  }
  return ids;
}

std::string Tokenizer::decode(std::span<const TokenId> ids) const {
  std::string text;
  for (TokenId id : ids) {
    TILLER_CHECK(id >= 0 && id < vocab_size(),
                 "Tokenizer::decode: id {} is outside the vocabulary (size {})", id, vocab_size());
    text += token_bytes_[id];
  }
  return text;
}

}  // namespace tiller
