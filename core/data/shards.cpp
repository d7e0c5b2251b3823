// Token shard writer and memory-mapped reader (format in core/shards.h).
//
// Integers are encoded and decoded byte by byte, so the format is little-endian on any host; the
// token array is converted in blocks on write and per token on read (a u16/i32 load from a mapped
// page is as cheap as memcpy and needs no alignment assumption).
#include "core/data/shards.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "core/io/atomic_file.h"
#include "kernels/error.h"

namespace tiller {
namespace {

void put_le(unsigned char* out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out[i] = static_cast<unsigned char>(value >> (8 * i));
}

uint64_t get_le(const unsigned char* in, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= static_cast<uint64_t>(in[i]) << (8 * i);
  return value;
}

std::string printable(const unsigned char* bytes, size_t n) {
  std::string text;
  for (size_t i = 0; i < n; ++i) {
    if (bytes[i] >= 0x20 && bytes[i] < 0x7F) {
      text += static_cast<char>(bytes[i]);
    } else {
      text += fmt::format("\\x{:02X}", bytes[i]);
    }
  }
  return text;
}

}  // namespace

int shard_token_width(int64_t vocab_size) {
  return vocab_size <= 65536 ? 2 : 4;
}

void write_token_shard(const std::filesystem::path& path, std::span<const TokenId> tokens,
                       int token_width) {
  TILLER_CHECK(token_width == 2 || token_width == 4,
               "write_token_shard {}: token width {} is not supported; use 2 or 4", path.string(),
               token_width);
  const int64_t max_token = token_width == 2 ? 65535 : INT32_MAX;
  for (size_t i = 0; i < tokens.size(); ++i) {
    TILLER_CHECK(tokens[i] >= 0 && tokens[i] <= max_token,
                 "write_token_shard {}: token {} at position {} does not fit {} bytes",
                 path.string(), tokens[i], i, token_width);
  }
  write_file_atomic(path, [&](FileSink& sink) {
    unsigned char header[kShardHeaderBytes] = {};
    std::memcpy(header, kShardMagic, sizeof(kShardMagic));
    put_le(header + 8, kShardVersion, 4);
    put_le(header + 12, static_cast<uint64_t>(token_width), 4);
    put_le(header + 16, tokens.size(), 8);
    sink.write(header, sizeof(header));
    constexpr size_t kBlockTokens = 1 << 16;
    std::vector<unsigned char> block(kBlockTokens * token_width);
    for (size_t begin = 0; begin < tokens.size(); begin += kBlockTokens) {
      size_t n = std::min(kBlockTokens, tokens.size() - begin);
      for (size_t i = 0; i < n; ++i) {
        put_le(block.data() + i * token_width, static_cast<uint32_t>(tokens[begin + i]),
               token_width);
      }
      sink.write(block.data(), n * token_width);
    }
  });
}

TokenShard::TokenShard(const std::filesystem::path& path) : path_(path.string()) {
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  TILLER_CHECK(fd >= 0, "TokenShard {}: cannot open: {}", path_, std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    int error = errno;
    ::close(fd);
    fail("TokenShard {}: cannot stat: {}", path_, std::strerror(error));
  }
  const auto file_bytes = static_cast<uint64_t>(info.st_size);
  if (file_bytes < kShardHeaderBytes) {
    ::close(fd);
    fail(
        "TokenShard {}: file is {} bytes, shorter than the {}-byte header; truncated or not a "
        "token shard",
        path_, file_bytes, kShardHeaderBytes);
  }
  mapping_ = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_error = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (mapping_ == MAP_FAILED) {
    mapping_ = nullptr;
    fail("TokenShard {}: mmap of {} bytes failed: {}", path_, file_bytes, std::strerror(map_error));
  }
  mapped_bytes_ = file_bytes;

  // From here a failed check must unmap: the destructor does not run for a throwing constructor.
  try {
    const auto* header = static_cast<const unsigned char*>(mapping_);
    TILLER_CHECK(std::memcmp(header, kShardMagic, sizeof(kShardMagic)) == 0,
                 "TokenShard {}: bad magic '{}' (expected 'TILLERTK'); not a tiller token shard",
                 path_, printable(header, sizeof(kShardMagic)));
    uint64_t version = get_le(header + 8, 4);
    TILLER_CHECK(version == kShardVersion,
                 "TokenShard {}: format version {} is not supported (this build reads {})", path_,
                 version, kShardVersion);
    uint64_t width = get_le(header + 12, 4);
    TILLER_CHECK(width == 2 || width == 4,
                 "TokenShard {}: token width {} bytes in the header; expected 2 or 4", path_,
                 width);
    uint64_t count = get_le(header + 16, 8);
    uint64_t payload = file_bytes - kShardHeaderBytes;
    TILLER_CHECK(count <= payload / width && count * width == payload,
                 "TokenShard {}: header says {} tokens of {} bytes ({} bytes with the header) but "
                 "the file is {} bytes",
                 path_, count, width,
                 count <= UINT64_MAX / width - kShardHeaderBytes
                     ? fmt::format("{}", count * width + kShardHeaderBytes)
                     : std::string("too many"),
                 file_bytes);
    token_width_ = static_cast<int>(width);
    count_ = static_cast<int64_t>(count);
    tokens_ = header + kShardHeaderBytes;
  } catch (...) {
    release();
    throw;
  }
}

TokenShard::~TokenShard() {
  release();
}

TokenShard::TokenShard(TokenShard&& other) noexcept {
  *this = std::move(other);
}

TokenShard& TokenShard::operator=(TokenShard&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    mapping_ = std::exchange(other.mapping_, nullptr);
    mapped_bytes_ = std::exchange(other.mapped_bytes_, 0);
    tokens_ = std::exchange(other.tokens_, nullptr);
    count_ = std::exchange(other.count_, 0);
    token_width_ = std::exchange(other.token_width_, 0);
  }
  return *this;
}

void TokenShard::release() noexcept {
  if (mapping_ != nullptr) ::munmap(mapping_, mapped_bytes_);
  mapping_ = nullptr;
  tokens_ = nullptr;
}

TokenId TokenShard::operator[](int64_t index) const {
  return static_cast<TokenId>(get_le(tokens_ + index * token_width_, token_width_));
}

void TokenShard::read(int64_t begin, int64_t count, TokenId* out) const {
  TILLER_CHECK(begin >= 0 && count >= 0 && begin + count <= count_,
               "TokenShard {}: read of tokens [{}, {}) is outside the shard's {} tokens", path_,
               begin, begin + count, count_);
  for (int64_t i = 0; i < count; ++i) out[i] = (*this)[begin + i];
}

}  // namespace tiller
