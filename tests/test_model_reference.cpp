// tiller's GPT-2 and Llama against PyTorch: logits, loss, every parameter gradient and the losses
// of the first 10 AdamW steps, on the fixtures written by tests/reference/make_fixtures.py.
//
// The fixtures were computed in float64 from f32 weights, so the tolerances bound tiller's own f32
// error. Errors are measured relative to the largest entry of each reference tensor. Reached on
// the CPU backend (worst of both families, when the fixtures were made): logits 4.6e-7, loss
// 9.3e-8, gradients 1.1e-6 (worst parameter), AdamW step losses 8.4e-7 (torch's betas are doubles,
// tiller's floats). Asserted: logits 5e-6, loss 1e-6, gradients 1e-5, AdamW losses 1e-5.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>

#include "core/models/model.h"
#include "core/ops/ops.h"
#include "core/io/safetensors.h"
#include "optim/adamw.h"

using namespace tiller;

namespace {

const std::filesystem::path kFixtures = TILLER_TEST_FIXTURES;

struct Fixture {
  std::filesystem::path dir;
  safetensors::Contents reference;
  const Tensor& at(const std::string& name) const { return reference.tensors.at(name); }
  float meta(const std::string& key) const { return std::stof(reference.metadata.at(key)); }
};

Fixture load_fixture(const std::string& name) {
  Fixture f{kFixtures / name, {}};
  INFO("fixture " << f.dir.string() << " (regenerate with tests/reference/make_fixtures.py)");
  REQUIRE(std::filesystem::exists(f.dir / "reference.safetensors"));
  f.reference = safetensors::load(f.dir / "reference.safetensors");
  return f;
}

// Largest |a - b| divided by the largest |b|: a scale-aware error for a whole tensor.
double relative_to_max(const Tensor& actual, const Tensor& expected) {
  auto a = actual.to_vector(), b = expected.to_vector();
  REQUIRE(a.size() == b.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return diff / std::max(scale, 1e-30);
}

// The gradient of a padded vocabulary table, cut to the rows the reference has.
Tensor unpadded(const Tensor& grad, const Tensor& reference) {
  return grad.size(0) == reference.size(0) ? grad : slice(grad, 0, 0, reference.size(0));
}

}  // namespace

TEST_CASE("logits, loss and every gradient match PyTorch", "[reference][model]") {
  for (const char* name : {"gpt2_tiny", "llama_tiny"}) {
    INFO(name);
    Fixture f = load_fixture(name);
    Transformer model = Transformer::from_pretrained(f.dir);
    REQUIRE(model.config().padded_vocab_size() != model.config().vocab_size);  // padding exercised

    Tensor logits = model.forward(f.at("input.ids"));
    REQUIRE(logits.shape() == f.at("output.logits").shape());
    REQUIRE(relative_to_max(logits, f.at("output.logits")) < 5e-6);

    Tensor loss = model.loss(f.at("input.ids"), f.at("input.targets"),
                             static_cast<int32_t>(f.meta("ignore_index")));
    REQUIRE(loss.item() == Approx(f.at("output.loss").item()).epsilon(1e-6));
    loss.backward();

    size_t compared = 0;
    for (const NamedParameter& p : model.parameters()) {
      INFO(p.name);
      const Tensor& expected = f.at("grad." + p.name);
      REQUIRE(p.tensor.grad().defined());
      REQUIRE(relative_to_max(unpadded(p.tensor.grad(), expected), expected) < 1e-5);
      ++compared;
    }
    REQUIRE(compared == model.parameters().size());
    REQUIRE(compared + 5 == f.reference.tensors.size());  // + ids, targets, logits, loss, losses
  }
}

TEST_CASE("the first 10 AdamW steps follow PyTorch's losses", "[reference][optim]") {
  for (const char* name : {"gpt2_tiny", "llama_tiny"}) {
    INFO(name);
    Fixture f = load_fixture(name);
    Transformer model = Transformer::from_pretrained(f.dir);
    optim::AdamW opt(model.parameters(), {.lr = f.meta("lr"),
                                          .beta1 = f.meta("beta1"),
                                          .beta2 = f.meta("beta2"),
                                          .eps = f.meta("eps"),
                                          .weight_decay = f.meta("weight_decay")});
    auto expected = f.at("adamw.losses").to_vector();
    REQUIRE(expected.size() == 10);
    REQUIRE(expected.back() < expected.front() / 4);  // the reference run really trains
    for (size_t step = 0; step < expected.size(); ++step) {
      INFO("step " << step);
      opt.zero_grad();
      Tensor loss = model.loss(f.at("input.ids"), f.at("input.targets"),
                               static_cast<int32_t>(f.meta("ignore_index")));
      loss.backward();
      opt.step();
      REQUIRE(loss.item() == Approx(expected[step]).epsilon(1e-5));
    }
  }
}
