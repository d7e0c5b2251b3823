// The likelihood probe (rl/reports/probe.h): candidate log-likelihoods equal hand-computed values
// for a model whose logits are set by hand and a brute-force full forward per candidate for a
// random model; and on the world, a model that prefers one colour ranks exactly the questions
// whose answer is that colour right.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>

#include "core/tensor/autograd.h"
#include "core/text/special_tokens.h"
#include "rl/reports/probe.h"

using namespace tiller;
using namespace tiller::rl;

namespace {

constexpr int64_t kWidth = 8;

// A GPT-2 whose every position outputs the same logits `unigram`: the final norm's gain is 0 and
// its bias e_0, so the hidden state is e_0 everywhere and logits[v] = wte[v][0] = unigram[v].
Transformer unigram_model(const std::vector<float>& unigram) {
  const auto vocab = static_cast<int64_t>(unigram.size());
  Transformer model(ModelConfig::gpt2(vocab, 1, 2, kWidth, 64), 1);
  std::map<std::string, Tensor> tensors;
  for (auto& [name, tensor] : model.hf_tensors()) tensors[name] = tensor;
  std::vector<float> wte = tensors.at("wte.weight").to_vector();
  for (int64_t v = 0; v < vocab; ++v) wte[v * kWidth] = unigram[v];
  std::vector<float> bias(kWidth, 0.f);
  bias[0] = 1.f;
  tensors["wte.weight"] = Tensor::from_vector(wte, {vocab, kWidth});
  tensors["ln_f.weight"] = Tensor::from_vector(std::vector<float>(kWidth, 0.f), {kWidth});
  tensors["ln_f.bias"] = Tensor::from_vector(bias, {kWidth});
  model.load_hf_tensors(tensors, "unigram test model");
  return model;
}

// log p(target | context) from a full forward pass of context, one candidate at a time.
double full_forward_loglikelihood(Transformer& model, const std::vector<int32_t>& cue,
                                  const std::vector<int32_t>& candidate) {
  NoGradGuard no_grad;
  std::vector<int32_t> ids = cue;
  ids.insert(ids.end(), candidate.begin(), candidate.end());
  const auto T = static_cast<int64_t>(ids.size());
  const int64_t V = model.config().vocab_size;
  std::vector<float> logits =
      model.forward(Tensor::from_ints(ids, {1, T}, {.dtype = DType::i32})).to_vector();
  double total = 0.0;
  for (size_t t = cue.size(); t < ids.size(); ++t) {
    const float* row = &logits[(t - 1) * V];
    double norm = 0.0;
    for (int64_t v = 0; v < V; ++v) norm += std::exp(static_cast<double>(row[v]));
    total += row[ids[t]] - std::log(norm);
  }
  return total;
}

}  // namespace

TEST_CASE("candidate log-likelihoods under hand-set unigram logits are sums of log p", "[probe]") {
  // Token weights 1, 2, 3, 4: p(k) = (k + 1) / 10.
  Transformer model = unigram_model({0.f, std::log(2.f), std::log(3.f), std::log(4.f)});
  const std::vector<std::vector<int32_t>> candidates = {{3}, {1, 2}, {}, {1, 2, 0}, {3, 3}};
  const std::vector<double> scores = candidate_loglikelihoods(model, {0, 1}, candidates, 2);
  REQUIRE(scores[0] == Approx(std::log(0.4)).margin(1e-5));
  REQUIRE(scores[1] == Approx(std::log(0.2 * 0.3)).margin(1e-5));
  REQUIRE(scores[2] == 0.0);
  REQUIRE(scores[3] == Approx(std::log(0.2 * 0.3 * 0.1)).margin(1e-5));
  REQUIRE(scores[4] == Approx(std::log(0.4 * 0.4)).margin(1e-5));
}

