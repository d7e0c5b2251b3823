// Transformer (GPT-2 and Llama families): shapes, parameter names and counts, tied embeddings,
// vocabulary padding, KV cache, dropout, inference under NoGradGuard, checkpoints, and learning.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "core/models/model.h"
#include "core/ops/ops.h"
#include "optim/adamw.h"
#include "support/gradcheck.h"

using namespace tiller;

namespace {

ModelConfig tiny_gpt2() {
  ModelConfig c = ModelConfig::gpt2(/*vocab_size=*/100, /*n_layer=*/2, /*n_head=*/2,
                                    /*n_embd=*/16, /*max_seq_len=*/32);
  return c;
}

ModelConfig tiny_llama() {
  return ModelConfig::llama(/*vocab_size=*/100, /*n_layer=*/2, /*n_head=*/4, /*n_kv_head=*/2,
                            /*n_embd=*/32, /*intermediate_size=*/48, /*max_seq_len=*/32);
}

Tensor token_ids(int64_t B, int64_t T, int64_t vocab, uint64_t seed) {
  std::vector<int32_t> ids(static_cast<size_t>(B * T));
  Generator gen(seed);
  Tensor u = Tensor::rand({B * T}, gen, 0.f, static_cast<float>(vocab));
  auto values = u.to_vector();
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(values[i]);
  return Tensor::from_ints(ids, {B, T});
}

float stddev(const Tensor& t) {
  auto v = t.to_vector();
  double sum = 0, sq = 0;
  for (float x : v) sum += x, sq += double(x) * x;
  double mean = sum / v.size();
  return static_cast<float>(std::sqrt(sq / v.size() - mean * mean));
}

std::filesystem::path temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             fmt::format("tiller_test_model_{}_{}", name, ::getpid());
  std::filesystem::remove_all(dir);
  return dir;
}

}  // namespace

TEST_CASE("parameter counts follow the Hugging Face formulas", "[model]") {
  // Published sizes: "gpt2" has 124,439,808 parameters, TinyLlama-1.1B 1,100,048,384.
  REQUIRE(ModelConfig::gpt2().num_parameters() == 124439808);
  ModelConfig tiny_llama_1b = ModelConfig::llama(32000, 22, 32, 4, 2048, 5632, 2048);
  REQUIRE(tiny_llama_1b.num_parameters() == 1100048384);
  for (const ModelConfig& c : {tiny_gpt2(), tiny_llama()}) {
    Transformer model(c);
    REQUIRE(model.num_parameters() == c.num_parameters());
  }
  // Tiny GPT-2 by hand: wte 100*16 + wpe 32*16 + ln_f 32 + 2 layers * (4*16 + 16*48 + 48
  // + 16*16 + 16 + 16*64 + 64 + 64*16 + 16) = 1600 + 512 + 32 + 2 * 3280.
  REQUIRE(Transformer(tiny_gpt2()).num_parameters() == 1600 + 512 + 32 + 2 * 3280);
}

TEST_CASE("parameters carry Hugging Face names, tiller layouts and decay flags", "[model]") {
  Transformer gpt2(tiny_gpt2());
  REQUIRE(gpt2.parameters().front().name == "wte.weight");
  REQUIRE(gpt2.parameter("wte.weight").shape() == Shape{128, 16});             // 100 padded to 128
  REQUIRE(gpt2.parameter("h.1.attn.c_attn.weight").shape() == Shape{48, 16});  // (out, in)
  REQUIRE(gpt2.parameter("h.0.mlp.c_proj.weight").shape() == Shape{16, 64});
  REQUIRE_THROWS_WITH(gpt2.parameter("lm_head.weight"),
                      Catch::Contains("no parameter named 'lm_head.weight'"));
  for (const NamedParameter& p : gpt2.parameters()) {
    INFO(p.name);
    REQUIRE(p.tensor.requires_grad());
    bool is_matrix = p.tensor.dim() == 2 && p.name.find("wte") == std::string::npos &&
                     p.name.find("wpe") == std::string::npos;
    REQUIRE(p.decay == is_matrix);
  }

  Transformer llama(tiny_llama());
  REQUIRE(llama.parameter("model.layers.0.self_attn.q_proj.weight").shape() == Shape{32, 32});
  REQUIRE(llama.parameter("model.layers.0.self_attn.k_proj.weight").shape() == Shape{16, 32});
  REQUIRE(llama.parameter("model.layers.1.mlp.gate_proj.weight").shape() == Shape{48, 32});
  REQUIRE(llama.parameter("lm_head.weight").shape() == Shape{128, 32});
  REQUIRE_FALSE(llama.parameters().front().decay);  // embed_tokens
  REQUIRE(llama.parameters().size() == 1 + 2 * 9 + 1 + 1);
}

