// matmul and linear: values, every transpose combination, finite-difference gradients, bad input.
#include <catch2/catch.hpp>

#include "support/gradcheck.h"

using namespace tiller;
using testing::random_input;

using Inputs = std::vector<Tensor>;

TEST_CASE("matmul multiplies batched and shared operands with optional transposes", "[matmul]") {
  Tensor a = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector({1, 0, 0, 1, 1, 1}, {3, 2});
  REQUIRE(matmul(a, b).to_vector() == std::vector<float>{4, 5, 10, 11});
  REQUIRE(matmul(a, a, false, true).to_vector() == std::vector<float>{14, 32, 32, 77});
  REQUIRE(matmul(a, a, true, false).shape() == Shape{3, 3});
  Tensor A = random_input({2, 3, 5, 4}, 6);
  Tensor B = random_input({2, 3, 4, 6}, 7);
  Tensor W = random_input({4, 6}, 8);
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      Tensor a2 = ta ? transpose(A, -1, -2).detach() : A;
      Tensor b2 = tb ? transpose(B, -1, -2).detach() : B;
      a2.requires_grad_();
      b2.requires_grad_();
      Tensor expected = matmul(A, B);
      REQUIRE_CLOSE(matmul(a2, b2, ta, tb), expected, 1e-5f, 1e-5f);
      REQUIRE_GRADCHECK([ta, tb](const Inputs& v) { return matmul(v[0], v[1], ta, tb); },
                        {a2, b2});
    }
  }
  REQUIRE_GRADCHECK([](const Inputs& v) { return matmul(v[0], v[1]); }, {A, W});
  REQUIRE_GRADCHECK([](const Inputs& v) { return matmul(v[0], v[1], false, true); },
                    {A, random_input({6, 4}, 9)});
}

TEST_CASE("linear computes x W^T + b with PyTorch's weight layout", "[matmul]") {
  Tensor x = Tensor::from_vector({1, 2}, {1, 2});
  Tensor w = Tensor::from_vector({1, 1, 2, -1, 0, 3}, {3, 2});
  Tensor b = Tensor::from_vector({0.5f, 0.f, -1.f}, {3});
  REQUIRE(linear(x, w, b).to_vector() == std::vector<float>{3.5f, 0.f, 5.f});
  Tensor X = random_input({2, 5, 7}, 10);
  Tensor W = random_input({3, 7}, 11);
  Tensor B = random_input({3}, 12);
  REQUIRE(linear(X, W, B).shape() == Shape{2, 5, 3});
  REQUIRE_GRADCHECK([](const Inputs& v) { return linear(v[0], v[1], v[2]); }, {X, W, B});
  REQUIRE_GRADCHECK([](const Inputs& v) { return linear(v[0], v[1]); }, {X, W});
}

TEST_CASE("matmul and linear name the mismatching shapes", "[matmul]") {
  Tensor a = Tensor::zeros({2, 3});
  REQUIRE_THROWS_WITH(matmul(a, Tensor::zeros({4, 2})),
                      Catch::Contains("matmul: a (2,3) and b (4,2) have inner dims 3 and 4"));
  REQUIRE_THROWS_WITH(matmul(Tensor::zeros({2, 2, 3}), Tensor::zeros({3, 3, 2})),
                      Catch::Contains("matmul: batch dims of a (2,2,3) and b (3,3,2) differ"));
  REQUIRE_THROWS_WITH(linear(a, Tensor::zeros({4, 5})),
                      Catch::Contains("linear: x is (2,3) but weight is (4,5)"));
  REQUIRE_THROWS_WITH(linear(a, Tensor::zeros({4, 3}), Tensor::zeros({5})),
                      Catch::Contains("linear: bias is (5) but weight has 4 outputs"));
}
