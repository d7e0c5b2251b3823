// Generation: KV cache vs full recompute, batching with left padding, log-probs, stop tokens.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/ops/ops.h"
#include "rl/generation/generate.h"

using namespace tiller;
using namespace tiller::rl;

namespace {

Transformer small_model(ModelFamily family) {
  ModelConfig c = family == ModelFamily::gpt2 ? ModelConfig::gpt2(97, 2, 4, 32, 64)
                                              : ModelConfig::llama(97, 2, 4, 2, 32, 64, 64);
  // A larger init than the default makes the distributions peaked enough to be interesting.
  Transformer model(c, 11);
  NoGradGuard no_grad;
  for (const auto& p : model.parameters())
    if (p.tensor.dim() == 2) p.tensor.copy_(scale(p.tensor, 5.f));
  return model;
}

const std::vector<std::vector<int32_t>> kPrompts = {{5, 17, 3}, {42}, {7, 8, 9, 10, 11, 12}};

}  // namespace

TEST_CASE("cached and uncached greedy generation give identical tokens", "[generate]") {
  for (ModelFamily family : {ModelFamily::gpt2, ModelFamily::llama}) {
    Transformer model = small_model(family);
    GenerationConfig config{.max_new_tokens = 12, .sampling = {.temperature = 0.f}};
    GenerationResult cached = generate(model, kPrompts, config);
    config.use_cache = false;
    GenerationResult full = generate(model, kPrompts, config);
    REQUIRE(cached.tokens == full.tokens);
    REQUIRE(cached.tokens[0].size() == 12);
    for (size_t b = 0; b < kPrompts.size(); ++b)
      for (size_t t = 0; t < cached.logprobs[b].size(); ++t)
        REQUIRE(cached.logprobs[b][t] == Approx(full.logprobs[b][t]).margin(1e-4));
  }
}

TEST_CASE("a left-padded batch generates what each prompt generates alone", "[generate]") {
  for (ModelFamily family : {ModelFamily::gpt2, ModelFamily::llama}) {
    Transformer model = small_model(family);
    GenerationConfig config{.max_new_tokens = 10, .sampling = {.temperature = 0.f}};
    GenerationResult batch = generate(model, kPrompts, config);
    for (size_t b = 0; b < kPrompts.size(); ++b) {
      GenerationResult alone = generate(model, {kPrompts[b]}, config);
      REQUIRE(alone.tokens[0] == batch.tokens[b]);
    }
  }
}

TEST_CASE("returned log-probs equal a full forward pass over prompt + response at the "
          "sampling temperature",
          "[generate]") {
  Transformer model = small_model(ModelFamily::llama);
  const float temperature = 0.7f;
  GenerationConfig config{.max_new_tokens = 8, .sampling = {.temperature = temperature}, .seed = 3};
  GenerationResult out = generate(model, kPrompts, config);
  for (size_t b = 0; b < kPrompts.size(); ++b) {
    std::vector<int32_t> seq = kPrompts[b];
    seq.insert(seq.end(), out.tokens[b].begin(), out.tokens[b].end());
    auto T = static_cast<int64_t>(seq.size());
    NoGradGuard no_grad;
    Tensor logits = model.forward(Tensor::from_ints(seq, {1, T}));
    std::vector<int32_t> targets(seq.begin() + 1, seq.end());
    Tensor lp = token_logprobs(scale(slice(logits, 1, 0, T - 1), 1.f / temperature),
                               Tensor::from_ints(targets, {1, T - 1}));
    auto expected = lp.to_vector();
    size_t prompt_length = kPrompts[b].size();
    for (size_t t = 0; t < out.tokens[b].size(); ++t)
      REQUIRE(out.logprobs[b][t] == Approx(expected[prompt_length - 1 + t]).margin(1e-4));
  }
}

TEST_CASE("stop tokens end a row and the same seed gives the same samples", "[generate]") {
  Transformer model = small_model(ModelFamily::gpt2);
  GenerationConfig greedy{.max_new_tokens = 10, .sampling = {.temperature = 0.f}};
  GenerationResult free_run = generate(model, {kPrompts[0]}, greedy);
  int32_t stop = free_run.tokens[0][3];
  greedy.stop_tokens = {stop};
  GenerationResult stopped = generate(model, {kPrompts[0]}, greedy);
  REQUIRE(stopped.stopped[0]);
  REQUIRE(stopped.tokens[0].back() == stop);
  auto first = std::find(free_run.tokens[0].begin(), free_run.tokens[0].end(), stop);
  REQUIRE(stopped.tokens[0].size() == static_cast<size_t>(first - free_run.tokens[0].begin()) + 1);
  REQUIRE_FALSE(free_run.stopped[0]);

  GenerationConfig sampled{.max_new_tokens = 16, .sampling = {.temperature = 1.f}, .seed = 9};
  auto a = generate(model, kPrompts, sampled);
  auto b = generate(model, kPrompts, sampled);
  REQUIRE(a.tokens == b.tokens);
  sampled.seed = 10;
  REQUIRE(generate(model, kPrompts, sampled).tokens != a.tokens);
  REQUIRE(a.generated_tokens == 48);
}

TEST_CASE("generate rejects empty, too long and out-of-vocabulary prompts", "[generate]") {
  Transformer model = small_model(ModelFamily::gpt2);
  GenerationConfig config{.max_new_tokens = 8};
  REQUIRE_THROWS_WITH(generate(model, {{1}, {}}, config),
                      Catch::Contains("generate: prompt 1 is empty"));
  REQUIRE_THROWS_WITH(generate(model, {std::vector<int32_t>(60, 1)}, config),
                      Catch::Contains("prompt 0 has 60 tokens; with max_new_tokens 8"));
  REQUIRE_THROWS_WITH(generate(model, {{1, 500}}, config),
                      Catch::Contains("prompt 0 token 1 is 500, outside the vocabulary [0, 97)"));
}
