// GPT-2 byte-level text primitives: the bytes<->unicode map and the pre-tokeniser.
//
// The pre-tokeniser is a hand-written matcher for GPT-2's regex (no std::regex: it has no Unicode
// classes and is slow):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// It walks UTF-8 code points and tries the alternatives in order at each position, exactly as a
// leftmost-first regex engine does, including the backtracking of `\s+(?!\S)` (a whitespace run
// followed by a non-space gives its last code point to the next piece: "a  b" -> "a", " ", " b").
//
// Character classes: \p{L}, \p{N} and \s (Unicode's White_Space, as Python's `regex` and
// Hugging Face's tokenizers read it) come from PCRE2's Unicode tables (libpcre2-8, Unicode 14.0 in
// Debian 12), so every code point gets the class GPT-2's regex gives it under that Unicode
// version; unassigned code points are "other", as in the regex. Checked against GPT-2's pattern run
// by Python's `regex` module on every code point and on random Unicode text
// (tests/test_pretokenize_unicode.cpp, fixtures from tests/reference/make_unicode_fixtures.py).
// A byte that is not part of valid UTF-8 is one code point of class "other", so any byte string
// splits into pieces whose concatenation is the input (the round-trip invariant).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tiller {

enum class CharClass : uint8_t { letter, number, space, other };

// Class of a Unicode code point (see above); code points past U+10FFFF and surrogates are "other".
CharClass classify_code_point(char32_t code_point);
// Where the classes come from, e.g. "PCRE2 10.42, Unicode 14.0.0".
std::string unicode_tables_version();

// Decodes one UTF-8 code point at text[pos]. Returns its byte length (1-4) and writes the code
// point; an invalid or truncated sequence has length 1 and code point kInvalidCodePoint.
inline constexpr char32_t kInvalidCodePoint = 0xFFFFFFFF;
int decode_utf8(std::string_view text, size_t pos, char32_t& code_point);

// Appends the UTF-8 encoding of a valid code point.
void append_utf8(std::string& out, char32_t code_point);

// True when every byte of `text` belongs to a valid UTF-8 sequence.
bool is_valid_utf8(std::string_view text);

// Splits text into GPT-2 pre-tokens; the views point into `text` and concatenate back to it.
std::vector<std::string_view> pretokenize(std::string_view text);

// GPT-2's bytes_to_unicode: each byte maps to one printable code point (printable Latin-1 bytes
// map to themselves, the others to 256 + n in byte order), so vocab.json keys are printable text.
const std::string& byte_to_unicode(uint8_t byte);  // the code point as UTF-8
// Byte-level token text -> raw bytes; returns false when a code point is not in the map.
bool unicode_to_bytes(std::string_view token_text, std::string& bytes);
// Raw bytes -> byte-level token text.
std::string bytes_to_unicode(std::string_view bytes);

}  // namespace tiller