TEST_CASE("initialisation follows GPT-2: N(0, 0.02), residual projections / sqrt(2L)", "[model]") {
  ModelConfig c = ModelConfig::gpt2(64, 8, 4, 128, 64);
  Transformer model(c, 3);
  REQUIRE(stddev(model.parameter("h.0.attn.c_attn.weight")) == Approx(0.02f).epsilon(0.03));
  REQUIRE(stddev(model.parameter("h.3.mlp.c_proj.weight")) ==
          Approx(0.02f / std::sqrt(16.f)).epsilon(0.03));
  REQUIRE(model.parameter("h.0.ln_1.weight").to_vector() == std::vector<float>(128, 1.f));
  REQUIRE(model.parameter("h.0.attn.c_attn.bias").to_vector() == std::vector<float>(384, 0.f));
  Transformer same(c, 3), other(c, 4);
  REQUIRE(same.parameter("wte.weight").to_vector() == model.parameter("wte.weight").to_vector());
  REQUIRE(other.parameter("wte.weight").to_vector() != model.parameter("wte.weight").to_vector());
}

TEST_CASE("forward returns (B, T, vocab_size) logits and loss is their cross entropy", "[model]") {
  for (const ModelConfig& c : {tiny_gpt2(), tiny_llama()}) {
    INFO(family_name(c.family));
    Transformer model(c, 1);
    Tensor ids = token_ids(3, 7, c.vocab_size, 10);
    Tensor targets = token_ids(3, 7, c.vocab_size, 11);
    Tensor logits = model.forward(ids);
    REQUIRE(logits.shape() == Shape{3, 7, 100});
    REQUIRE(logits.dtype() == DType::f32);
    float expected = cross_entropy(logits, targets).item();
    REQUIRE(model.loss(ids, targets).item() == Approx(expected));
    // Near-uniform predictions at init: loss ~ ln(100) = 4.6.
    REQUIRE(expected == Approx(std::log(100.f)).margin(0.3));
  }
}

TEST_CASE("padding rows never carry probability and never receive gradient", "[model]") {
  Transformer model(tiny_gpt2(), 2);
  Tensor ids = token_ids(2, 5, 100, 3);
  Tensor loss = model.loss(ids, token_ids(2, 5, 100, 4));
  loss.backward();
  Tensor wte = model.parameter("wte.weight");
  auto grad = wte.grad().to_vector();
  auto values = wte.to_vector();
  for (int64_t i = 100 * 16; i < 128 * 16; ++i) {
    REQUIRE(grad[static_cast<size_t>(i)] == 0.f);
    REQUIRE(values[static_cast<size_t>(i)] == 0.f);
  }
  // Softmax over the returned logits sums to 1: no mass left for padded entries.
  Tensor probabilities = softmax(model.forward(ids));
  auto row_sums = sum(probabilities, -1).to_vector();
  for (float s : row_sums) REQUIRE(s == Approx(1.f));
}

TEST_CASE("tied GPT-2 embeddings receive the sum of the lookup and the LM-head gradients",
          "[model]") {
  ModelConfig tied = tiny_gpt2();
  ModelConfig untied = tied;
  untied.tie_embeddings = false;
  Transformer a(tied, 5);
  Transformer b(untied, 5);
  {
    NoGradGuard no_grad;
    for (const NamedParameter& p : a.parameters())
      const_cast<Tensor&>(b.parameter(p.name)).copy_(p.tensor);
    const_cast<Tensor&>(b.parameter("lm_head.weight")).copy_(a.parameter("wte.weight"));
  }
  Tensor ids = token_ids(2, 6, 100, 6), targets = token_ids(2, 6, 100, 7);
  a.loss(ids, targets).backward();
  b.loss(ids, targets).backward();
  Tensor expected = add(b.parameter("wte.weight").grad(), b.parameter("lm_head.weight").grad());
  REQUIRE_CLOSE(a.parameter("wte.weight").grad(), expected, 1e-4f, 1e-6f);
  // Both paths contribute: the sum differs from either part alone.
  REQUIRE_FALSE(testing::compare(a.parameter("wte.weight").grad(),
                                 b.parameter("lm_head.weight").grad(), 1e-3f, 1e-6f)
                    .empty());
}

