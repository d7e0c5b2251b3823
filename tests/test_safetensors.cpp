// safetensors: round trips, the exact byte layout of the format, dtype conversion on load, and
// one test per malformed-file rule, each asserting the error names the file and the problem.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>

#include <unistd.h>

#include "core/io/safetensors.h"
#include "support/temp_dir.h"

using namespace tiller;
using tiller::testing::TempDir;

namespace {

std::string little_endian_u64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return bytes;
}

template <typename T>
std::string raw_bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// A file as the spec describes it, header taken verbatim (no padding added).
std::string file_bytes(const std::string& header, const std::string& data) {
  return little_endian_u64(header.size()) + header + data;
}

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Writes `bytes` to a file and returns the message load() throws for it.
std::string load_error(const TempDir& dir, const std::string& bytes) {
  auto path = dir / "bad.safetensors";
  write_bytes(path, bytes);
  try {
    safetensors::load(path);
  } catch (const Error& error) {
    return error.what();
  }
  FAIL("load accepted a malformed file");
  return "";
}

}  // namespace

TEST_CASE("f32, bf16 and i32 tensors, 0-d and empty ones included, round-trip exactly",
          "[safetensors]") {
  TempDir dir;
  Generator gen(3);
  Tensor weights = Tensor::randn({3, 5}, gen);
  Tensor half_weights = Tensor::randn({4, 2, 3}, gen, 0.f, 1.f, {.dtype = DType::bf16});
  Tensor ids = Tensor::from_ints({-7, 0, 2147483647, 12}, {2, 2});
  Tensor scalar = Tensor::from_vector({3.25f}, {});
  Tensor empty_f32 = Tensor::zeros({0, 4});
  Tensor empty_i32 = Tensor::from_ints({}, {0});
  safetensors::save(dir / "model.safetensors", {{"weights", weights},
                                                {"half_weights", half_weights},
                                                {"ids", ids},
                                                {"scalar", scalar},
                                                {"empty_f32", empty_f32},
                                                {"empty_i32", empty_i32}});

  auto loaded = safetensors::load(dir / "model.safetensors").tensors;
  REQUIRE(loaded.size() == 6);
  auto same = [](const Tensor& a, const Tensor& b) {
    return a.shape() == b.shape() && a.dtype() == b.dtype() && a.nbytes() == b.nbytes() &&
           std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
  };
  CHECK(same(loaded.at("weights"), weights));
  CHECK(same(loaded.at("half_weights"), half_weights));
  CHECK(same(loaded.at("ids"), ids));
  CHECK(same(loaded.at("scalar"), scalar));
  CHECK(loaded.at("scalar").dim() == 0);
  CHECK(loaded.at("empty_f32").shape() == Shape{0, 4});
  CHECK(loaded.at("empty_i32").shape() == Shape{0});
  CHECK(loaded.at("empty_i32").dtype() == DType::i32);
}

