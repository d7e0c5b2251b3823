// KL to a reference model (rl/reports/kl.h): zero for a model against itself, positive for two
// different models, and equal to a brute-force computation — one forward pass per response token,
// log-softmax done by hand on the host — on a tiny case with rows of different lengths.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/tensor/autograd.h"
#include "core/text/special_tokens.h"
#include "rl/reports/kl.h"

using namespace tiller;
using namespace tiller::rl;

namespace {

constexpr int64_t kVocab = 11;

Transformer tiny_model(uint64_t seed) {
  return Transformer(ModelConfig::gpt2(kVocab, /*n_layer=*/1, /*n_head=*/2, /*n_embd=*/16,
                                       /*max_seq_len=*/16),
                     seed);
}

// log p(target | context) from one unbatched forward pass, log-softmax computed by hand.
double brute_force_logp(Transformer& model, const std::vector<int32_t>& context, int32_t target) {
  NoGradGuard no_grad;
  const auto T = static_cast<int64_t>(context.size());
  Tensor ids = Tensor::from_ints(context, {1, T}, {.dtype = DType::i32});
  std::vector<float> logits = model.forward(ids).to_vector();
  const size_t row = static_cast<size_t>((T - 1) * kVocab);
  double peak = logits[row];
  for (int64_t v = 0; v < kVocab; ++v) peak = std::max<double>(peak, logits[row + v]);
  double total = 0.0;
  for (int64_t v = 0; v < kVocab; ++v) total += std::exp(logits[row + v] - peak);
  return logits[row + static_cast<size_t>(target)] - peak - std::log(total);
}

const std::vector<std::vector<int32_t>> kPrompts = {{1, 2, 3}, {4}, {5, 6}};
const std::vector<std::vector<int32_t>> kCompletions = {{7, 8}, {9, 10, 2, 3}, {}};

}  // namespace

TEST_CASE("the KL of a model to itself is exactly zero under both estimators", "[kl]") {
  Transformer model = tiny_model(1);
  Transformer same = tiny_model(1);
  KlEstimate kl = sequence_kl(model, same, kPrompts, kCompletions, /*batch_size=*/2);
  REQUIRE(kl.tokens == 6);
  REQUIRE(kl.responses == 3);
  REQUIRE(kl.k1 == 0.0);
  REQUIRE(kl.k3 == 0.0);
  REQUIRE(kl.k1_sequence == 0.0);
}

TEST_CASE("k1 and k3 equal a brute-force per-token computation for two different models", "[kl]") {
  Transformer policy = tiny_model(1);
  Transformer reference = tiny_model(2);
  double k1 = 0.0, k3 = 0.0;
  int64_t tokens = 0;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    std::vector<int32_t> context = kPrompts[i];
    for (int32_t target : kCompletions[i]) {
      double r =
          brute_force_logp(policy, context, target) - brute_force_logp(reference, context, target);
      k1 += r;
      k3 += std::exp(-r) - 1.0 + r;
      ++tokens;
      context.push_back(target);
    }
  }
  KlEstimate kl = sequence_kl(policy, reference, kPrompts, kCompletions, /*batch_size=*/2);
  REQUIRE(kl.tokens == tokens);
  REQUIRE(kl.k1 == Approx(k1 / tokens).margin(1e-5));
  REQUIRE(kl.k3 == Approx(k3 / tokens).margin(1e-6));
  REQUIRE(kl.k1_sequence == Approx(k1 / 3).margin(1e-5));
  REQUIRE(kl.k3 > 1e-4);  // the models differ: the tolerance above is far below the value
  // Batch composition does not matter: one row at a time gives the same numbers.
  KlEstimate one_by_one = sequence_kl(policy, reference, kPrompts, kCompletions, 1);
  REQUIRE(one_by_one.k3 == Approx(kl.k3).margin(1e-6));
}

TEST_CASE("KL on the policy's own samples is zero to itself and positive to another model",
          "[kl]") {
  // A tokenizer with the chat special tokens, trained on a few words.
  BpeTrainer trainer;
  trainer.add_text("What colour is Zorvik? Zorvik's colour is blue.");
  BpeTrainOptions options;
  options.vocab_size = 300;
  options.special_tokens.assign(special_tokens::kAll.begin(), special_tokens::kAll.end());
  Tokenizer tokenizer = trainer.train(options);
  const int64_t vocab = tokenizer.vocab_size();
  Transformer policy(ModelConfig::gpt2(vocab, 1, 2, 16, 48), 1);
  Transformer same(ModelConfig::gpt2(vocab, 1, 2, 16, 48), 1);
  Transformer other(ModelConfig::gpt2(vocab, 1, 2, 16, 48), 2);
  world::EvalItem item;
  item.prompt = {{"user", "What colour is Zorvik?"}};
  std::vector<world::EvalItem> items(5, item);
  KlSamplingConfig config{.max_new_tokens = 6, .batch_size = 2, .limit = 4, .seed = 3};

  KlEstimate self = kl_on_own_samples(policy, same, tokenizer, items, config);
  REQUIRE(self.responses == 4);
  REQUIRE(self.tokens > 0);
  REQUIRE(self.k3 == 0.0);
  KlEstimate apart = kl_on_own_samples(policy, other, tokenizer, items, config);
  REQUIRE(apart.tokens == self.tokens);  // same policy, same seed: the same samples
  REQUIRE(apart.k3 > 1e-4);

  Transformer wider(ModelConfig::gpt2(vocab + 1, 1, 2, 16, 48), 2);
  REQUIRE_THROWS_WITH(kl_on_own_samples(policy, wider, tokenizer, items, config),
                      Catch::Contains("vocabulary"));
}