TEST_CASE("a KV-cached step gives the logits of the full forward", "[model]") {
  for (const ModelConfig& c : {tiny_gpt2(), tiny_llama()}) {
    INFO(family_name(c.family));
    Transformer model(c, 8);
    NoGradGuard no_grad;
    Tensor ids = token_ids(2, 9, c.vocab_size, 12);
    Tensor full = model.forward(ids);  // (2, 9, V)
    KVCache cache = model.make_cache();
    Tensor prefix_logits = model.forward(slice(ids, 1, 0, 6), {.cache = &cache});
    REQUIRE(cache.length() == 6);
    Tensor step7 = model.forward(slice(ids, 1, 6, 7), {.cache = &cache});
    Tensor rest = model.forward(slice(ids, 1, 7, 9), {.cache = &cache});
    REQUIRE(cache.length() == 9);
    REQUIRE(cache.layers[1].k.shape() == Shape{2, c.n_kv_head, 9, c.head_dim()});
    REQUIRE_CLOSE(prefix_logits, slice(full, 1, 0, 6), 1e-4f, 1e-5f);
    REQUIRE_CLOSE(step7, slice(full, 1, 6, 7), 1e-4f, 1e-5f);
    REQUIRE_CLOSE(rest, slice(full, 1, 7, 9), 1e-4f, 1e-5f);
  }
}

TEST_CASE("inference under NoGradGuard records nothing and matches the graph forward", "[model]") {
  Transformer model(tiny_llama(), 4);
  Tensor ids = token_ids(1, 8, 100, 5);
  Tensor with_graph = model.forward(ids);
  REQUIRE(with_graph.requires_grad());
  NoGradGuard no_grad;
  Tensor inference = model.forward(ids);
  REQUIRE_FALSE(inference.requires_grad());
  REQUIRE(inference.grad_fn() == nullptr);
  REQUIRE(inference.to_vector() == with_graph.to_vector());
}

TEST_CASE("dropout acts only in training and is reproducible from the generator", "[model]") {
  ModelConfig c = tiny_gpt2();
  c.dropout = 0.3f;
  Transformer model(c, 9);
  Tensor ids = token_ids(2, 6, 100, 1);
  NoGradGuard no_grad;
  Tensor eval_a = model.forward(ids);
  Tensor eval_b = model.forward(ids);
  REQUIRE(eval_a.to_vector() == eval_b.to_vector());
  Generator saved = model.dropout_generator();
  Tensor train_a = model.forward(ids, {.training = true});
  Tensor train_b = model.forward(ids, {.training = true});
  REQUIRE(train_a.to_vector() != eval_a.to_vector());
  REQUIRE(train_a.to_vector() != train_b.to_vector());  // fresh masks each call
  model.dropout_generator() = saved;
  REQUIRE(model.forward(ids, {.training = true}).to_vector() == train_a.to_vector());
}

TEST_CASE("packed documents do not see each other", "[model]") {
  // Two documents packed in one row give the same logits as each document alone, when positions
  // restart at 0 in each document.
  for (const ModelConfig& c : {tiny_gpt2(), tiny_llama()}) {
    INFO(family_name(c.family));
    Transformer model(c, 6);
    NoGradGuard no_grad;
    Tensor ids = token_ids(1, 7, c.vocab_size, 2);
    Tensor docs = Tensor::from_ints({0, 0, 0, 1, 1, 1, 1}, {1, 7});
    Tensor positions = Tensor::from_ints({0, 1, 2, 0, 1, 2, 3}, {1, 7});
    Tensor packed = model.forward(ids, {.positions = positions, .document_ids = docs});
    Tensor second = model.forward(slice(ids, 1, 3, 7));
    REQUIRE_CLOSE(slice(packed, 1, 3, 7), second, 1e-4f, 1e-5f);
    REQUIRE_CLOSE(slice(packed, 1, 0, 3), model.forward(slice(ids, 1, 0, 3)), 1e-4f, 1e-5f);
  }
}

