// Text normalisation for duplicate detection and decontamination, and the hashes built on it.
//
// normalise_text, exactly:
//   1. UTF-8 decode; an invalid byte becomes U+FFFD (kept as a character, never dropped).
//   2. Lower-case: ASCII A-Z; Latin-1 U+00C0-U+00DE (not U+00D7 ×); Latin Extended-A
//      U+0100-U+017F (its upper/lower pairs, Ÿ U+0178 -> ÿ, İ U+0130 -> i); Greek U+0386-U+03AB
//      (Ά..Ϋ, Α..Ω) to their small letters; Cyrillic U+0400-U+042F to U+0430-U+045F. Other
//      scripts are left as they are (no ICU dependency; no NFKC, no accent stripping: "é" != "e").
//   3. Math symbols + * / = < > ^ % × ÷ become one-character words ("11+8" -> "11 + 8"), so
//      arithmetic questions that differ only in the operator stay different. Other punctuation
//      -> a space: the rest of ASCII punctuation (!"#$&'(),-.:;?@[\]_`{|}~), Latin-1
//      U+00A1-U+00BF, General Punctuation U+2010-U+205E (dashes, quotes, bullets, …), CJK
//      punctuation U+3001-U+303F.
//   4. Whitespace (ASCII, U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028/9, U+202F, U+205F,
//      U+3000) runs become one space; zero-width U+200B-U+200D and U+FEFF are removed; the result
//      is trimmed. So "Don't  stop!" -> "don t stop".
// The result is UTF-8 whose words are separated by single spaces, so a word n-gram is a substring.
//
// Hashes: crc32 is zlib's (so Python's zlib.crc32 gives the same values, bench/py_curate.py);
// shingle_hash64 = crc32(s) | crc32(s, 0x5bd1e995) << 32, whose low half is the 32-bit value the
// MinHash permutations read (datasketch's hashfunc contract).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tiller::data {

std::string normalise_text(std::string_view text);

// Byte offsets [begin, end) of each word of a normalised text.
struct WordSpan {
  uint32_t begin = 0, end = 0;
};
std::vector<WordSpan> word_spans(std::string_view normalised);

uint32_t crc32(std::string_view bytes, uint32_t crc = 0);  // zlib.crc32(bytes, crc)
uint64_t shingle_hash64(std::string_view bytes);
uint64_t text_hash64(std::string_view normalised);  // the exact-dedup key

// Sorted, unique hashes of every word n-gram of a normalised text; a text with fewer than n (but
// at least one) words gives one shingle of all its words; an empty text gives none.
std::vector<uint64_t> word_shingles(std::string_view normalised, int n);

}  // namespace tiller::data
