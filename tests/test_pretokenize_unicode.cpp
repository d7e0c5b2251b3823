// GPT-2's pre-tokeniser against GPT-2's own pattern run by Python's `regex` module, on fixtures
// written by tests/reference/make_unicode_fixtures.py:
//   unicode/classes.txt  the class of every code point (\p{L}, \p{N}, \s, other); runs marked X
//                        are code points whose class changed after Unicode 14.0 (the version of
//                        Debian 12's PCRE2) and are counted, not compared;
//   unicode/splits.jsonl 2,000 lines of random Unicode from every plane with regex's pieces.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/text/pretokenize.h"
#include "core/text/tokenizer.h"

using namespace tiller;

namespace {

const std::filesystem::path kUnicode = std::filesystem::path(TILLER_TEST_FIXTURES) / "unicode";

CharClass class_of_letter(char letter) {
  switch (letter) {
    case 'L':
      return CharClass::letter;
    case 'N':
      return CharClass::number;
    case 'S':
      return CharClass::space;
    default:
      return CharClass::other;
  }
}

size_t code_point_count(std::string_view text) {
  size_t count = 0;
  for (size_t pos = 0; pos < text.size(); ++count) {
    char32_t ignored;
    pos += decode_utf8(text, pos, ignored);
  }
  return count;
}

}  // namespace

TEST_CASE("every code point gets the class GPT-2's regex gives it", "[tokenizer][unicode]") {
  INFO(unicode_tables_version());
  std::ifstream in(kUnicode / "classes.txt");
  REQUIRE(in);
  std::string line;
  int64_t compared = 0, newer_than_tables = 0, mismatches = 0;
  char32_t next = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    uint32_t first = 0, last = 0;
    char letter = 0;
    fields >> std::hex >> first >> last >> letter;
    REQUIRE(first <= last);
    REQUIRE((first == next || (next == 0xD800 && first == 0xE000)));  // contiguous, no surrogates
    next = last + 1;
    if (letter == 'X') {
      newer_than_tables += last - first + 1;
      continue;
    }
    for (char32_t c = first; c <= last; ++c, ++compared) {
      if (classify_code_point(c) != class_of_letter(letter)) {
        if (++mismatches <= 5) FAIL_CHECK("U+" << std::hex << uint32_t(c) << " is not " << letter);
      }
    }
  }
  REQUIRE(next == 0x110000);
  REQUIRE(mismatches == 0);
  REQUIRE(compared + newer_than_tables == 0x110000 - 0x800);
  REQUIRE(newer_than_tables < 30000);  // Unicode 15-17 additions; the rest is compared
}

TEST_CASE("random Unicode splits into GPT-2's pieces", "[tokenizer][unicode]") {
  std::ifstream in(kUnicode / "splits.jsonl");
  REQUIRE(in);
  std::string line;
  int lines = 0, outside_bmp = 0;
  Tokenizer bytes_only;  // no merges: ids are the UTF-8 bytes, a round trip of the split
  while (std::getline(in, line)) {
    auto record = nlohmann::json::parse(line);
    std::string text = record["text"];
    INFO("line " << lines + 1 << ": " << text);
    std::vector<size_t> pieces;
    for (std::string_view piece : pretokenize(text)) pieces.push_back(code_point_count(piece));
    REQUIRE(pieces == record["pieces"].get<std::vector<size_t>>());
    REQUIRE(bytes_only.decode(bytes_only.encode(text)) == text);
    for (unsigned char byte : text) outside_bmp += byte >= 0xF0;  // 4-byte sequences
    ++lines;
  }
  REQUIRE(lines == 2000);
  REQUIRE(outside_bmp > 1000);  // letters and symbols beyond the Basic Multilingual Plane
}