TEST_CASE("packed rows with a different document layout per row keep every document apart",
          "[model]") {
  for (const ModelConfig& c : {tiny_gpt2(), tiny_llama()}) {
    INFO(family_name(c.family));
    Transformer model(c, 6);
    NoGradGuard no_grad;
    Tensor ids = token_ids(2, 7, c.vocab_size, 4);
    // Row 0: documents [0, 3) and [3, 7); row 1: [0, 5) and [5, 7).
    Tensor docs = Tensor::from_ints({0, 0, 0, 1, 1, 1, 1, 4, 4, 4, 4, 4, 9, 9}, {2, 7});
    Tensor positions = Tensor::from_ints({0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4, 0, 1}, {2, 7});
    Tensor packed = model.forward(ids, {.positions = positions, .document_ids = docs});
    auto alone = [&](int64_t row, int64_t begin, int64_t end) {
      return model.forward(slice(slice(ids, 0, row, row + 1), 1, begin, end));
    };
    auto part = [&](int64_t row, int64_t begin, int64_t end) {
      return slice(slice(packed, 0, row, row + 1), 1, begin, end);
    };
    REQUIRE_CLOSE(part(0, 0, 3), alone(0, 0, 3), 1e-4f, 1e-5f);
    REQUIRE_CLOSE(part(0, 3, 7), alone(0, 3, 7), 1e-4f, 1e-5f);
    REQUIRE_CLOSE(part(1, 0, 5), alone(1, 0, 5), 1e-4f, 1e-5f);
    REQUIRE_CLOSE(part(1, 5, 7), alone(1, 5, 7), 1e-4f, 1e-5f);
  }
}

TEST_CASE("KV-cached decoding of a left-padded batch uses the full forward's positions",
          "[model]") {
  // Row 0 has two pad columns: its real tokens sit at positions 0.. while the cache columns keep
  // counting; each decode step must get the position the full forward gives that token.
  for (const ModelConfig& c : {tiny_gpt2(), tiny_llama()}) {
    INFO(family_name(c.family));
    Transformer model(c, 9);
    NoGradGuard no_grad;
    Tensor ids = token_ids(2, 8, c.vocab_size, 21);
    Tensor mask = Tensor::from_ints({0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 8});
    Tensor positions = Tensor::from_ints({0, 0, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 6, 7}, {2, 8});
    Tensor full = model.forward(ids, {.positions = positions, .key_padding_mask = mask});
    KVCache cache = model.make_cache();
    Tensor prefix = model.forward(slice(ids, 1, 0, 5), {.positions = slice(positions, 1, 0, 5),
                                                        .key_padding_mask = slice(mask, 1, 0, 5),
                                                        .cache = &cache});
    auto real_rows = [](const Tensor& logits, int64_t begin, int64_t end) {
      return slice(slice(logits, 1, begin, end), 0, 1, 2);  // row 1 has no padding
    };
    REQUIRE_CLOSE(real_rows(prefix, 2, 5), real_rows(full, 2, 5), 1e-4f, 1e-5f);
    REQUIRE_CLOSE(slice(slice(prefix, 1, 2, 5), 0, 0, 1), slice(slice(full, 1, 2, 5), 0, 0, 1),
                  1e-4f, 1e-5f);
    for (int64_t t = 5; t < 8; ++t) {
      Tensor step = model.forward(slice(ids, 1, t, t + 1),
                                  {.positions = slice(positions, 1, t, t + 1),
                                   .key_padding_mask = slice(mask, 1, 0, t + 1),
                                   .cache = &cache});
      REQUIRE_CLOSE(step, slice(full, 1, t, t + 1), 1e-4f, 1e-5f);
    }
  }
}

TEST_CASE("a few AdamW steps on one batch lower the loss", "[model]") {
  for (const ModelConfig& c : {tiny_gpt2(), tiny_llama()}) {
    INFO(family_name(c.family));
    Transformer model(c, 7);
    optim::AdamW opt(model.parameters(), {.lr = 1e-2f, .weight_decay = 0.1f});
    Tensor ids = token_ids(4, 16, c.vocab_size, 20);
    Tensor targets = token_ids(4, 16, c.vocab_size, 21);
    float first = 0.f, last = 0.f;
    for (int step = 0; step < 15; ++step) {
      opt.zero_grad();
      Tensor loss = model.loss(ids, targets);
      loss.backward();
      opt.step();
      (step == 0 ? first : last) = loss.item();
    }
    REQUIRE(last < first - 1.f);  // memorising 64 tokens: ln(100) = 4.6 falls well below 3.6
  }
}

