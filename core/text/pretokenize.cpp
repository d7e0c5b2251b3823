// GPT-2 pre-tokeniser, UTF-8 helpers and the bytes<->unicode map (see core/pretokenize.h).
// The character classes come from core/text/unicode_classes.cpp (PCRE2's Unicode tables).
#include "core/text/pretokenize.h"

#include <array>

namespace tiller {
namespace {

CharClass class_at(std::string_view text, size_t pos, int& length) {
  char32_t code_point;
  length = decode_utf8(text, pos, code_point);
  return code_point == kInvalidCodePoint ? CharClass::other : classify_code_point(code_point);
}

// End of the run of code points of class `wanted` starting at `pos`.
size_t run_end(std::string_view text, size_t pos, CharClass wanted) {
  while (pos < text.size()) {
    int length;
    if (class_at(text, pos, length) != wanted) break;
    pos += length;
  }
  return pos;
}

// 's|'t|'re|'ve|'m|'ll|'d at pos: the end of the match, or 0.
size_t match_contraction(std::string_view text, size_t pos) {
  if (text[pos] != '\'' || pos + 1 >= text.size()) return 0;
  char next = text[pos + 1];
  if (next == 's' || next == 't' || next == 'm' || next == 'd') return pos + 2;
  if (pos + 2 >= text.size()) return 0;
  std::string_view two = text.substr(pos + 1, 2);
  if (two == "re" || two == "ve" || two == "ll") return pos + 3;
  return 0;
}

// Byte b -> code point, as GPT-2's bytes_to_unicode builds it.
std::array<char32_t, 256> build_byte_code_points() {
  std::array<char32_t, 256> code_points{};
  char32_t next_unprintable = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    code_points[b] = printable ? static_cast<char32_t>(b) : next_unprintable++;
  }
  return code_points;
}

const std::array<char32_t, 256>& byte_code_points() {
  static const std::array<char32_t, 256> table = build_byte_code_points();
  return table;
}

}  // namespace

int decode_utf8(std::string_view text, size_t pos, char32_t& code_point) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char lead = byte(pos);
  code_point = kInvalidCodePoint;
  if (lead < 0x80) {
    code_point = lead;
    return 1;
  }
  int length;
  char32_t value;
  char32_t minimum;  // smallest value this length may encode (rejects overlong forms)
  if ((lead & 0xE0) == 0xC0) {
    length = 2, value = lead & 0x1F, minimum = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, value = lead & 0x0F, minimum = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, value = lead & 0x07, minimum = 0x10000;
  } else {
    return 1;
  }
  if (pos + length > text.size()) return 1;
  for (int i = 1; i < length; ++i) {
    unsigned char continuation = byte(pos + i);
    if ((continuation & 0xC0) != 0x80) return 1;
    value = (value << 6) | (continuation & 0x3F);
  }
  if (value < minimum || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return 1;
  code_point = value;
  return length;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

bool is_valid_utf8(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    char32_t code_point;
    pos += decode_utf8(text, pos, code_point);
    if (code_point == kInvalidCodePoint) return false;
  }
  return true;
}

std::vector<std::string_view> pretokenize(std::string_view text) {
  std::vector<std::string_view> pieces;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = match_contraction(text, pos);
    if (end == 0) {
      int length;
      CharClass first = class_at(text, pos, length);
      // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": an optional ASCII space, then a run.
      if (text[pos] == ' ' && pos + 1 < text.size()) {
        int next_length;
        CharClass next = class_at(text, pos + 1, next_length);
        if (next != CharClass::space) end = run_end(text, pos + 1, next);
      }
      if (end == 0 && first != CharClass::space) end = run_end(text, pos, first);
      if (end == 0) {
        // "\s+(?!\S)|\s+": a run that ends at a non-space gives back its last code point,
        // unless it is a single code point (then the plain "\s+" takes it).
        size_t run = pos, last_start = pos;
        while (run < text.size()) {
          int run_length;
          if (class_at(text, run, run_length) != CharClass::space) break;
          last_start = run;
          run += run_length;
        }
        end = (run == text.size() || last_start == pos) ? run : last_start;
      }
    }
    pieces.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return pieces;
}

const std::string& byte_to_unicode(uint8_t byte) {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> strings;
    for (int b = 0; b < 256; ++b) append_utf8(strings[b], byte_code_points()[b]);
    return strings;
  }();
  return table[byte];
}

bool unicode_to_bytes(std::string_view token_text, std::string& bytes) {
  // Code points 0..323 cover the whole map; -1 marks code points that are not in it.
  static const std::array<int, 324> inverse = [] {
    std::array<int, 324> table;
    table.fill(-1);
    for (int b = 0; b < 256; ++b) table[byte_code_points()[b]] = b;
    return table;
  }();
  bytes.clear();
  for (size_t pos = 0; pos < token_text.size();) {
    char32_t code_point;
    pos += decode_utf8(token_text, pos, code_point);
    if (code_point >= inverse.size() || inverse[code_point] < 0) return false;
    bytes += static_cast<char>(inverse[code_point]);
  }
  return true;
}

std::string bytes_to_unicode(std::string_view bytes) {
  std::string text;
  text.reserve(bytes.size() * 2);
  for (char c : bytes) text += byte_to_unicode(static_cast<uint8_t>(c));
  return text;
}

}  // namespace tiller
