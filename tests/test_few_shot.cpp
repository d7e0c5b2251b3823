// Few-shot prompts (rl/reports/few_shot.h): exact token-by-token rendering of both formats, shots
// from training facts only and never the question's own fact, the order and mix rules, truncation
// from the front that keeps the question, and the evaluation hook.
#include <catch2/catch.hpp>

#include <set>

#include "core/text/special_tokens.h"
#include "rl/data/pretrain_data.h"
#include "rl/reports/few_shot.h"

using namespace tiller;
using namespace tiller::rl;

namespace {

WorldConfig tiny_world() {
  WorldConfig world;
  world.num_entities = 24;
  world.num_towns = 4;
  world.mentions_per_fact = 2;
  world.num_sft_examples = 96;
  world.num_eval_prompts = 32;
  world.num_preference_pairs = 16;
  return world;
}

const Tokenizer& world_tokenizer() {
  static const Tokenizer tokenizer = [] {
    const World world(tiny_world());
    std::string corpus = world.pretraining_corpus();
    return train_corpus_tokenizer(split_documents(corpus), 400);
  }();
  return tokenizer;
}

void append(std::vector<TokenId>& out, const std::vector<TokenId>& more) {
  out.insert(out.end(), more.begin(), more.end());
}

const std::vector<FewShotExample> kShots = {
    {"colour", "colour/Zorvik", "What colour is Zorvik?", "Zorvik is blue."},
    {"age", "age/Pim", "How old is Pim?", "Pim is 34 years old."}};

}  // namespace

TEST_CASE("chat few-shot prompts render token by token as the chat template", "[few_shot][chat]") {
  const Tokenizer& tok = world_tokenizer();
  auto special = [&](std::string_view s) { return std::vector<TokenId>{tok.token_id(s)}; };
  std::vector<TokenId> expected;
  auto turn = [&](std::string_view role, const std::string& content) {
    append(expected, special(role));
    append(expected, tok.encode("\n"));
    append(expected, tok.encode(content));
    append(expected, special(special_tokens::kEndOfTurn));
    append(expected, tok.encode("\n"));
  };
  for (const auto& shot : kShots) {
    turn(special_tokens::kUser, shot.question);
    turn(special_tokens::kAssistant, shot.answer);
  }
  turn(special_tokens::kUser, "Where does Zorvik live?");
  append(expected, special(special_tokens::kAssistant));
  append(expected, tok.encode("\n"));

  auto prompt =
      render_few_shot_prompt(tok, kShots, "Where does Zorvik live?", ShotFormat::chat, 1000);
  REQUIRE(prompt.tokens == expected);
  REQUIRE(prompt.shots_used == 2);
  REQUIRE(prompt.shots_dropped == 0);
  REQUIRE(few_shot_stop_tokens(tok, ShotFormat::chat) == special(special_tokens::kEndOfTurn));
}

TEST_CASE("plain few-shot prompts render as quiz lines after <|endoftext|>", "[few_shot][plain]") {
  const Tokenizer& tok = world_tokenizer();
  const std::string text =
      "Q: What colour is Zorvik?\nA: Zorvik is blue.\nQ: How old is Pim?\nA: Pim is 34 years "
      "old.\nQ: Where does Zorvik live?\nA:";
  REQUIRE(few_shot_plain_text(kShots, "Where does Zorvik live?") == text);
  std::vector<TokenId> expected = {tok.token_id(special_tokens::kEndOfText)};
  append(expected, tok.encode(text));
  auto prompt =
      render_few_shot_prompt(tok, kShots, "Where does Zorvik live?", ShotFormat::plain, 1000);
  REQUIRE(prompt.tokens == expected);
  REQUIRE(tok.decode(prompt.tokens) == std::string(special_tokens::kEndOfText) + text);

  // Every stop token holds a newline or is <|endoftext|>, and "\n" itself is one of them.
  auto stops = few_shot_stop_tokens(tok, ShotFormat::plain);
  REQUIRE(std::find(stops.begin(), stops.end(), tok.encode("\n").at(0)) != stops.end());
  for (TokenId id : stops) {
    const std::string& bytes = tok.token_bytes(id);
    REQUIRE((bytes.find('\n') != std::string::npos || bytes == special_tokens::kEndOfText));
  }
  REQUIRE(few_shot_response_for_scoring(" Zorvik lives in Pelmora.\nQ: next", ShotFormat::plain) ==
          "Zorvik lives in Pelmora." + std::string(special_tokens::kEndOfTurn));
  REQUIRE(few_shot_response_for_scoring(" Zorvik lives in", ShotFormat::plain) ==
          "Zorvik lives in");  // no newline: the line never ended
  REQUIRE(few_shot_response_for_scoring("as is<|end|>", ShotFormat::chat) == "as is<|end|>");
}

