// Autograd semantics: accumulation, reuse, no_grad, detach, freeing of saved activations.
#include <catch2/catch.hpp>

#include "core/ops/ops.h"
#include "support/gradcheck.h"

using namespace tiller;

TEST_CASE("gradients accumulate into leaves across backward calls until zero_grad", "[autograd]") {
  Tensor x = Tensor::from_vector({1.f, 2.f}, {2}, TensorOptions{}.grad());
  sum(scale(x, 3.f)).backward();
  REQUIRE(x.grad().to_vector() == std::vector<float>{3.f, 3.f});
  sum(scale(x, 3.f)).backward();
  REQUIRE(x.grad().to_vector() == std::vector<float>{6.f, 6.f});
  x.zero_grad();
  sum(scale(x, 1.f)).backward();
  REQUIRE(x.grad().to_vector() == std::vector<float>{1.f, 1.f});
}

TEST_CASE("a tensor used twice receives the sum of both gradients", "[autograd]") {
  Tensor x = Tensor::from_vector({3.f}, {1}, TensorOptions{}.grad());
  Tensor y = mul(x, x);            // dy/dx = 2x = 6
  Tensor z = add(y, scale(x, 4));  // + 4
  z.backward(Tensor::ones({1}));
  REQUIRE(x.grad().item() == Approx(10.f));
  // Reuse through an intermediate: w = y * y = x^4, dw/dx = 4 x^3 = 108.
  Tensor a = Tensor::from_vector({3.f}, {1}, TensorOptions{}.grad());
  Tensor b = mul(a, a);
  sum(mul(b, b)).backward();
  REQUIRE(a.grad().item() == Approx(108.f));
}

TEST_CASE("NoGradGuard records nothing and restores the previous state", "[autograd]") {
  Tensor x = testing::random_input({4}, 3);
  {
    NoGradGuard guard;
    REQUIRE_FALSE(grad_enabled());
    Tensor y = mul(x, x);
    REQUIRE_FALSE(y.requires_grad());
    REQUIRE(y.grad_fn() == nullptr);
    {
      NoGradGuard inner;
    }
    REQUIRE_FALSE(grad_enabled());
  }
  REQUIRE(grad_enabled());
  REQUIRE(mul(x, x).requires_grad());
}

TEST_CASE("detach cuts the graph", "[autograd]") {
  Tensor x = Tensor::from_vector({2.f}, {1}, TensorOptions{}.grad());
  Tensor y = mul(x, x);
  Tensor z = mul(y.detach(), x);  // treated as constant 4 * x
  sum(z).backward();
  REQUIRE(x.grad().item() == Approx(4.f));
}

TEST_CASE("saved activations are freed once their node has run", "[autograd]") {
  Tensor x = testing::random_input({8}, 4);
  std::weak_ptr<TensorImpl> saved;
  Tensor loss;
  {
    Tensor h = tanh(x);        // tanh's node saves x; mul's node saves h
    saved = h.impl_ptr();
    loss = sum(mul(h, h));
  }
  REQUIRE_FALSE(saved.expired());  // kept alive by the graph
  loss.backward();
  REQUIRE(saved.expired());  // released after backward ran the nodes
  REQUIRE(loss.grad_fn()->inputs.empty());
}

TEST_CASE("a graph dropped without backward frees its output: no op's node owns its own output",
          "[autograd]") {
  // A node that captured its op's output would form a cycle (output -> node -> output) that leaks
  // whenever no backward runs, e.g. a loss computed only for a metric. div once did.
  Tensor a = testing::random_input({6}, 8);
  Tensor b = add_scalar(square(testing::random_input({6}, 9)), 1.f);
  using Op = Tensor (*)(const Tensor&);
  const std::vector<std::pair<const char*, Op>> ops = {
      {"div", [](const Tensor& x) { return div(x, add_scalar(square(x), 1.f)); }},
      {"exp", [](const Tensor& x) { return exp(x); }},
      {"tanh", [](const Tensor& x) { return tanh(x); }},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }},
      {"softmax", [](const Tensor& x) { return softmax(x); }},
      {"log_softmax", [](const Tensor& x) { return log_softmax(x); }},
      {"sqrt", [](const Tensor& x) { return sqrt(add_scalar(square(x), 1.f)); }},
  };
  for (const auto& [name, op] : ops) {
    INFO(name);
    std::weak_ptr<TensorImpl> output;
    {
      Tensor y = op(a);
      REQUIRE(y.grad_fn() != nullptr);
      output = y.impl_ptr();
    }
    REQUIRE(output.expired());
  }
  std::weak_ptr<TensorImpl> quotient;
  {
    Tensor y = div(a, b);
    quotient = y.impl_ptr();
  }
  REQUIRE(quotient.expired());
}

TEST_CASE("backward from a non-scalar needs an explicit gradient", "[autograd]") {
  Tensor x = testing::random_input({3}, 5);
  Tensor y = scale(x, 2.f);
  REQUIRE_THROWS_WITH(y.backward(), Catch::Contains("not a scalar"));
  y.backward(Tensor::from_vector({1.f, 2.f, 3.f}, {3}));
  REQUIRE(x.grad().to_vector() == std::vector<float>{2.f, 4.f, 6.f});
  Tensor c = Tensor::ones({2});
  REQUIRE_THROWS_WITH(sum(c).backward(), Catch::Contains("does not require grad"));
}

TEST_CASE("backward through a deep chain does not recurse", "[autograd]") {
  Tensor x = Tensor::from_vector({1.f}, {1}, TensorOptions{}.grad());
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = add_scalar(y, 0.f);
  sum(y).backward();
  REQUIRE(x.grad().item() == 1.f);
}

TEST_CASE("to(dtype) is differentiable between float types", "[autograd]") {
  Tensor x = testing::random_input({5}, 6);
  Tensor y = x.to(DType::bf16).to(DType::f32);
  sum(y).backward();
  REQUIRE(x.grad().to_vector() == std::vector<float>(5, 1.f));
}

TEST_CASE("a leaf keeps a fresh gradient without a copy, and never one that another tensor sees",
          "[autograd]") {
  // mul's backward returns new buffers: each leaf adopts its own. add's backward hands the same
  // gradient tensor to both inputs: each leaf must get its own copy, so accumulating into one
  // (a second backward) leaves the other alone.
  Tensor a = Tensor::from_vector({1.f, 2.f}, {2}, TensorOptions{}.grad());
  Tensor b = Tensor::from_vector({3.f, 4.f}, {2}, TensorOptions{}.grad());
  sum(mul(a, b)).backward();
  REQUIRE(a.grad().to_vector() == std::vector<float>{3.f, 4.f});
  REQUIRE(b.grad().to_vector() == std::vector<float>{1.f, 2.f});
  REQUIRE(a.grad().data_ptr() != b.grad().data_ptr());

  Tensor c = Tensor::from_vector({1.f, 2.f}, {2}, TensorOptions{}.grad());
  Tensor d = Tensor::from_vector({3.f, 4.f}, {2}, TensorOptions{}.grad());
  sum(add(c, d)).backward();
  REQUIRE(c.grad().data_ptr() != d.grad().data_ptr());
  sum(scale(c, 2.f)).backward();  // accumulates into c's gradient only
  REQUIRE(c.grad().to_vector() == std::vector<float>{3.f, 3.f});
  REQUIRE(d.grad().to_vector() == std::vector<float>{1.f, 1.f});
}
