// tiller::Error — the one exception type the library throws.
//
// Every message starts with the op, file or component that failed and names the offending values
// ("attention: q is (2,4,128,64) but k is (2,4,96,32)"). TILLER_CHECK is the guard used at op
// boundaries; it formats with fmt so messages cost nothing unless the check fails.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <string>

namespace tiller {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace tiller

// TILLER_CHECK(cond, "op: {} is wrong", value) throws tiller::Error with the formatted message.
#define TILLER_CHECK(cond, ...)                 \
  do {                                          \
    if (!(cond)) ::tiller::fail(__VA_ARGS__);   \
  } while (0)
