// The world adapters of rl/data/world_data.h that the RL examples read their prompts through.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <set>
#include <string>

#include "core/text/chat.h"
#include "core/text/special_tokens.h"
#include "core/world/world.h"
#include "kernels/error.h"
#include "rl/data/world_data.h"
#include "support/temp_dir.h"

using namespace tiller;
using tiller::testing::TempDir;

namespace {

Tokenizer chat_tokenizer() {
  Tokenizer tokenizer;  // the 256 byte tokens
  for (std::string_view token : special_tokens::kAll) tokenizer.add_special_token(token);
  return tokenizer;
}

world::World small_world() {
  world::WorldConfig config;
  config.num_entities = 40;
  config.num_sft_examples = 16;
  config.num_eval_prompts = 16;
  config.num_preference_pairs = 64;
  return world::World(config);
}

std::string chat_line(const std::string& question, const std::string& answer) {
  return R"({"messages": [{"role": "user", "content": ")" + question +
         R"("}, {"role": "assistant", "content": ")" + answer + R"("}]})";
}

}  // namespace

TEST_CASE("training prompts: each once, with the answer the scorer expects", "[world_data]") {
  const world::World w = small_world();
  const Tokenizer tokenizer = chat_tokenizer();
  rl::WorldPrompts prompts = rl::world_training_prompts(w, tokenizer, 512);
  std::set<std::vector<int32_t>> distinct(prompts.tokens.begin(), prompts.tokens.end());
  REQUIRE(distinct.size() == prompts.tokens.size());
  REQUIRE(prompts.expected.size() == prompts.tokens.size());
  for (const world::PreferencePair& pair : w.preference_pairs(world::Split::kTrain)) {
    const auto ids = render_generation_prompt(tokenizer, pair.prompt);
    REQUIRE(prompts.expected.at(ids).key == pair.question.expected.key);
  }
  // No prompt fits in one token.
  REQUIRE_THROWS_WITH(rl::world_training_prompts(w, tokenizer, 1),
                      Catch::Contains("no training prompt fits in 1 tokens"));
}

TEST_CASE("prompts whose answer the SFT data states are left out, the others kept",
          "[world_data]") {
  const world::World w = small_world();
  const Tokenizer tokenizer = chat_tokenizer();
  rl::WorldPrompts prompts = rl::world_training_prompts(w, tokenizer, 512);
  const size_t all = prompts.tokens.size();
  REQUIRE(all >= 8);
  // The SFT file answers the first three prompts' facts (two in one multi-turn chat) and states
  // a wrong value for another one: a wrong answer teaches nothing to skip.
  std::vector<world::Expected> facts;
  for (const auto& ids : prompts.tokens) facts.push_back(prompts.expected.at(ids));
  std::set<std::string> taught = {facts[0].sentence(), facts[1].sentence(), facts[2].sentence()};
  const auto untaught = std::find_if(facts.begin(), facts.end(), [&](const world::Expected& f) {
    return taught.count(f.sentence()) == 0;
  });
  REQUIRE(untaught != facts.end());
  TempDir dir;
  const auto sft = dir / "sft.jsonl";
  {
    std::ofstream out(sft);
    out << chat_line("anything", facts[0].sentence()) << "\n\n";
    out << R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ")"
        << facts[1].sentence() << R"("}, {"role": "user", "content": "b"}, )"
        << R"({"role": "assistant", "content": ")" << facts[2].sentence() << R"("}]})" << "\n";
    out << chat_line("q", untaught->prefix + "not " + untaught->value + untaught->suffix) << "\n";
  }
  // A fact can be asked by more than one prompt (two phrasings): count what should go.
  size_t expected_drops = 0;
  for (const world::Expected& fact : facts) expected_drops += taught.count(fact.sentence());

  const int64_t dropped = rl::drop_prompts_answered_in(prompts, {sft});
  REQUIRE(dropped == static_cast<int64_t>(expected_drops));
  REQUIRE(prompts.tokens.size() == all - expected_drops);
  REQUIRE(prompts.expected.size() == prompts.tokens.size());
  for (const auto& ids : prompts.tokens)
    REQUIRE(taught.count(prompts.expected.at(ids).sentence()) == 0);
  bool untaught_kept = false;
  for (const auto& ids : prompts.tokens)
    untaught_kept |= prompts.expected.at(ids).key == untaught->key;
  REQUIRE(untaught_kept);

  SECTION("a malformed SFT line names its file and line") {
    const auto bad = dir / "bad.jsonl";
    std::ofstream(bad) << chat_line("q", "a") << "\n{not json\n";
    REQUIRE_THROWS_WITH(rl::drop_prompts_answered_in(prompts, {bad}),
                        Catch::Contains("bad.jsonl:2"));
  }
  SECTION("SFT data that answers every prompt leaves nothing to train on: an error") {
    const auto everything = dir / "everything.jsonl";
    {
      std::ofstream out(everything);
      for (const world::Expected& fact : facts) out << chat_line("q", fact.sentence()) << "\n";
    }
    const size_t before = prompts.tokens.size();
    REQUIRE_THROWS_WITH(rl::drop_prompts_answered_in(prompts, {everything}),
                        Catch::Contains("nothing is left to train on"));
    REQUIRE(prompts.tokens.size() == before);  // unchanged by the failed call
  }
}