TEST_CASE("saving a name-ordered map writes the same file as the sorted pair list",
          "[safetensors]") {
  Tensor a = Tensor::from_vector({1.f, 2.f}, {2});
  Tensor b = Tensor::from_ints({5}, {1});
  std::map<std::string, Tensor> by_name{{"b", b}, {"a", a}};
  TempDir dir;
  safetensors::save(dir / "map.safetensors", by_name);
  auto loaded = safetensors::load(dir / "map.safetensors").tensors;
  REQUIRE(loaded.at("a").to_vector() == std::vector<float>{1.f, 2.f});
  REQUIRE(loaded.at("b").to_int_vector() == std::vector<int32_t>{5});
  std::ifstream file(dir / "map.safetensors", std::ios::binary);
  std::string on_disk((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  REQUIRE(on_disk == safetensors::serialize({{"a", a}, {"b", b}}));
}

TEST_CASE("metadata round-trips and an empty metadata map writes no __metadata__ entry",
          "[safetensors]") {
  TempDir dir;
  Tensor x = Tensor::ones({2});
  safetensors::Metadata metadata{{"format", "pt"}, {"step", "1200"}, {"note", "ünïcode ✓"}};
  safetensors::save(dir / "with.safetensors", {{"x", x}}, metadata);
  REQUIRE(safetensors::load(dir / "with.safetensors").metadata == metadata);

  std::string bare = safetensors::serialize({{"x", x}});
  REQUIRE(bare.find("__metadata__") == std::string::npos);
  REQUIRE(safetensors::parse(bare.data(), bare.size(), "bare").metadata.empty());
}

TEST_CASE("the writer produces the byte layout of the specification", "[safetensors]") {
  // Built by hand from the spec: u64 little-endian header size, the JSON header padded with
  // spaces so the data starts at a multiple of 8, then each tensor's little-endian bytes.
  std::vector<float> a_values{1.5f, -2.f};
  std::vector<int32_t> b_values{7};
  std::string header = R"({"__metadata__":{"format":"pt"},)"
                       R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"I32","shape":[],"data_offsets":[8,12]}})";
  size_t padded = (header.size() + 7) / 8 * 8;
  header.append(padded - header.size(), ' ');
  std::string expected =
      little_endian_u64(padded) + header + raw_bytes(a_values) + raw_bytes(b_values);

  safetensors::NamedTensors tensors{{"a", Tensor::from_vector(a_values, {2})},
                                    {"b", Tensor::from_ints(b_values, {})}};
  std::string written = safetensors::serialize(tensors, {{"format", "pt"}});
  REQUIRE(written.size() == expected.size());
  REQUIRE(written == expected);
  REQUIRE((8 + padded) % 8 == 0);

  TempDir dir;
  safetensors::save(dir / "exact.safetensors", tensors, {{"format", "pt"}});
  REQUIRE(std::filesystem::file_size(dir / "exact.safetensors") == expected.size());
}

TEST_CASE("a file written by another tool, unpadded and out of offset order, loads",
          "[safetensors]") {
  std::vector<uint16_t> bf16_values{0x3f80, 0xc000};  // 1.0, -2.0
  std::vector<float> f32_values{0.25f};
  std::string header = R"({"late":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]},)"
                       R"("early":{"data_offsets":[0,4],"shape":[1,1],"dtype":"F32"}})";
  std::string bytes = file_bytes(header, raw_bytes(f32_values) + raw_bytes(bf16_values));
  auto loaded = safetensors::parse(bytes.data(), bytes.size(), "external").tensors;
  REQUIRE(loaded.at("early").shape() == Shape{1, 1});
  REQUIRE(loaded.at("early").to_vector() == std::vector<float>{0.25f});
  REQUIRE(loaded.at("late").dtype() == DType::bf16);
  REQUIRE(loaded.at("late").to_vector() == std::vector<float>{1.f, -2.f});
}

TEST_CASE("F16 tensors load as f32 with every class of half value converted exactly",
          "[safetensors]") {
  // bit pattern -> value, from the IEEE 754 binary16 definition.
  std::vector<uint16_t> halves{0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x03ff,
                               0x8000, 0x7c00, 0xfc00, 0x3555, 0x7e00};
  std::vector<float> expected{1.f,
                              -2.f,
                              0.5f,
                              65504.f,
                              std::ldexp(1.f, -24),     // smallest subnormal
                              std::ldexp(1023.f, -24),  // largest subnormal
                              -0.f,
                              std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity(),
                              0.333251953125f};  // 0x3555 = 1365/4096
  std::string header = R"({"h":{"dtype":"F16","shape":[11],"data_offsets":[0,22]}})";
  std::string bytes = file_bytes(header, raw_bytes(halves));
  Tensor loaded = safetensors::parse(bytes.data(), bytes.size(), "halves").tensors.at("h");
  REQUIRE(loaded.dtype() == DType::f32);
  auto values = loaded.to_vector();
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("half 0x" << std::hex << halves[i]);
    REQUIRE(values[i] == expected[i]);
  }
  REQUIRE(std::signbit(values[6]));
  REQUIRE(std::isnan(values[10]));
}

