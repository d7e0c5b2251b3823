// GPT-2 pre-tokeniser, UTF-8 helpers and the bytes<->unicode map (see core/pretokenize.h).
//
// The non-ASCII class table lists ranges that are whitespace, numbers or "other" (punctuation,
// symbols, marks, format and private-use characters); everything not listed is a letter. The
// table must stay sorted by `first` and free of overlaps: lookups binary-search it.
#include "core/text/pretokenize.h"

#include <algorithm>
#include <array>

namespace tiller {
namespace {

struct ClassRange {
  char32_t first;
  char32_t last;
  CharClass char_class;
};

constexpr CharClass S = CharClass::space;
constexpr CharClass N = CharClass::number;
constexpr CharClass O = CharClass::other;

// Non-ASCII ranges that are not letters, approximating Unicode's White_Space, \p{N} and
// P/S/M/C categories for the blocks that occur in ordinary text.
constexpr ClassRange kNonLetterRanges[] = {
    {0x80, 0x84, O},       {0x85, 0x85, S},        {0x86, 0x9F, O},       {0xA0, 0xA0, S},
    {0xA1, 0xA9, O},       {0xAB, 0xB1, O},        {0xB2, 0xB3, N},       {0xB4, 0xB4, O},
    {0xB6, 0xB8, O},       {0xB9, 0xB9, N},        {0xBB, 0xBB, O},       {0xBC, 0xBE, N},
    {0xBF, 0xBF, O},       {0xD7, 0xD7, O},        {0xF7, 0xF7, O},       {0x2C2, 0x2C5, O},
    {0x2D2, 0x2DF, O},     {0x2E5, 0x2EB, O},      {0x2ED, 0x2ED, O},     {0x2EF, 0x36F, O},
    {0x375, 0x375, O},     {0x37E, 0x37E, O},      {0x384, 0x385, O},     {0x387, 0x387, O},
    {0x3F6, 0x3F6, O},     {0x482, 0x489, O},      {0x55A, 0x55F, O},     {0x589, 0x58A, O},
    {0x58D, 0x58F, O},     {0x591, 0x5C7, O},      {0x5F3, 0x5F4, O},     {0x600, 0x61F, O},
    {0x64B, 0x65F, O},     {0x660, 0x669, N},      {0x66A, 0x66D, O},     {0x670, 0x670, O},
    {0x6D4, 0x6D4, O},     {0x6D6, 0x6ED, O},      {0x6F0, 0x6F9, N},     {0x7C0, 0x7C9, N},
    {0x900, 0x903, O},     {0x93A, 0x93C, O},      {0x93E, 0x94F, O},     {0x951, 0x957, O},
    {0x962, 0x965, O},     {0x966, 0x96F, N},      {0x970, 0x970, O},     {0x9E6, 0x9EF, N},
    {0xA66, 0xA6F, N},     {0xAE6, 0xAEF, N},      {0xB66, 0xB6F, N},     {0xBE6, 0xBF2, N},
    {0xC66, 0xC6F, N},     {0xCE6, 0xCEF, N},      {0xD66, 0xD78, N},     {0xE31, 0xE31, O},
    {0xE34, 0xE3A, O},     {0xE3F, 0xE3F, O},      {0xE47, 0xE4F, O},     {0xE50, 0xE59, N},
    {0xE5A, 0xE5B, O},     {0xED0, 0xED9, N},      {0xF20, 0xF33, N},     {0x1040, 0x1049, N},
    {0x1369, 0x137C, N},   {0x1680, 0x1680, S},    {0x16EE, 0x16F0, N},   {0x17E0, 0x17E9, N},
    {0x1810, 0x1819, N},   {0x1AB0, 0x1AFF, O},    {0x1DC0, 0x1DFF, O},   {0x2000, 0x200A, S},
    {0x200B, 0x2027, O},   {0x2028, 0x2029, S},    {0x202A, 0x202E, O},   {0x202F, 0x202F, S},
    {0x2030, 0x205E, O},   {0x205F, 0x205F, S},    {0x2060, 0x206F, O},   {0x2070, 0x2070, N},
    {0x2074, 0x2079, N},   {0x207A, 0x207E, O},    {0x2080, 0x2089, N},   {0x208A, 0x208E, O},
    {0x20A0, 0x20FF, O},   {0x2100, 0x2101, O},    {0x2103, 0x2106, O},   {0x2108, 0x2109, O},
    {0x2114, 0x2114, O},   {0x2116, 0x2118, O},    {0x211E, 0x2123, O},   {0x2125, 0x2125, O},
    {0x2127, 0x2127, O},   {0x2129, 0x2129, O},    {0x212E, 0x212E, O},   {0x213A, 0x213B, O},
    {0x2140, 0x2144, O},   {0x214A, 0x214D, O},    {0x214F, 0x214F, O},   {0x2150, 0x2182, N},
    {0x2185, 0x2189, N},   {0x218A, 0x245F, O},    {0x2460, 0x249B, N},   {0x249C, 0x24E9, O},
    {0x24EA, 0x24FF, N},   {0x2500, 0x2775, O},    {0x2776, 0x2793, N},   {0x2794, 0x2BFF, O},
    {0x2E00, 0x2E7F, O},   {0x2E80, 0x2FFF, O},    {0x3000, 0x3000, S},   {0x3001, 0x3004, O},
    {0x3007, 0x3007, N},   {0x3008, 0x3020, O},    {0x3021, 0x3029, N},   {0x302A, 0x3030, O},
    {0x3036, 0x3037, O},   {0x3038, 0x303A, N},    {0x303D, 0x303F, O},   {0x3099, 0x309C, O},
    {0x30A0, 0x30A0, O},   {0x30FB, 0x30FB, O},    {0x3190, 0x3191, O},   {0x3192, 0x3195, N},
    {0x3196, 0x319F, O},   {0x3200, 0x321F, O},    {0x3220, 0x3229, N},   {0x322A, 0x3247, O},
    {0x3248, 0x324F, N},   {0x3250, 0x3250, O},    {0x3251, 0x325F, N},   {0x3260, 0x327F, O},
    {0x3280, 0x3289, N},   {0x328A, 0x32B0, O},    {0x32B1, 0x32BF, N},   {0x32C0, 0x33FF, O},
    {0x4DC0, 0x4DFF, O},   {0xE000, 0xF8FF, O},    {0xFD3E, 0xFD3F, O},   {0xFE00, 0xFE19, O},
    {0xFE20, 0xFE6B, O},   {0xFEFF, 0xFEFF, O},    {0xFF01, 0xFF0F, O},   {0xFF10, 0xFF19, N},
    {0xFF1A, 0xFF20, O},   {0xFF3B, 0xFF40, O},    {0xFF5B, 0xFF65, O},   {0xFFE0, 0xFFFF, O},
    {0x1D100, 0x1D1FF, O}, {0x1D7CE, 0x1D7FF, N},  {0x1F000, 0x1FAFF, O}, {0xE0000, 0xE007F, O},
    {0xE0100, 0xE01EF, O}, {0xF0000, 0x10FFFF, O},
};

CharClass classify_ascii(char32_t c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CharClass::letter;
  if (c >= '0' && c <= '9') return CharClass::number;
  if (c == ' ' || (c >= '\t' && c <= '\r')) return CharClass::space;
  return CharClass::other;
}

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

CharClass classify_code_point(char32_t code_point) {
  if (code_point < 0x80) return classify_ascii(code_point);
  const auto* end = std::end(kNonLetterRanges);
  const auto* it = std::upper_bound(std::begin(kNonLetterRanges), end, code_point,
                                    [](char32_t c, const ClassRange& r) { return c < r.first; });
  if (it == std::begin(kNonLetterRanges)) return CharClass::letter;
  --it;
  return code_point <= it->last ? it->char_class : CharClass::letter;
}

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
