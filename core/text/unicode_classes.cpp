// classify_code_point (core/text/pretokenize.h): GPT-2's \p{L}, \p{N} and \s from PCRE2's
// Unicode tables (Debian's libpcre2-8), not from hand-written ranges.
//
// PCRE2 has no "category of a code point" call, so the classes are read by matching one anchored
// pattern, (\p{L})|(\p{N})|(\p{White_Space}), against the code point's UTF-8 bytes: the group that
// matched is the class, no match is "other". \p{White_Space} and not PCRE2's \s: under PCRE2_UCP
// \s also takes U+180E, while Python's `regex` (what GPT-2's pattern was written for) and
// Hugging Face's tokenizers use the White_Space property.
//
// Matching costs far more than a table lookup, so non-ASCII code points are classified a page
// (256 code points) at a time, the first time any code point of the page is asked for; each page
// is filled once under its own std::once_flag, so concurrent encoders are safe and a text only
// pays for the scripts it uses. The pattern is compiled once, on first use.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>
#include <memory>
#include <mutex>
#include <string>

#include "core/text/pretokenize.h"
#include "kernels/error.h"

namespace tiller {
namespace {

constexpr char32_t kLastCodePoint = 0x10FFFF;
constexpr size_t kPageSize = 256;
constexpr size_t kPageCount = (kLastCodePoint + 1) / kPageSize;

class UnicodeClassifier {
 public:
  UnicodeClassifier() {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    const char* pattern = "(\\p{L})|(\\p{N})|(\\p{White_Space})";
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &error, &error_offset, nullptr);
    TILLER_CHECK(code_ != nullptr,
                 "pretokenize: PCRE2 could not compile the class pattern (error {})", error);
  }
  ~UnicodeClassifier() { pcre2_code_free(code_); }
  UnicodeClassifier(const UnicodeClassifier&) = delete;
  UnicodeClassifier& operator=(const UnicodeClassifier&) = delete;

  CharClass classify(char32_t code_point) {
    if (code_point > kLastCodePoint) return CharClass::other;
    size_t page = code_point / kPageSize;
    std::call_once(page_ready_[page], [&] { fill_page(page); });
    return (*pages_[page])[code_point % kPageSize];
  }

 private:
  using Page = std::array<CharClass, kPageSize>;

  void fill_page(size_t page) {
    auto classes = std::make_unique<Page>();
    pcre2_match_data* match = pcre2_match_data_create_from_pattern(code_, nullptr);
    TILLER_CHECK(match != nullptr, "pretokenize: PCRE2 could not allocate match data");
    std::string bytes;
    for (size_t i = 0; i < kPageSize; ++i) {
      char32_t c = static_cast<char32_t>(page * kPageSize + i);
      if (c >= 0xD800 && c <= 0xDFFF) {  // surrogates never decode from valid UTF-8
        (*classes)[i] = CharClass::other;
        continue;
      }
      bytes.clear();
      append_utf8(bytes, c);
      int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(bytes.data()), bytes.size(), 0, 0,
                           match, nullptr);
      // rc is 1 + the highest group that matched: 2 letter, 3 number, 4 space.
      (*classes)[i] = rc == 2   ? CharClass::letter
                      : rc == 3 ? CharClass::number
                      : rc == 4 ? CharClass::space
                                : CharClass::other;
    }
    pcre2_match_data_free(match);
    pages_[page] = std::move(classes);
  }

  pcre2_code* code_ = nullptr;
  std::array<std::once_flag, kPageCount> page_ready_;
  std::array<std::unique_ptr<Page>, kPageCount> pages_;
};

CharClass classify_ascii(char32_t c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CharClass::letter;
  if (c >= '0' && c <= '9') return CharClass::number;
  if (c == ' ' || (c >= '\t' && c <= '\r')) return CharClass::space;
  return CharClass::other;
}

}  // namespace

CharClass classify_code_point(char32_t code_point) {
  if (code_point < 0x80) return classify_ascii(code_point);
  static UnicodeClassifier classifier;
  return classifier.classify(code_point);
}

std::string unicode_tables_version() {
  std::array<char, 64> version{};
  pcre2_config(PCRE2_CONFIG_UNICODE_VERSION, version.data());
  return "PCRE2 " + std::to_string(PCRE2_MAJOR) + "." + std::to_string(PCRE2_MINOR) + ", Unicode " +
         version.data();
}

}  // namespace tiller
