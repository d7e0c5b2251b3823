// Binary token shards: the pretraining data format.
//
// File layout (all integers little-endian):
//
//   offset  size        field
//   0       8           magic "TILLERTK"
//   8       4  u32      version (kShardVersion)
//   12      4  u32      token width in bytes: 2 (u16 ids, vocab <= 65536) or 4 (i32 ids)
//   16      8  u64      token count
//   24      40          reserved, written as zeros
//   64      count*width the tokens
//
// The 64-byte header keeps the token array aligned for either width. Writers go through
// write_file_atomic (temporary file, fsync, rename), so a shard either exists complete or not at
// all. Readers memory-map the file and validate the header and the exact file size on open, so a
// truncated or foreign file fails immediately with a message naming the file, never mid-training.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include "core/text/tokenizer.h"

namespace tiller {

inline constexpr char kShardMagic[8] = {'T', 'I', 'L', 'L', 'E', 'R', 'T', 'K'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 64;

// 2 when every id of a vocabulary this size fits in u16, else 4.
int shard_token_width(int64_t vocab_size);

// Writes tokens as a shard of the given width (2 or 4); every token must fit that width.
void write_token_shard(const std::filesystem::path& path, std::span<const TokenId> tokens,
                       int token_width);

// A read-only, memory-mapped shard. Move-only; unmaps on destruction.
class TokenShard {
 public:
  explicit TokenShard(const std::filesystem::path& path);  // validates; throws tiller::Error
  ~TokenShard();
  TokenShard(TokenShard&& other) noexcept;
  TokenShard& operator=(TokenShard&& other) noexcept;
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;

  int64_t size() const { return count_; }  // number of tokens
  int token_width() const { return token_width_; }
  const std::string& path() const { return path_; }

  TokenId operator[](int64_t index) const;  // unchecked
  // Copies tokens [begin, begin + count) as i32; throws when the range leaves the shard.
  void read(int64_t begin, int64_t count, TokenId* out) const;

 private:
  void release() noexcept;

  std::string path_;
  void* mapping_ = nullptr;
  size_t mapped_bytes_ = 0;
  const unsigned char* tokens_ = nullptr;
  int64_t count_ = 0;
  int token_width_ = 0;
};

}  // namespace tiller