TEST_CASE("shots come from training facts only and never the question's own fact",
          "[few_shot][world]") {
  const World world(tiny_world());
  auto pool = world_shot_pool(world);
  REQUIRE(pool.size() > 16);
  std::set<std::string> eval_keys;
  for (const auto& item : world.eval_prompts()) eval_keys.insert(item.question.expected.key);
  for (const auto& shot : pool) REQUIRE(eval_keys.count(shot.key) == 0);

  // A pool that does hold an eval key (as a user's pool may): it is still never its own shot.
  auto leaky = pool;
  const auto& first = world.eval_prompts().front().question;
  leaky.push_back({std::string(world::task_name(first.expected.task)), first.expected.key,
                   first.text, first.expected.sentence()});
  for (ShotMix mix : {ShotMix::same_task, ShotMix::mixed_tasks}) {
    for (ShotOrder order :
         {ShotOrder::random, ShotOrder::same_task_first, ShotOrder::same_task_last}) {
      FewShotOptions options{.shots = 8, .order = order, .mix = mix, .seed = 3};
      for (size_t i = 0; i < world.eval_prompts().size(); ++i) {
        const auto& expected = world.eval_prompts()[i].question.expected;
        auto shots = select_shots(leaky, world::task_name(expected.task), expected.key, options, i);
        for (const auto& shot : shots) REQUIRE(shot.key != expected.key);
      }
    }
  }
}

TEST_CASE("mix and order place the question's task as asked, seeded", "[few_shot][world]") {
  const World world(tiny_world());
  auto pool = world_shot_pool(world);
  const auto& expected = world.eval_prompts().front().question.expected;
  const std::string task(world::task_name(expected.task));
  auto pick = [&](ShotOrder order, ShotMix mix, uint64_t seed) {
    return select_shots(pool, task, expected.key,
                        {.shots = 4, .order = order, .mix = mix, .seed = seed}, 0);
  };
  auto tasks = [&](const std::vector<FewShotExample>& shots) {
    std::vector<bool> same;
    for (const auto& shot : shots) same.push_back(shot.task == task);
    return same;
  };
  REQUIRE(tasks(pick(ShotOrder::random, ShotMix::same_task, 1)) ==
          std::vector<bool>{true, true, true, true});
  REQUIRE(tasks(pick(ShotOrder::same_task_first, ShotMix::mixed_tasks, 1)) ==
          std::vector<bool>{true, true, false, false});
  REQUIRE(tasks(pick(ShotOrder::same_task_last, ShotMix::mixed_tasks, 1)) ==
          std::vector<bool>{false, false, true, true});
  auto keys = [](const std::vector<FewShotExample>& shots) {
    std::vector<std::string> out;
    for (const auto& shot : shots) out.push_back(shot.key);
    return out;
  };
  REQUIRE(keys(pick(ShotOrder::random, ShotMix::mixed_tasks, 7)) ==
          keys(pick(ShotOrder::random, ShotMix::mixed_tasks, 7)));
  REQUIRE(keys(pick(ShotOrder::random, ShotMix::mixed_tasks, 7)) !=
          keys(pick(ShotOrder::random, ShotMix::mixed_tasks, 8)));
  REQUIRE_THROWS_WITH(parse_shot_order("first"), Catch::Contains("same-task-first"));
}

TEST_CASE("a prompt too long for the context drops shots from the front, never the question",
          "[few_shot][truncation]") {
  const Tokenizer& tok = world_tokenizer();
  const std::string question = "Where does Zorvik live?";
  for (ShotFormat format : {ShotFormat::chat, ShotFormat::plain}) {
    auto full = render_few_shot_prompt(tok, kShots, question, format, 1000);
    auto last_only = render_few_shot_prompt(tok, {kShots[1]}, question, format, 1000);
    auto alone = render_few_shot_prompt(tok, {}, question, format, 1000);
    REQUIRE(alone.tokens.size() < last_only.tokens.size());
    REQUIRE(last_only.tokens.size() < full.tokens.size());

    auto cut = render_few_shot_prompt(tok, kShots, question, format,
                                      static_cast<int64_t>(full.tokens.size()) - 1);
    REQUIRE(cut.tokens == last_only.tokens);  // the first shot went, the second stayed
    REQUIRE(cut.shots_used == 1);
    REQUIRE(cut.shots_dropped == 1);
    auto bare = render_few_shot_prompt(tok, kShots, question, format,
                                       static_cast<int64_t>(alone.tokens.size()));
    REQUIRE(bare.tokens == alone.tokens);  // the question itself is never cut
    REQUIRE(bare.shots_dropped == 2);
    REQUIRE_THROWS_WITH(render_few_shot_prompt(tok, kShots, question, format,
                                               static_cast<int64_t>(alone.tokens.size()) - 1),
                        Catch::Contains("the question alone"));
  }
}

TEST_CASE("few-shot evaluation renders through the hook and counts truncations",
          "[few_shot][evaluate]") {
  const World world(tiny_world());
  const Tokenizer& tok = world_tokenizer();
  Transformer model(ModelConfig::gpt2(tok.vocab_size(), 1, 2, 16, 96), 1);
  auto stats = std::make_shared<FewShotStats>();
  EvaluationConfig base;
  base.max_new_tokens = 8;
  base.batch_size = 4;
  base.limit = 8;
  auto config =
      few_shot_evaluation(base, tok, world_shot_pool(world),
                          {.shots = 8, .format = ShotFormat::plain, .seed = 1}, 96, stats);
  auto report = evaluate_world(model, tok, world.eval_prompts(), config);
  REQUIRE(report.prompts == 8);
  REQUIRE(stats->prompts == 8);
  REQUIRE(stats->prompts_truncated == 8);  // 8 plain shots never fit in 88 tokens
  REQUIRE(stats->shots_used + stats->shots_dropped == 64);
  REQUIRE(stats->shots_used > 0);
}