TEST_CASE("F64 tensors load as f32 rounded to nearest, overflowing to infinity", "[safetensors]") {
  std::vector<double> doubles{0.1, -3.0, 1e300, -1e300, 1e-50};
  std::string header = R"({"d":{"dtype":"F64","shape":[5],"data_offsets":[0,40]}})";
  std::string bytes = file_bytes(header, raw_bytes(doubles));
  auto values =
      safetensors::parse(bytes.data(), bytes.size(), "doubles").tensors.at("d").to_vector();
  REQUIRE(values[0] == 0.1f);
  REQUIRE(values[1] == -3.f);
  REQUIRE(values[2] == std::numeric_limits<float>::infinity());
  REQUIRE(values[3] == -std::numeric_limits<float>::infinity());
  REQUIRE(values[4] == 0.f);
}

TEST_CASE("a malformed file is rejected with an error naming the file and the problem",
          "[safetensors]") {
  TempDir dir;
  const std::string file = (dir / "bad.safetensors").string();
  const std::string f32x2 = raw_bytes(std::vector<float>{1.f, 2.f});
  auto tensor = [](const std::string& name, const std::string& dtype, const std::string& shape,
                   uint64_t begin, uint64_t end) {
    return fmt::format(R"("{}":{{"dtype":"{}","shape":{},"data_offsets":[{},{}]}})", name, dtype,
                       shape, begin, end);
  };
  struct Case {
    const char* rule;
    std::string bytes;
    const char* problem;
  };
  std::vector<Case> cases{
      {"empty file", "", "file is 0 bytes, shorter than the 8-byte header length"},
      {"shorter than 8 bytes", std::string("\x10\x00\x00", 3), "file is 3 bytes"},
      {"header length past the end", little_endian_u64(64) + "{}",
       "header length 64 is larger than the file"},
      {"header length beyond the limit", little_endian_u64(1ull << 40),
       "exceeds the 100000000-byte limit"},
      {"header not JSON", file_bytes("{\"a\":", ""), "header is not valid JSON"},
      {"header not an object", file_bytes("[1,2]", ""),
       "header is a JSON array, expected an object"},
      {"offsets past the data", file_bytes("{" + tensor("w", "F32", "[2]", 0, 12) + "}", f32x2),
       "tensor w: data_offsets [0,12] are out of range of the 8-byte data section"},
      {"offsets reversed", file_bytes("{" + tensor("w", "F32", "[0]", 8, 0) + "}", f32x2),
       "tensor w: data_offsets [8,0] are out of range"},
      {"overlapping tensors",
       file_bytes(
           "{" + tensor("a", "F32", "[2]", 0, 8) + "," + tensor("b", "F32", "[1]", 4, 8) + "}",
           f32x2),
       "tensors a [0,8] and b [4,8] overlap"},
      {"bytes between tensors", file_bytes("{" + tensor("a", "F32", "[1]", 4, 8) + "}", f32x2),
       "bytes [0,4) before tensor a belong to no tensor"},
      {"trailing bytes", file_bytes("{" + tensor("a", "F32", "[1]", 0, 4) + "}", f32x2),
       "data section has 8 bytes but the tensors cover 4"},
      {"size not dtype x shape", file_bytes("{" + tensor("w", "BF16", "[2]", 0, 8) + "}", f32x2),
       "tensor w: data_offsets [0,8] span 8 bytes but BF16 [2] needs 4"},
      {"unknown dtype", file_bytes("{" + tensor("w", "Q7", "[2]", 0, 8) + "}", f32x2),
       "tensor w has unknown dtype 'Q7'"},
      {"unsupported dtype", file_bytes("{" + tensor("w", "I64", "[1]", 0, 8) + "}", f32x2),
       "tensor w has dtype I64, which tiller does not load"},
      {"negative extent", file_bytes("{" + tensor("w", "F32", "[-2]", 0, 8) + "}", f32x2),
       "tensor w: shape [-2] has a negative extent"},
      {"overflowing shape",
       file_bytes("{" + tensor("w", "F32", "[4294967296,4294967296,16]", 0, 8) + "}", f32x2),
       "tensor w: shape [4294967296,4294967296,16] is too large"},
      {"fractional extent", file_bytes("{" + tensor("w", "F32", "[2.5]", 0, 8) + "}", f32x2),
       "holds a non-integer"},
      {"missing field", file_bytes(R"({"w":{"dtype":"F32","shape":[2]}})", f32x2),
       "tensor w has no 'data_offsets'"},
      {"duplicate names",
       file_bytes(
           "{" + tensor("w", "F32", "[1]", 0, 4) + "," + tensor("w", "F32", "[1]", 4, 8) + "}",
           f32x2),
       "tensor name 'w' appears more than once"},
      {"non-string metadata",
       file_bytes(R"({"__metadata__":{"step":3},)" + tensor("w", "F32", "[2]", 0, 8) + "}", f32x2),
       "__metadata__ value for 'step' is a JSON number, expected a string"},
  };
  for (const Case& c : cases) {
    INFO(c.rule);
    std::string message = load_error(dir, c.bytes);
    CHECK_THAT(message, Catch::StartsWith("safetensors " + file + ": "));
    CHECK_THAT(message, Catch::Contains(c.problem));
  }
}

