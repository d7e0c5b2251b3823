// Shared pieces of the libFuzzer harnesses (tests/fuzz/fuzz_<name>.cpp).
//
// Each harness is a function `void <name>_target(std::string_view input)` that feeds the input to
// one parser entry point and checks the library's contract: the call returns a result or throws
// tiller::Error. Anything else is a finding: another exception type is turned into a Finding
// (uncaught under libFuzzer, so the process aborts and the input is saved; a failed REQUIRE in the
// Catch2 replay of tests/fuzz/regressions), and crashes, sanitizer reports, hangs and memory
// blow-ups are caught by libFuzzer itself (-timeout, -rss_limit_mb).
//
// The same sources build two ways: with TILLER_LIBFUZZER (tests/fuzz/CMakeLists.txt, one executable
// per harness with LLVMFuzzerTestOneInput) and without it inside tiller_tests, which replays the
// committed regression inputs and seed corpora (tests/test_fuzz_regressions.cpp).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include "core/text/tokenizer.h"
#include "kernels/error.h"

namespace tiller::fuzz {

// A broken contract; deliberately not a tiller::Error.
struct Finding : std::logic_error {
  using std::logic_error::logic_error;
};

[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "tiller fuzz FINDING: %s\n", what.c_str());
  throw Finding(what);
}

// Runs `body`; a tiller::Error is the contract's refusal and is swallowed, any other exception is a
// Finding naming its type and message.
template <typename Body>
void expect_result_or_error(Body&& body) {
  try {
    body();
  } catch (const Finding&) {
    throw;
  } catch (const Error&) {
  } catch (const std::exception& error) {
    finding(std::string("exception of type ") + typeid(error).name() +
            " (not tiller::Error): " + error.what());
  } catch (...) {
    finding("an exception that is not a std::exception");
  }
}

// A per-process scratch directory for parsers that take a path; removed at exit.
const std::filesystem::path& scratch_dir();
// Writes `bytes` to scratch_dir() / name and returns the path.
std::filesystem::path write_scratch(const std::string& name, std::string_view bytes);

// The input cut at each NUL byte (a separator no JSON or text file here contains), giving at least
// `parts` pieces (missing ones empty).
std::vector<std::string_view> split_parts(std::string_view input, size_t parts);

// A small byte-level BPE tokenizer (some merges and every special token of core/special_tokens.h),
// built once per process.
const Tokenizer& small_tokenizer();

// Harness entry points, one per parser (see each fuzz_<name>.cpp).
void safetensors_target(std::string_view input);
void model_config_target(std::string_view input);
void tokenizer_json_target(std::string_view input);
void vocab_merges_target(std::string_view input);
void shard_target(std::string_view input);
void chat_record_target(std::string_view input);
void sft_jsonl_target(std::string_view input);
void preference_record_target(std::string_view input);
void chat_template_target(std::string_view input);
void pretrain_config_target(std::string_view input);
void trainer_state_target(std::string_view input);
void curate_rows_target(std::string_view input);

}  // namespace tiller::fuzz

// Defines LLVMFuzzerTestOneInput for one harness in the libFuzzer build only.
#ifdef TILLER_LIBFUZZER
#define TILLER_FUZZ_MAIN(target)                                            \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { \
    target(std::string_view(reinterpret_cast<const char*>(data), size));    \
    return 0;                                                               \
  }
#else
#define TILLER_FUZZ_MAIN(target)
#endif