TEST_CASE("save_pretrained and from_pretrained round-trip through Hugging Face layouts",
          "[model]") {
  for (const ModelConfig& c : {tiny_gpt2(), tiny_llama()}) {
    INFO(family_name(c.family));
    Transformer model(c, 11);
    auto hf = model.hf_tensors();
    for (const auto& [name, t] : hf) {
      if (name == "h.0.attn.c_attn.weight")
        REQUIRE(t.shape() == Shape{16, 48});  // Conv1D (in, out)
      if (name == "wte.weight" || name == "lm_head.weight") REQUIRE(t.size(0) == 100);
    }
    auto dir = temp_dir(family_name(c.family));
    model.save_pretrained(dir);
    Transformer loaded = Transformer::from_pretrained(dir);
    REQUIRE(loaded.config().to_hf_json() == c.to_hf_json());
    for (const NamedParameter& p : model.parameters())
      REQUIRE(loaded.parameter(p.name).to_vector() == p.tensor.to_vector());
    std::filesystem::remove_all(dir);
  }
}

TEST_CASE("loading rejects missing, misshapen and foreign tensors", "[model]") {
  Transformer model(tiny_gpt2());
  std::map<std::string, Tensor> tensors;
  for (auto& [name, t] : model.hf_tensors()) tensors["transformer." + name] = t;
  tensors["h.0.attn.bias"] = Tensor::zeros({1, 1, 32, 32});  // HF causal-mask buffer: ignored
  model.load_hf_tensors(tensors, "test");

  auto missing = tensors;
  missing.erase("transformer.ln_f.bias");
  REQUIRE_THROWS_WITH(model.load_hf_tensors(missing, "test"),
                      Catch::Contains("test: no tensor named 'ln_f.bias'"));
  auto transposed = tensors;
  transposed["transformer.h.1.mlp.c_fc.weight"] = Tensor::zeros({64, 16});
  REQUIRE_THROWS_WITH(model.load_hf_tensors(transposed, "test"),
                      Catch::Contains("'h.1.mlp.c_fc.weight' is (64,16) but the model expects "
                                      "(16,64)"));
  auto foreign = tensors;
  foreign["model.norm.weight"] = Tensor::zeros({16});
  REQUIRE_THROWS_WITH(model.load_hf_tensors(foreign, "test"),
                      Catch::Contains("unexpected tensor 'model.norm.weight'"));
}

