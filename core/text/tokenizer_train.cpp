// BpeTrainer: learns byte-level BPE merges from pre-tokenised word counts.
//
// Each distinct word is a symbol sequence with a count. Pair counts (weighted by word counts) are
// kept in a hash map, with an index from each pair to the words that may contain it, and a
// max-heap of (count, pair) whose entries go stale instead of being updated: every pair whose
// count changes gets a fresh entry, and a popped entry is used only if its count is current.
// Applying a merge rewrites only the words indexed under that pair, subtracting their old pairs
// and adding their new ones, so a merge costs the size of the words it touches, not the corpus.
//
// Determinism: the heap order is total — larger count first, then smaller (left id, right id) —
// and new ids are handed out in merge order, so the result depends only on the word counts, not on
// hash-map iteration order. Byte b is token b; special tokens follow the merged tokens.
#include <algorithm>
#include <queue>
#include <unordered_set>

#include "kernels/error.h"
#include "core/text/pretokenize.h"
#include "core/text/tokenizer.h"

namespace tiller {
namespace {

uint64_t pair_key(TokenId left, TokenId right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
TokenId pair_left(uint64_t key) {
  return static_cast<TokenId>(key >> 32);
}
TokenId pair_right(uint64_t key) {
  return static_cast<TokenId>(key & 0xFFFFFFFFu);
}

struct Word {
  std::vector<TokenId> symbols;
  int64_t count;
};

struct HeapEntry {
  int64_t count;
  uint64_t pair;
  // priority_queue pops the largest: larger count, then the smaller pair key.
  bool operator<(const HeapEntry& other) const {
    return count != other.count ? count < other.count : pair > other.pair;
  }
};

// Replaces every non-overlapping (left, right), scanning left to right, by `merged`.
bool apply_merge(std::vector<TokenId>& symbols, TokenId left, TokenId right, TokenId merged) {
  size_t out = 0;
  bool changed = false;
  for (size_t i = 0; i < symbols.size(); ++i) {
    if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
      symbols[out++] = merged;
      ++i;
      changed = true;
    } else {
      symbols[out++] = symbols[i];
    }
  }
  symbols.resize(out);
  return changed;
}

}  // namespace

void BpeTrainer::add_text(std::string_view text) {
  for (std::string_view piece : pretokenize(text)) ++word_counts_[std::string(piece)];
}

Tokenizer BpeTrainer::train(const BpeTrainOptions& options) const {
  const auto special_count = static_cast<int64_t>(options.special_tokens.size());
  TILLER_CHECK(options.vocab_size >= 256 + special_count,
               "BpeTrainer::train: vocab_size {} is below the 256 byte tokens + {} special tokens",
               options.vocab_size, special_count);
  TILLER_CHECK(options.vocab_size <= INT32_MAX, "BpeTrainer::train: vocab_size {} is too large",
               options.vocab_size);
  TILLER_CHECK(options.min_pair_count >= 1, "BpeTrainer::train: min_pair_count is {}, must be >= 1",
               options.min_pair_count);

  std::vector<std::string> token_bytes;
  for (int b = 0; b < 256; ++b) token_bytes.emplace_back(1, static_cast<char>(b));
  std::unordered_map<std::string, TokenId> id_by_bytes;
  for (int b = 0; b < 256; ++b) id_by_bytes.emplace(token_bytes[b], b);

  // Sorted words make the word order (and so every index list) independent of the hash map.
  std::vector<std::pair<std::string_view, int64_t>> sorted_counts(word_counts_.begin(),
                                                                  word_counts_.end());
  std::sort(sorted_counts.begin(), sorted_counts.end());
  std::vector<Word> words;
  words.reserve(sorted_counts.size());
  std::unordered_map<uint64_t, int64_t> pair_counts;
  std::unordered_map<uint64_t, std::vector<int32_t>> words_with_pair;  // may hold stale entries
  for (const auto& [text, count] : sorted_counts) {
    if (text.size() < 2) continue;  // a single byte has no pair to merge
    Word word{{}, count};
    for (char c : text) word.symbols.push_back(static_cast<uint8_t>(c));
    auto index = static_cast<int32_t>(words.size());
    for (size_t i = 0; i + 1 < word.symbols.size(); ++i) {
      uint64_t key = pair_key(word.symbols[i], word.symbols[i + 1]);
      pair_counts[key] += count;
      auto& list = words_with_pair[key];
      if (list.empty() || list.back() != index) list.push_back(index);
    }
    words.push_back(std::move(word));
  }
  std::priority_queue<HeapEntry> heap;
  for (const auto& [key, count] : pair_counts) heap.push({count, key});

  const int64_t target_ordinary = options.vocab_size - special_count;
  std::vector<std::pair<TokenId, TokenId>> merges;
  BpeTrainProgress progress{0, target_ordinary - 256};
  std::unordered_map<uint64_t, int64_t> changed;  // pair -> count delta of the current merge
  while (static_cast<int64_t>(token_bytes.size()) < target_ordinary && !heap.empty()) {
    HeapEntry top = heap.top();
    heap.pop();
    auto current = pair_counts.find(top.pair);
    if (current == pair_counts.end() || current->second != top.count) continue;  // stale
    if (top.count < options.min_pair_count) break;

    TokenId left = pair_left(top.pair), right = pair_right(top.pair);
    std::string merged_bytes = token_bytes[left] + token_bytes[right];
    // Two different pairs can spell the same bytes ("ab"+"c", "a"+"bc"): reuse the token.
    auto [found, is_new] =
        id_by_bytes.emplace(merged_bytes, static_cast<TokenId>(token_bytes.size()));
    if (is_new) token_bytes.push_back(merged_bytes);
    TokenId merged = found->second;
    merges.emplace_back(left, right);

    std::vector<int32_t> affected = std::move(words_with_pair[top.pair]);
    words_with_pair.erase(top.pair);
    changed.clear();
    for (int32_t index : affected) {
      Word& word = words[index];
      std::vector<TokenId> before = word.symbols;
      if (!apply_merge(word.symbols, left, right, merged)) continue;
      for (size_t i = 0; i + 1 < before.size(); ++i) {
        changed[pair_key(before[i], before[i + 1])] -= word.count;
      }
      for (size_t i = 0; i + 1 < word.symbols.size(); ++i) {
        uint64_t key = pair_key(word.symbols[i], word.symbols[i + 1]);
        changed[key] += word.count;
        if (word.symbols[i] == merged || word.symbols[i + 1] == merged) {
          auto& list = words_with_pair[key];
          if (list.empty() || list.back() != index) list.push_back(index);
        }
      }
    }
    for (const auto& [key, delta] : changed) {
      if (delta == 0) continue;
      int64_t& count = pair_counts[key];
      count += delta;
      if (count > 0) {
        heap.push({count, key});
      } else {
        pair_counts.erase(key);
      }
    }
    ++progress.merges_done;
    if (options.progress &&
        progress.merges_done % std::max<int64_t>(1, options.progress_every) == 0) {
      options.progress(progress);
    }
  }
  if (options.progress) options.progress(progress);

  std::vector<AddedToken> added;
  for (const std::string& content : options.special_tokens) {
    TILLER_CHECK(!content.empty(), "BpeTrainer::train: a special token is empty");
    added.push_back({content, static_cast<TokenId>(token_bytes.size()), true});
    token_bytes.push_back(content);
  }
  return Tokenizer(std::move(token_bytes), std::move(merges), std::move(added));
}

}  // namespace tiller