TEST_CASE(
    "candidate log-likelihoods with a cached common prefix equal a full forward per "
    "candidate",
    "[probe]") {
  Transformer model(ModelConfig::gpt2(13, 2, 2, 16, 32), 4);
  const std::vector<int32_t> cue = {1, 5, 7};
  // A shared prefix {2, 9}, tails of different lengths, one candidate that is prefix + 1 token.
  const std::vector<std::vector<int32_t>> candidates = {
      {2, 9, 4, 4, 1}, {2, 9, 11}, {2, 9, 3, 12}, {2, 9, 4, 6, 8, 10, 1}};
  for (int64_t batch : {1, 3, 64}) {
    const std::vector<double> scores = candidate_loglikelihoods(model, cue, candidates, batch);
    for (size_t i = 0; i < candidates.size(); ++i)
      REQUIRE(scores[i] ==
              Approx(full_forward_loglikelihood(model, cue, candidates[i])).margin(1e-4));
  }
  // No common prefix at all.
  const std::vector<std::vector<int32_t>> apart = {{3, 4}, {5}, {6, 7, 8}};
  const std::vector<double> scores = candidate_loglikelihoods(model, cue, apart, 2);
  for (size_t i = 0; i < apart.size(); ++i)
    REQUIRE(scores[i] == Approx(full_forward_loglikelihood(model, cue, apart[i])).margin(1e-4));
  REQUIRE_THROWS_WITH(candidate_loglikelihoods(model, {}, apart), Catch::Contains("cue is empty"));
  REQUIRE_THROWS_WITH(candidate_loglikelihoods(model, std::vector<int32_t>(30, 1), apart),
                      Catch::Contains("max_seq_len 32"));
}

TEST_CASE("on the world, a model that prefers ' blue' gets exactly the blue creatures right",
          "[probe]") {
  World world(WorldConfig{.seed = 5,
                          .num_entities = 40,
                          .num_towns = 4,
                          .mentions_per_fact = 1,
                          .num_sft_examples = 16,
                          .num_eval_prompts = 160,
                          .num_preference_pairs = 0,
                          .num_unseen_prompts = 10});
  BpeTrainer trainer;
  trainer.add_text(world.pretraining_corpus());
  BpeTrainOptions options;
  options.vocab_size = 1024;
  options.special_tokens.assign(special_tokens::kAll.begin(), special_tokens::kAll.end());
  Tokenizer tokenizer = trainer.train(options);
  const std::vector<int32_t> blue = tokenizer.encode(" blue");
  REQUIRE(blue.size() == 1);  // the test's premise: the colour is one token
  std::vector<float> unigram(static_cast<size_t>(tokenizer.vocab_size()), 0.f);
  unigram[static_cast<size_t>(blue[0])] = 10.f;
  Transformer model = unigram_model(unigram);

  std::vector<world::EvalItem> colour_items;
  for (const world::EvalItem& item : world.eval_prompts())
    if (item.question.expected.task == world::TaskType::kColour) colour_items.push_back(item);
  REQUIRE(colour_items.size() == 20);
  ProbeReport report = probe_world(model, tokenizer, world, colour_items, {.batch_size = 5});
  int64_t blue_answers = 0;
  for (const ProbeExample& example : report.examples) {
    REQUIRE(example.best == "blue");
    REQUIRE(example.candidates == 12);
    REQUIRE(example.correct == (example.expected == "blue"));
    blue_answers += example.expected == "blue" ? 1 : 0;
  }
  REQUIRE(report.questions == 20);
  REQUIRE(report.correct == blue_answers);
  REQUIRE(report.accuracy == Approx(blue_answers / 20.0));
  REQUIRE(report.creature_accuracy == report.accuracy);
  REQUIRE(report.chance == Approx(1.0 / 12));
  const ProbeTaskResult& colour = report.per_task[static_cast<size_t>(world::TaskType::kColour)];
  REQUIRE(colour.questions == 20);
  REQUIRE(colour.chance == Approx(1.0 / 12));
  REQUIRE(report.per_task[static_cast<size_t>(world::TaskType::kAge)].questions == 0);

  // The whole held-out set and the unseen control run, with each task's chance.
  ProbeReport all = probe_world(model, tokenizer, world, world.eval_prompts(), {.limit = 16});
  REQUIRE(all.questions == 16);
  REQUIRE(all.per_task[static_cast<size_t>(world::TaskType::kLegs)].chance == Approx(0.25));
  REQUIRE(all.per_task[static_cast<size_t>(world::TaskType::kAge)].chance ==
          Approx(1.0 / (world::kMaxAge - world::kMinAge + 1)));
  ProbeReport unseen = probe_world(model, tokenizer, world, world.unseen_prompts());
  REQUIRE(unseen.questions == 10);
  REQUIRE(std::isfinite(unseen.creature_accuracy));
}
