// Text normalisation and hashes: see normalise.h.
#include "core/data/normalise.h"

#include <algorithm>
#include <array>

#include "kernels/error.h"

namespace tiller::data {
namespace {

constexpr char32_t kReplacement = 0xFFFD;

// Decodes one code point at text[i], advancing i; invalid sequences give U+FFFD and one byte.
char32_t decode_utf8(std::string_view text, size_t& i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return ++i, lead;
  int length = 0;
  char32_t cp = 0;
  if ((lead & 0xE0) == 0xC0)
    length = 2, cp = lead & 0x1F;
  else if ((lead & 0xF0) == 0xE0)
    length = 3, cp = lead & 0x0F;
  else if ((lead & 0xF8) == 0xF0)
    length = 4, cp = lead & 0x07;
  else
    return ++i, kReplacement;
  if (i + length > text.size()) return ++i, kReplacement;
  for (int k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return ++i, kReplacement;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  static constexpr char32_t kMinimum[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinimum[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return ++i, kReplacement;
  i += length;
  return cp;
}

void encode_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

char32_t to_lower(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 0x20;
  if (c >= 0x100 && c <= 0x17F) {
    if (c == 0x130) return 'i';
    if (c == 0x178) return 0xFF;
    const bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (odd_upper) return (c % 2 == 1) ? c + 1 : c;
    if (c == 0x138 || c == 0x149 || c == 0x17F) return c;  // ĸ, ŉ, ſ have no pair
    return (c % 2 == 0) ? c + 1 : c;
  }
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 0x25;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 0x3F;
  if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 0x20;
  if (c >= 0x400 && c <= 0x40F) return c + 0x50;
  if (c >= 0x410 && c <= 0x42F) return c + 0x20;
  return c;
}

bool is_space(char32_t c) {
  return c == ' ' || (c >= 0x09 && c <= 0x0D) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

bool is_punctuation(char32_t c) {
  if (c < 0x80)
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E);
  return (c >= 0xA1 && c <= 0xBF) || c == 0xD7 || c == 0xF7 || (c >= 0x2010 && c <= 0x205E) ||
         (c >= 0x3001 && c <= 0x303F);
}

bool is_math_symbol(char32_t c) {
  return c == '+' || c == '*' || c == '/' || c == '=' || c == '<' || c == '>' || c == '^' ||
         c == '%' || c == 0xD7 || c == 0xF7;
}

bool is_zero_width(char32_t c) {
  return (c >= 0x200B && c <= 0x200D) || c == 0xFEFF;
}

// CRC-32 (zlib's polynomial 0xEDB88320) sliced by 8: table k advances a byte's contribution by
// k more bytes, so eight bytes are folded per step with eight look-ups.
using CrcTables = std::array<std::array<uint32_t, 256>, 8>;
constexpr CrcTables make_crc_tables() {
  CrcTables t{};
  for (uint32_t n = 0; n < 256; ++n) {
    uint32_t c = n;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[0][n] = c;
  }
  for (uint32_t n = 0; n < 256; ++n)
    for (int k = 1; k < 8; ++k) t[k][n] = (t[k - 1][n] >> 8) ^ t[0][t[k - 1][n] & 0xFF];
  return t;
}
constexpr CrcTables kCrc = make_crc_tables();

uint32_t load_le32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

}  // namespace

std::string normalise_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  size_t i = 0;
  while (i < text.size()) {
    char32_t c = decode_utf8(text, i);
    if (is_zero_width(c)) continue;
    if (is_math_symbol(c)) {  // a word of its own: "11 + 8" and "11 * 8" must stay different
      if (!out.empty()) out += ' ';
      encode_utf8(c, out);
      pending_space = true;
      continue;
    }
    if (is_space(c) || is_punctuation(c)) {
      pending_space = true;
      continue;
    }
    if (pending_space && !out.empty()) out += ' ';
    pending_space = false;
    encode_utf8(to_lower(c), out);
  }
  return out;
}

std::vector<WordSpan> word_spans(std::string_view normalised) {
  std::vector<WordSpan> spans;
  uint32_t begin = 0;
  const auto size = static_cast<uint32_t>(normalised.size());
  for (uint32_t i = 0; i <= size; ++i) {
    if (i == size || normalised[i] == ' ') {
      if (i > begin) spans.push_back({begin, i});
      begin = i + 1;
    }
  }
  return spans;
}

uint32_t crc32(std::string_view bytes, uint32_t crc) {
  crc = ~crc;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t size = bytes.size();
  for (; size >= 8; p += 8, size -= 8) {
    const uint32_t lo = crc ^ load_le32(p), hi = load_le32(p + 4);
    crc = kCrc[7][lo & 0xFF] ^ kCrc[6][(lo >> 8) & 0xFF] ^ kCrc[5][(lo >> 16) & 0xFF] ^
          kCrc[4][lo >> 24] ^ kCrc[3][hi & 0xFF] ^ kCrc[2][(hi >> 8) & 0xFF] ^
          kCrc[1][(hi >> 16) & 0xFF] ^ kCrc[0][hi >> 24];
  }
  for (; size > 0; ++p, --size) crc = kCrc[0][(crc ^ *p) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint64_t shingle_hash64(std::string_view bytes) {
  return static_cast<uint64_t>(crc32(bytes)) |
         (static_cast<uint64_t>(crc32(bytes, 0x5bd1e995u)) << 32);
}

uint64_t text_hash64(std::string_view normalised) {
  return shingle_hash64(normalised);
}

std::vector<uint64_t> word_shingles(std::string_view normalised, int n) {
  TILLER_CHECK(n >= 1, "word_shingles: n must be >= 1, got {}", n);
  const std::vector<WordSpan> words = word_spans(normalised);
  std::vector<uint64_t> hashes;
  if (words.empty()) return hashes;
  const size_t count = words.size() < static_cast<size_t>(n) ? 1 : words.size() - n + 1;
  const size_t width = std::min(words.size(), static_cast<size_t>(n));
  hashes.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const uint32_t begin = words[i].begin, end = words[i + width - 1].end;
    hashes.push_back(shingle_hash64(normalised.substr(begin, end - begin)));
  }
  std::sort(hashes.begin(), hashes.end());
  hashes.erase(std::unique(hashes.begin(), hashes.end()), hashes.end());
  return hashes;
}

}  // namespace tiller::data