// The header-length bound at its exact edges. A length of size - 8 leaves an empty data section;
// one more byte would make the header parse read one byte past the file and the data-section size
// wrap around. Parsed from an exactly sized heap buffer (an overread is an ASan report) and loaded
// from a file of exactly one page (an overread of the mapping faults even without ASan).
TEST_CASE("the header length is bounded by the file size at its exact edges", "[safetensors]") {
  auto parse_exact = [](const std::string& bytes) {
    std::vector<char> exact(bytes.begin(), bytes.end());  // no terminator after the last byte
    return safetensors::parse(exact.data(), exact.size(), "edge");
  };
  const std::string header = "{}";

  SECTION("size - 8 with an empty data section loads") {
    REQUIRE(parse_exact(little_endian_u64(header.size()) + header).tensors.empty());
    std::string zero_sized = R"({"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})";
    auto contents = parse_exact(little_endian_u64(zero_sized.size()) + zero_sized);
    REQUIRE(contents.tensors.at("e").numel() == 0);
  }
  SECTION("size - 8 with a tensor that claims data is out of range") {
    std::string claims = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
    REQUIRE_THROWS_WITH(parse_exact(little_endian_u64(claims.size()) + claims),
                        Catch::Contains("tensor w: data_offsets [0,4] are out of range of the "
                                        "0-byte data section"));
  }
  SECTION("size - 7 is refused with the header-length message") {
    std::string bytes = little_endian_u64(header.size() + 1) + header;
    REQUIRE_THROWS_WITH(parse_exact(bytes),
                        Catch::Contains("safetensors edge: header length 3 is larger than the "
                                        "file (2 bytes after the length)"));
  }
  SECTION("a tensor ending one byte past the data section is refused as out of range") {
    std::string claims = R"({"w":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})";
    REQUIRE_THROWS_WITH(parse_exact(file_bytes(claims, std::string(3, '\x7f'))),
                        Catch::Contains("tensor w: data_offsets [0,4] are out of range of the "
                                        "3-byte data section"));
    REQUIRE(parse_exact(file_bytes(claims, std::string(4, '\x7f'))).tensors.at("w").numel() == 1);
  }
  SECTION("a file of exactly one page, header to the last byte") {
    TempDir dir;
    const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    std::string padded = header + std::string(page - 8 - header.size(), ' ');
    write_bytes(dir / "page.safetensors", little_endian_u64(padded.size()) + padded);
    REQUIRE(std::filesystem::file_size(dir / "page.safetensors") == page);
    REQUIRE(safetensors::load(dir / "page.safetensors").tensors.empty());

    write_bytes(dir / "page.safetensors", little_endian_u64(padded.size() + 1) + padded);
    REQUIRE_THROWS_WITH(safetensors::load(dir / "page.safetensors"),
                        Catch::Contains(fmt::format("header length {} is larger than the file",
                                                    padded.size() + 1)));
  }
}

