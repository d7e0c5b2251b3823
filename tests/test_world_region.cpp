// The world's new region (core/world/world_region.h) and the multiple-choice fact probe
// (rl/reports/fact_probe.h): the region and the original world never name each other's creatures
// or towns, the region corpus states every region fact canonically, and the probe ranks by
// sentence likelihood (checked against a hand computation and on a model that memorised facts).
#include <catch2/catch.hpp>

#include <cmath>
#include <set>
#include <sstream>

#include "core/ops/ops.h"
#include "core/world/world_region.h"
#include "optim/adamw.h"
#include "rl/data/pretrain_data.h"
#include "rl/reports/fact_probe.h"

using namespace tiller;
using namespace tiller::world;

namespace {

WorldConfig small_world() {
  WorldConfig config;
  config.num_entities = 60;
  config.num_sft_examples = 16;
  config.num_eval_prompts = 16;
  config.num_preference_pairs = 16;
  return config;
}

// Capitalised words (names start upper-case; sentence-initial words are harmless extras).
std::set<std::string> capitalised_words(const std::string& text) {
  std::set<std::string> words;
  std::string word;
  for (char c : text + " ") {
    if (std::isalpha(static_cast<unsigned char>(c))) {
      word += c;
    } else {
      if (!word.empty() && std::isupper(static_cast<unsigned char>(word[0]))) words.insert(word);
      word.clear();
    }
  }
  return words;
}

}  // namespace

TEST_CASE("the new region and the original world never name each other's creatures or towns",
          "[world][region]") {
  const World world(small_world());
  const Region region(world, {.num_entities = 40});
  REQUIRE(region.entities().size() == 40);
  const auto original_words = capitalised_words(world.pretraining_corpus());
  const auto region_words = capitalised_words(region.corpus());
  size_t region_names_seen = 0;
  for (const Entity& entity : region.entities()) {
    REQUIRE(original_words.count(entity.name) == 0);
    region_names_seen += region_words.count(entity.name);
  }
  for (const std::string& town : region.towns()) REQUIRE(original_words.count(town) == 0);
  for (const Entity& entity : world.entities()) REQUIRE(region_words.count(entity.name) == 0);
  for (const std::string& town : world.towns()) REQUIRE(region_words.count(town) == 0);
  REQUIRE(region_names_seen == 40);

  const std::string corpus = region.corpus();
  for (const Expected& fact : region.facts())
    REQUIRE(corpus.find(fact.sentence()) != std::string::npos);  // canonical at least once
  REQUIRE(region.facts().size() == 40 * region_fact_tasks().size());
  REQUIRE(Region(world, {.num_entities = 40}).corpus() == corpus);  // deterministic
}

TEST_CASE("choice questions hold the true sentence once among distinct wrong values",
          "[world][region][probe]") {
  const World world(small_world());
  const Region region(world);
  auto values = [&](TaskType task) { return fact_values(task, region.towns()); };
  auto questions = rl::choice_questions(region.facts(), values, 4, 3);
  REQUIRE(questions.size() == region.facts().size());
  std::set<size_t> positions;
  for (size_t i = 0; i < questions.size(); ++i) {
    const auto& q = questions[i];
    REQUIRE(q.sentences.size() == 4);
    REQUIRE(q.sentences[q.correct] == region.facts()[i].sentence());
    REQUIRE(std::set<std::string>(q.sentences.begin(), q.sentences.end()).size() == 4);
    positions.insert(q.correct);
  }
  REQUIRE(positions.size() == 4);  // the true sentence is not always in the same place
}

TEST_CASE("the choice probe scores whole sentences by log-likelihood", "[probe]") {
  Tokenizer tokenizer;  // bytes only
  tokenizer.add_special_token("<|endoftext|>");
  ModelConfig config = ModelConfig::gpt2(tokenizer.vocab_size(), 1, 2, 16, 32);
  Transformer model(config, 3);
  std::vector<rl::ChoiceQuestion> questions = {{{"ab.", "ba."}, 0}, {{"cd.", "dd."}, 1}};

  // By hand: log p(sentence | <|endoftext|>) from the model's loss on the same tokens.
  auto logprob = [&](const std::string& sentence) {
    std::vector<int32_t> ids = {tokenizer.token_id("<|endoftext|>")};
    for (TokenId id : tokenizer.encode(sentence)) ids.push_back(id);
    const auto n = static_cast<int64_t>(ids.size()) - 1;
    Tensor inputs = Tensor::from_ints({ids.begin(), ids.end() - 1}, {1, n});
    Tensor targets = Tensor::from_ints({ids.begin() + 1, ids.end()}, {1, n});
    return -static_cast<double>(model.loss(inputs, targets).item()) * static_cast<double>(n);
  };
  auto result = rl::run_choice_probe(model, tokenizer, questions, /*batch_size=*/3);
  double expected_true = (logprob("ab.") + logprob("dd.")) / 2;
  REQUIRE(result.mean_true_logprob == Approx(expected_true).epsilon(1e-4));
  int known = (logprob("ab.") > logprob("ba.")) + (logprob("dd.") > logprob("cd."));
  REQUIRE(result.accuracy == Approx(known / 2.0));
  REQUIRE(result.chance == Approx(0.5));

  // A model trained on the true sentences ranks them first.
  optim::AdamW opt(model.parameters(), {.lr = 3e-2f});
  for (int step = 0; step < 60; ++step) {
    opt.zero_grad();
    Tensor loss = add(model.loss(Tensor::from_ints({256, 'a', 'b'}, {1, 3}),
                                 Tensor::from_ints({'a', 'b', '.'}, {1, 3})),
                      model.loss(Tensor::from_ints({256, 'd', 'd'}, {1, 3}),
                                 Tensor::from_ints({'d', 'd', '.'}, {1, 3})));
    loss.backward();
    opt.step();
  }
  auto trained = rl::run_choice_probe(model, tokenizer, questions);
  REQUIRE(trained.accuracy == 1.0);
  REQUIRE(trained.mean_margin > 1.0);
}