TEST_CASE("Hugging Face config.json round-trips and bad configs are rejected", "[model]") {
  for (const ModelConfig& c : {tiny_gpt2(), tiny_llama()}) {
    ModelConfig back = ModelConfig::from_hf_json(c.to_hf_json());
    REQUIRE(back.family == c.family);
    REQUIRE(back.num_parameters() == c.num_parameters());
    REQUIRE(back.n_kv_head == c.n_kv_head);
    REQUIRE(back.norm_eps == c.norm_eps);
    REQUIRE(back.tie_embeddings == c.tie_embeddings);
  }
  REQUIRE_THROWS_WITH(ModelConfig::from_hf_json(R"({"model_type": "bert"})"),
                      Catch::Contains("model_type 'bert' is not supported"));
  REQUIRE_THROWS_WITH(ModelConfig::from_hf_json(
                          R"({"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 16})"),
                      Catch::Contains("missing required field 'vocab_size'"));
  // An epsilon that overflows a float becomes inf, and would be written back as null (found by
  // tests/fuzz, model_config harness).
  REQUIRE_THROWS_WITH(ModelConfig::from_hf_json(
                          R"({"model_type": "gpt2", "vocab_size": 10, "n_layer": 1, "n_head": 1,
                              "n_embd": 4, "layer_norm_epsilon": 1e205})"),
                      Catch::Contains("norm_eps must be positive and finite, got inf"));
  // Sizes whose products overflow int64 (found by tests/fuzz, model_config harness).
  auto gpt2_json = [](const std::string& sizes) {
    return R"({"model_type": "gpt2", "n_head": 1, )" + sizes + "}";
  };
  REQUIRE_THROWS_WITH(
      ModelConfig::from_hf_json(gpt2_json(R"("vocab_size": 9223372036854775807, "n_layer": 1,
                                              "n_embd": 4)")),
      Catch::Contains("vocab_size 9223372036854775807 is larger than 2147483648"));
  REQUIRE_THROWS_WITH(ModelConfig::from_hf_json(gpt2_json(R"("vocab_size": 64, "n_layer": 1,
                                              "n_embd": 4611686018427387904)")),
                      Catch::Contains("n_embd 4611686018427387904 is not in [1, 2147483648]"));
  REQUIRE_THROWS_WITH(ModelConfig::from_hf_json(gpt2_json(R"("vocab_size": 64, "n_layer": 1048576,
                                              "n_embd": 1073741824, "n_inner": 8)")),
                      Catch::Contains("parameters (n_layer 1048576 n_embd 1073741824") &&
                          Catch::Contains("is more than tiller can address"));
  REQUIRE_THROWS_WITH(ModelConfig::from_hf_json(R"({"model_type": 320})"),
                      Catch::Contains("config.json: wrong field type"));
  REQUIRE_THROWS_WITH(ModelConfig::from_hf_json(gpt2_json(R"("vocab_size": 1e30, "n_layer": 1,
                                                             "n_embd": 4)")),
                      Catch::Contains("'vocab_size' is 1e+30, expected an integer"));
  ModelConfig odd = tiny_llama();
  odd.n_kv_head = 3;
  REQUIRE_THROWS_WITH(Transformer(odd),
                      Catch::Contains("n_head 4 is not a multiple of n_kv_head 3"));
}

TEST_CASE("forward validates ids and sequence length", "[model]") {
  Transformer model(tiny_gpt2());
  REQUIRE_THROWS_WITH(model.forward(Tensor::zeros({2, 3})),
                      Catch::Contains("Transformer::forward: ids must be (B, T) i32"));
  REQUIRE_THROWS_WITH(model.forward(token_ids(1, 33, 100, 1)),
                      Catch::Contains("0 cached + 33 new tokens exceed max_seq_len 32"));
  REQUIRE_THROWS_WITH(model.loss(token_ids(1, 4, 100, 1), token_ids(1, 5, 100, 1)),
                      Catch::Contains("targets (1,5) must have the shape of ids (1,4)"));
}

TEST_CASE("left padding masked out leaves the real tokens' logits unchanged", "[model]") {
  for (const ModelConfig& c : {tiny_gpt2(), tiny_llama()}) {
    INFO(family_name(c.family));
    Transformer model(c, 13);
    NoGradGuard no_grad;
    Tensor real = token_ids(1, 4, c.vocab_size, 30);
    Tensor padded_ids = concat({Tensor::from_ints({7, 7, 7}, {1, 3}), real}, 1);
    Tensor mask = Tensor::from_ints({0, 0, 0, 1, 1, 1, 1}, {1, 7});
    Tensor positions = Tensor::from_ints({0, 0, 0, 0, 1, 2, 3}, {1, 7});
    Tensor padded = model.forward(padded_ids, {.positions = positions, .key_padding_mask = mask});
    REQUIRE_CLOSE(slice(padded, 1, 3, 7), model.forward(real), 1e-4f, 1e-5f);
  }
}

TEST_CASE("converting the model's dtype keeps parameters as trainable leaves", "[model]") {
  Transformer model(tiny_llama(), 14);
  std::vector<float> before = model.parameter("lm_head.weight").to_vector();
  model.to(DType::bf16);
  for (const NamedParameter& p : model.parameters()) {
    REQUIRE(p.tensor.dtype() == DType::bf16);
    REQUIRE(p.tensor.is_leaf());
    REQUIRE(p.tensor.requires_grad());
  }
  model.to(DType::f32);
  std::vector<float> after = model.parameter("lm_head.weight").to_vector();
  for (size_t i = 0; i < before.size(); ++i)  // bf16 keeps 8 mantissa bits: 2^-9 relative
    REQUIRE(std::fabs(after[i] - before[i]) <= std::fabs(before[i]) / 256.f);
  REQUIRE(after != before);
  REQUIRE(model.forward(token_ids(1, 3, 100, 2)).shape() == Shape{1, 3, 100});
}