TEST_CASE("loading a missing file or a directory names the path", "[safetensors]") {
  TempDir dir;
  REQUIRE_THROWS_WITH(
      safetensors::load(dir / "absent.safetensors"),
      Catch::Contains((dir / "absent.safetensors").string()) && Catch::Contains("cannot open"));
  REQUIRE_THROWS_WITH(safetensors::load(dir.path()), Catch::Contains(dir.path().string()) &&
                                                         Catch::Contains("not a regular file"));
}

TEST_CASE("save rejects duplicate, empty and reserved tensor names", "[safetensors]") {
  TempDir dir;
  Tensor x = Tensor::ones({1});
  auto path = dir / "names.safetensors";
  REQUIRE_THROWS_WITH(safetensors::save(path, {{"w", x}, {"w", x}}),
                      Catch::Contains("tensor name 'w' appears twice"));
  REQUIRE_THROWS_WITH(safetensors::save(path, {{"", x}}), Catch::Contains("empty name"));
  REQUIRE_THROWS_WITH(safetensors::save(path, {{"__metadata__", x}}),
                      Catch::Contains("'__metadata__' is reserved"));
  REQUIRE_FALSE(std::filesystem::exists(path));
}

TEST_CASE("a mangled file either loads or throws tiller::Error, never anything worse",
          "[safetensors]") {
  Generator gen(11);
  safetensors::NamedTensors tensors{
      {"w", Tensor::randn({4, 3}, gen)},
      {"b", Tensor::randn({5}, gen, 0.f, 1.f, {.dtype = DType::bf16})},
      {"ids", Tensor::from_ints({1, 2, 3}, {3})},
      {"s", Tensor::from_vector({2.f}, {})}};
  std::string valid = safetensors::serialize(tensors, {{"format", "pt"}});
  uint64_t header_end = 0;
  std::memcpy(&header_end, valid.data(), 8);
  header_end += 8;

  int loaded = 0, rejected = 0;
  auto attempt = [&](const std::string& bytes, const std::string& what) {
    INFO(what);
    try {
      auto contents = safetensors::parse(bytes.data(), bytes.size(), "fuzz");
      for (const auto& [name, tensor] : contents.tensors) {
        REQUIRE(tensor.nbytes() <= bytes.size());
      }
      ++loaded;
    } catch (const Error&) {
      ++rejected;
    } catch (const std::exception& other) {
      FAIL("threw a non-tiller exception: " << other.what());
    }
  };

  TempDir dir;
  for (size_t length = 0; length < 64; ++length) {  // through the file path: mmap of short files
    write_bytes(dir / "short.safetensors", valid.substr(0, length));
    INFO("file truncated to " << length << " bytes");
    REQUIRE_THROWS_AS(safetensors::load(dir / "short.safetensors"), Error);
  }
  std::mt19937_64 random(20240607);
  for (int i = 0; i < 500; ++i) {
    size_t length = 64 + random() % (valid.size() - 64);
    attempt(valid.substr(0, length), fmt::format("truncated to {} bytes", length));
  }
  for (int i = 0; i < 2500; ++i) {
    std::string mangled = valid;
    int flips = 1 + static_cast<int>(random() % 4);
    for (int f = 0; f < flips; ++f) {
      size_t at = random() % header_end;  // the length field and the JSON header
      mangled[at] = static_cast<char>(random() & 0xff);
    }
    attempt(mangled, fmt::format("case {} with {} flipped bytes", i, flips));
  }
  // Both outcomes occur, so the loop exercised acceptance as well as every rejection path above.
  REQUIRE(loaded > 0);
  REQUIRE(rejected > 0);
}
