// Elementwise ops: values, broadcasting, finite-difference gradients, bad input.
#include <catch2/catch.hpp>

#include <cmath>

#include "support/gradcheck.h"

using namespace tiller;
using testing::random_input;

using Inputs = std::vector<Tensor>;

TEST_CASE("binary ops broadcast like numpy and their gradients sum over broadcast dims",
          "[elementwise]") {
  Tensor a = random_input({3, 1, 5}, 1);
  Tensor b = random_input({4, 1}, 2);
  REQUIRE(add(a, b).shape() == Shape{3, 4, 5});
  REQUIRE_GRADCHECK([](const Inputs& x) { return add(x[0], x[1]); }, {a, b});
  REQUIRE_GRADCHECK([](const Inputs& x) { return sub(x[0], x[1]); }, {a, b});
  REQUIRE_GRADCHECK([](const Inputs& x) { return mul(x[0], x[1]); }, {a, b});
  Tensor positive = add_scalar(abs(random_input({4, 1}, 3, 1.f, false)), 0.5f).detach();
  positive.requires_grad_();
  REQUIRE_GRADCHECK([](const Inputs& x) { return div(x[0], x[1]); }, {a, positive});
}

TEST_CASE("binary op values match the scalar definition", "[elementwise]") {
  Tensor a = Tensor::from_vector({1.f, -2.f, 3.f}, {3});
  Tensor b = Tensor::from_vector({2.f}, {1});
  REQUIRE(add(a, b).to_vector() == std::vector<float>{3.f, 0.f, 5.f});
  REQUIRE(sub(a, b).to_vector() == std::vector<float>{-1.f, -4.f, 1.f});
  REQUIRE(mul(a, b).to_vector() == std::vector<float>{2.f, -4.f, 6.f});
  REQUIRE(div(a, b).to_vector() == std::vector<float>{0.5f, -1.f, 1.5f});
  REQUIRE(maximum(a, b).to_vector() == std::vector<float>{2.f, 2.f, 3.f});
  REQUIRE(minimum(a, b).to_vector() == std::vector<float>{1.f, -2.f, 2.f});
  REQUIRE((a * 2.f + 1.f).to_vector() == std::vector<float>{3.f, -3.f, 7.f});
}

TEST_CASE("maximum and minimum route the gradient to the winner, ties to the first input",
          "[elementwise]") {
  Tensor a = Tensor::from_vector({1.f, 5.f, 2.f}, {3}, TensorOptions{}.grad());
  Tensor b = Tensor::from_vector({3.f, 4.f, 2.f}, {3}, TensorOptions{}.grad());
  sum(maximum(a, b)).backward();
  REQUIRE(a.grad().to_vector() == std::vector<float>{0.f, 1.f, 1.f});
  REQUIRE(b.grad().to_vector() == std::vector<float>{1.f, 0.f, 0.f});
  a.zero_grad();
  b.zero_grad();
  sum(minimum(a, b)).backward();
  REQUIRE(a.grad().to_vector() == std::vector<float>{1.f, 0.f, 1.f});
  REQUIRE(b.grad().to_vector() == std::vector<float>{0.f, 1.f, 0.f});
}

TEST_CASE("unary functions have finite-difference gradients", "[elementwise]") {
  Tensor x = random_input({3, 7, 5}, 4);
  Tensor positive = add_scalar(abs(random_input({3, 7, 5}, 5, 1.f, false)), 0.5f).detach();
  positive.requires_grad_();
  auto check = [](Tensor (*fn)(const Tensor&), Tensor input) {
    REQUIRE_GRADCHECK([fn](const Inputs& v) { return fn(v[0]); }, {input});
  };
  check(neg, x);
  check(exp, x);
  check(log, positive);
  check(sqrt, positive);
  check(square, x);
  check(tanh, x);
  check(sigmoid, x);
  check(logsigmoid, x);
  check(gelu, x);
  check(silu, x);
  // relu and abs have a kink at 0: keep every input at least 0.1 away so the central difference
  // (eps 1e-2) never straddles it.
  std::vector<float> values = x.to_vector();
  for (float& v : values) v += v < 0 ? -0.1f : 0.1f;
  Tensor away = Tensor::from_vector(values, x.shape(), TensorOptions{}.grad());
  check(relu, away);
  check(abs, away);
  REQUIRE_GRADCHECK([](const Inputs& v) { return scale(v[0], -1.5f); }, {x});
  REQUIRE_GRADCHECK([](const Inputs& v) { return add_scalar(v[0], 2.f); }, {x});
  // clamp's kinks at -0.5 and 0.7: a grid whose points all sit >= 0.037 away from them.
  std::vector<float> grid(30);
  for (int i = 0; i < 30; ++i) grid[i] = -1.263f + 0.1f * static_cast<float>(i);
  Tensor spread = Tensor::from_vector(grid, {30}, TensorOptions{}.grad());
  REQUIRE_GRADCHECK([](const Inputs& v) { return clamp(v[0], -0.5f, 0.7f); }, {spread});
  REQUIRE_GRADCHECK([](const Inputs& v) { return swiglu(v[0], v[1]); },
                    {x, random_input({3, 7, 5}, 6)});
}

TEST_CASE("activations match their closed forms", "[elementwise]") {
  Tensor x = Tensor::from_vector({-3.f, -0.5f, 0.f, 0.5f, 3.f}, {5});
  auto g = gelu(x).to_vector();
  auto s = silu(x).to_vector();
  auto ls = logsigmoid(Tensor::from_vector({-100.f, 0.f, 100.f}, {3})).to_vector();
  auto xv = x.to_vector();
  for (size_t i = 0; i < xv.size(); ++i) {
    float v = xv[i];
    float gelu_tanh = 0.5f * v * (1 + std::tanh(0.7978845608f * (v + 0.044715f * v * v * v)));
    REQUIRE(g[i] == Approx(gelu_tanh).margin(1e-6));
    REQUIRE(s[i] == Approx(v / (1 + std::exp(-v))).margin(1e-6));
  }
  REQUIRE(ls[0] == Approx(-100.f));  // stable: no log(0)
  REQUIRE(ls[1] == Approx(std::log(0.5f)));
  REQUIRE(ls[2] == Approx(0.f).margin(1e-6));
}

TEST_CASE("elementwise ops reject mismatched shapes, dtypes and devices by name", "[elementwise]") {
  Tensor a = Tensor::zeros({2, 3});
  REQUIRE_THROWS_WITH(add(a, Tensor::zeros({4})),
                      Catch::Contains("add: shapes (2,3) and (4) do not broadcast"));
  REQUIRE_THROWS_WITH(mul(a, Tensor::zeros({2, 3}, {.dtype = DType::i32})),
                      Catch::Contains("mul: b must be floating point"));
  REQUIRE_THROWS_WITH(exp(a.to(DType::bf16)),
                      Catch::Contains("exp: the CPU backend computes in f32 but x is bf16"));
  REQUIRE_THROWS_WITH(clamp(a, 1.f, 0.f), Catch::Contains("clamp: low 1 > high 0"));
  REQUIRE_THROWS_WITH(add(a, Tensor()), Catch::Contains("add: b is undefined"));
}
