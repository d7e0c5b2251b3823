// Replays the fuzz harnesses of tests/fuzz in the normal suite: every input that once broke the
// library's contract (tests/fuzz/regressions/<harness>/, each committed before its fix) and every
// seed of the corpora (tests/fuzz/corpus/<harness>/). Each input must give a result or a
// tiller::Error; under the debug-asan preset the sanitizers check the same runs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>

#include "core/io/atomic_file.h"
#include "fuzz/fuzz_support.h"

using namespace tiller;

namespace {

const std::map<std::string, std::function<void(std::string_view)>>& harnesses() {
  static const std::map<std::string, std::function<void(std::string_view)>> table = {
      {"safetensors", fuzz::safetensors_target},
      {"model_config", fuzz::model_config_target},
      {"tokenizer_json", fuzz::tokenizer_json_target},
      {"vocab_merges", fuzz::vocab_merges_target},
      {"shard", fuzz::shard_target},
      {"chat_record", fuzz::chat_record_target},
      {"sft_jsonl", fuzz::sft_jsonl_target},
      {"preference_record", fuzz::preference_record_target},
      {"chat_template", fuzz::chat_template_target},
      {"pretrain_config", fuzz::pretrain_config_target},
      {"trainer_state", fuzz::trainer_state_target},
      {"curate_rows", fuzz::curate_rows_target},
  };
  return table;
}

// The files under tests/fuzz/<kind>/<harness>/, sorted, as (harness, path).
std::vector<std::pair<std::string, std::filesystem::path>> inputs(const std::string& kind) {
  std::vector<std::pair<std::string, std::filesystem::path>> out;
  const std::filesystem::path root = std::filesystem::path(TILLER_SOURCE_DIR) / "tests/fuzz" / kind;
  if (!std::filesystem::exists(root)) return out;
  for (const auto& folder : std::filesystem::directory_iterator(root)) {
    if (!folder.is_directory()) continue;
    for (const auto& file : std::filesystem::directory_iterator(folder.path()))
      if (file.is_regular_file()) out.emplace_back(folder.path().filename().string(), file.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void replay(const std::string& kind) {
  auto all = inputs(kind);
  for (const auto& [harness, path] : all) {
    INFO(kind << " input " << path.string());
    auto target = harnesses().find(harness);
    REQUIRE(target != harnesses().end());  // a folder per harness, named after it
    std::string bytes = read_file_bytes(path);
    REQUIRE_NOTHROW(target->second(bytes));
  }
}

}  // namespace

TEST_CASE("every committed fuzz finding now gives a result or a tiller::Error", "[fuzz]") {
  REQUIRE_FALSE(inputs("regressions").empty());
  replay("regressions");
}

TEST_CASE("every fuzz seed gives a result or a tiller::Error, and each harness has seeds",
          "[fuzz]") {
  auto all = inputs("corpus");
  for (const auto& [name, target] : harnesses()) {
    INFO("harness " << name);
    CHECK(std::any_of(all.begin(), all.end(),
                      [&](const auto& input) { return input.first == name; }));
  }
  replay("corpus");
}
