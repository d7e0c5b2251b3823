// Token shards: byte layout, round trips at both widths, and header validation on open.
#include <catch2/catch.hpp>

#include <fstream>
#include <numeric>

#include "kernels/error.h"
#include "core/data/shards.h"
#include "support/temp_dir.h"

using namespace tiller;
using tiller::testing::TempDir;

namespace {

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::vector<TokenId> read_all(const TokenShard& shard) {
  std::vector<TokenId> tokens(shard.size());
  shard.read(0, shard.size(), tokens.data());
  return tokens;
}

}  // namespace

TEST_CASE("a shard's bytes are the documented little-endian layout", "[shards]") {
  TempDir dir;
  write_token_shard(dir / "a.bin", std::vector<TokenId>{1, 258, 65535}, 2);
  std::string bytes = read_bytes(dir / "a.bin");
  REQUIRE(bytes.size() == 64 + 3 * 2);
  REQUIRE(bytes.substr(0, 8) == "TILLERTK");
  REQUIRE(bytes.substr(8, 4) == std::string("\x01\x00\x00\x00", 4));   // version 1
  REQUIRE(bytes.substr(12, 4) == std::string("\x02\x00\x00\x00", 4));  // width 2
  REQUIRE(bytes.substr(16, 8) == std::string("\x03\0\0\0\0\0\0\0", 8));
  REQUIRE(bytes.substr(24, 40) == std::string(40, '\0'));
  REQUIRE(bytes.substr(64) == std::string("\x01\x00\x02\x01\xFF\xFF", 6));
  REQUIRE(shard_token_width(65536) == 2);
  REQUIRE(shard_token_width(65537) == 4);
}

TEST_CASE("shards round-trip tokens at widths 2 and 4, including empty shards", "[shards]") {
  TempDir dir;
  std::vector<TokenId> small(100000);
  std::iota(small.begin(), small.end(), 0);
  for (auto& t : small) t = (t * 7919) % 65536;
  std::vector<TokenId> large = {0, 65536, 100000, 2147483647};
  write_token_shard(dir / "small.bin", small, 2);
  write_token_shard(dir / "large.bin", large, 4);
  write_token_shard(dir / "empty.bin", std::vector<TokenId>{}, 4);
  TokenShard small_shard(dir / "small.bin");
  TokenShard large_shard(dir / "large.bin");
  REQUIRE(small_shard.token_width() == 2);
  REQUIRE(large_shard.token_width() == 4);
  REQUIRE(read_all(small_shard) == small);
  REQUIRE(read_all(large_shard) == large);
  REQUIRE(TokenShard(dir / "empty.bin").size() == 0);
  TokenShard moved = std::move(small_shard);
  REQUIRE(moved[99999] == small[99999]);
  TokenId out[2];
  REQUIRE_THROWS_WITH(large_shard.read(3, 2, out),
                      Catch::Contains("large.bin") && Catch::Contains("[3, 5)"));
}

TEST_CASE("writing refuses tokens that do not fit the width and leaves no file", "[shards]") {
  TempDir dir;
  REQUIRE_THROWS_WITH(write_token_shard(dir / "x.bin", std::vector<TokenId>{5, 70000}, 2),
                      Catch::Contains("x.bin") && Catch::Contains("token 70000 at position 1"));
  REQUIRE_THROWS_WITH(write_token_shard(dir / "x.bin", std::vector<TokenId>{-1}, 4),
                      Catch::Contains("token -1"));
  REQUIRE_THROWS_WITH(write_token_shard(dir / "x.bin", std::vector<TokenId>{1}, 3),
                      Catch::Contains("token width 3"));
  REQUIRE_FALSE(std::filesystem::exists(dir / "x.bin"));
}

TEST_CASE("opening a damaged shard fails with a message naming the file and the damage",
          "[shards]") {
  TempDir dir;
  auto path = dir / "shard.bin";
  write_token_shard(path, std::vector<TokenId>{1, 2, 3, 4}, 2);
  const std::string good = read_bytes(path);

  SECTION("missing file") {
    REQUIRE_THROWS_WITH(TokenShard(dir / "absent.bin"),
                        Catch::Contains("absent.bin") && Catch::Contains("cannot open"));
  }
  SECTION("shorter than the header") {
    write_bytes(path, good.substr(0, 20));
    REQUIRE_THROWS_WITH(TokenShard(path), Catch::Contains(path.string()) &&
                                              Catch::Contains("file is 20 bytes, shorter than "
                                                              "the 64-byte header"));
  }
  SECTION("bad magic") {
    std::string bad = good;
    bad.replace(0, 8, "GPT2DATA");
    write_bytes(path, bad);
    REQUIRE_THROWS_WITH(TokenShard(path),
                        Catch::Contains(path.string()) && Catch::Contains("bad magic 'GPT2DATA'"));
  }
  SECTION("unknown version") {
    std::string bad = good;
    bad[8] = 9;
    write_bytes(path, bad);
    REQUIRE_THROWS_WITH(TokenShard(path), Catch::Contains("format version 9 is not supported"));
  }
  SECTION("wrong width") {
    std::string bad = good;
    bad[12] = 3;
    write_bytes(path, bad);
    REQUIRE_THROWS_WITH(TokenShard(path),
                        Catch::Contains(path.string()) && Catch::Contains("token width 3 bytes"));
  }
  SECTION("truncated token data") {
    write_bytes(path, good.substr(0, good.size() - 1));
    REQUIRE_THROWS_WITH(TokenShard(path),
                        Catch::Contains("header says 4 tokens of 2 bytes (72 bytes with the "
                                        "header) but the file is 71 bytes"));
  }
  SECTION("count larger than the data") {
    std::string bad = good;
    bad[16] = 5;
    write_bytes(path, bad);
    REQUIRE_THROWS_WITH(TokenShard(path), Catch::Contains("header says 5 tokens"));
  }
  SECTION("absurd count does not overflow the size check") {
    std::string bad = good;
    bad.replace(16, 8, std::string(8, '\xFF'));
    write_bytes(path, bad);
    REQUIRE_THROWS_WITH(TokenShard(path), Catch::Contains("header says 18446744073709551615"));
  }
}
