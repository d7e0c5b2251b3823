// World evaluation: the report agrees with the scorer example by example, the optional scoring
// callback and the JSONL records; and a short SFT run measurably beats the untrained model.
#include <catch2/catch.hpp>

#include <fstream>

#include "core/text/special_tokens.h"
#include "rl/reports/evaluate.h"
#include "rl/generation/generate.h"
#include "rl/trainers/sft.h"
#include "support/temp_dir.h"

using namespace tiller;
using namespace tiller::rl;
using tiller::testing::TempDir;

namespace {

WorldConfig small_world() {
  WorldConfig config;
  config.seed = 5;
  config.num_entities = 24;
  config.num_towns = 4;
  config.mentions_per_fact = 1;
  config.num_sft_examples = 400;
  config.num_eval_prompts = 48;
  config.num_preference_pairs = 16;
  return config;
}

// BPE trained on the world's corpus and chats, with the chat special tokens.
Tokenizer world_tokenizer(const World& world, int64_t vocab_size) {
  BpeTrainer trainer;
  trainer.add_text(world.pretraining_corpus());
  for (const auto& example : world.sft_examples())
    for (const auto& message : example.messages) trainer.add_text(message.content);
  BpeTrainOptions options;
  options.vocab_size = vocab_size;
  options.special_tokens.assign(special_tokens::kAll.begin(), special_tokens::kAll.end());
  return trainer.train(options);
}

Transformer small_model(int64_t vocab_size) {
  return Transformer(ModelConfig::gpt2(vocab_size, /*n_layer=*/2, /*n_head=*/4, /*n_embd=*/64,
                                       /*max_seq_len=*/128),
                     3);
}

}  // namespace

TEST_CASE(
    "evaluation reports the scorer's verdict on each greedy completion, the callback's "
    "mean and one JSONL record per prompt",
    "[evaluate]") {
  World world(small_world());
  Tokenizer tokenizer = world_tokenizer(world, 400);
  Transformer model = small_model(tokenizer.vocab_size());
  TempDir dir;
  EvaluationConfig config;
  config.max_new_tokens = 12;
  config.batch_size = 5;  // 12 prompts: batches of 5, 5 and 2
  config.limit = 12;
  config.jsonl_path = (dir / "eval.jsonl").string();
  int calls = 0;
  config.scorer = [&](const std::vector<ChatMessage>& prompt, const std::string& response) {
    ++calls;
    REQUIRE(prompt.size() == 1);
    return static_cast<double>(response.size());
  };
  EvaluationReport report = evaluate_world(model, tokenizer, world.eval_prompts(), config);

  REQUIRE(report.prompts == 12);
  REQUIRE(report.examples.size() == 12);
  REQUIRE(calls == 12);
  double bytes = 0, tokens = 0, exact = 0, ends = 0;
  const TokenId end_of_turn = tokenizer.token_id(special_tokens::kEndOfTurn);
  for (size_t i = 0; i < report.examples.size(); ++i) {
    const EvaluatedExample& example = report.examples[i];
    const world::EvalItem& item = world.eval_prompts()[i];
    REQUIRE(example.eval_id == item.id);
    REQUIRE(example.expected == item.question.expected.sentence());
    // The response is the greedy completion of the chat prompt, generated alone.
    GenerationResult alone = generate(
        model, {render_generation_prompt(tokenizer, item.prompt)},
        GenerationConfig{
            .max_new_tokens = 12, .sampling = {.temperature = 0.f}, .stop_tokens = {end_of_turn}});
    REQUIRE(example.response == tokenizer.decode(alone.tokens[0]));
    REQUIRE(example.response_tokens == static_cast<int64_t>(alone.tokens[0].size()));
    REQUIRE(example.score.exact_match == world.score(item.id, example.response).exact_match);
    REQUIRE(example.score.format_ok == world.score(item.id, example.response).format_ok);
    REQUIRE(*example.extra_score == static_cast<double>(example.response.size()));
    bytes += static_cast<double>(example.response.size());
    tokens += static_cast<double>(example.response_tokens);
    exact += example.score.exact_match ? 1 : 0;
    ends += example.score.ends_turn ? 1 : 0;
  }
  REQUIRE(*report.mean_extra_score == Approx(bytes / 12));
  REQUIRE(report.mean_response_tokens == Approx(tokens / 12));
  REQUIRE(report.exact_match_rate == Approx(exact / 12));
  REQUIRE(report.ends_turn_rate == Approx(ends / 12));

  std::ifstream in(dir / "eval.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    REQUIRE_THAT(line, Catch::Contains("\"id\":" + std::to_string(world.eval_prompts()[lines].id)));
    ++lines;
  }
  REQUIRE(lines == 12);
}

TEST_CASE("evaluation rejects an empty item list and prompts that leave no room to generate",
          "[evaluate]") {
  World world(small_world());
  Tokenizer tokenizer = world_tokenizer(world, 300);
  REQUIRE_THROWS_WITH(
      evaluate_world(*std::make_unique<Transformer>(small_model(300)), tokenizer, {}),
      Catch::Contains("evaluate: no eval items"));
  Transformer short_context(ModelConfig::gpt2(tokenizer.vocab_size(), 1, 2, 32, 8), 1);
  REQUIRE_THROWS_WITH(
      evaluate_world(short_context, tokenizer, world.eval_prompts()),
      Catch::Contains("leaves no room to generate") && Catch::Contains("max_seq_len 8"));
}

TEST_CASE("a short SFT run from scratch raises format compliance well above the untrained model",
          "[evaluate][sft]") {
  // ~130 updates of a 2-layer, 64-wide model on 400 packed world chats: a few seconds of CPU.
  // It learns the answer layout and to end its turn; facts need pretraining, so exact match is
  // reported but not required.
  World world(small_world());
  Tokenizer tokenizer = world_tokenizer(world, 400);
  EvaluationConfig eval;
  eval.max_new_tokens = 24;
  eval.batch_size = 16;

  Transformer untrained = small_model(tokenizer.vocab_size());
  EvaluationReport before = evaluate_world(untrained, tokenizer, world.eval_prompts(), eval);

  SftDataset data = SftDataset::from_world(world.sft_examples(), tokenizer, {.max_length = 127});
  SftConfig config;
  config.epochs = 12;
  config.batch_size = 16;
  config.pack = true;
  config.optimizer.schedule = {.kind = optim::LrSchedule::Kind::cosine,
                     .peak_lr = 5e-3f,
                     .min_lr = 5e-4f,
                     .warmup_steps = 10,
                     .total_steps = 0,
                     .decay_steps = 0};
  config.log_every = 0;
  config.seed = 1;
  SftTrainer trainer(config, small_model(tokenizer.vocab_size()), data);
  trainer.train();
  EvaluationReport after = evaluate_world(trainer.model(), tokenizer, world.eval_prompts(), eval);
  INFO("before: " << before.summary());
  INFO("after:  " << after.summary());

  REQUIRE(before.format_rate < 0.05);
  REQUIRE(before.ends_turn_rate < 0.1);
  REQUIRE(after.ends_turn_rate > 0.6);
  REQUIRE(after.format_rate >= before.format_rate + 0.15);
  REQUIRE(after.mean_response_tokens < before.mean_response_tokens);
}
