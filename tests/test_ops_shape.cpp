// Layout ops and matmul/linear: values, finite-difference gradients, bad input.
#include <catch2/catch.hpp>

#include "support/gradcheck.h"

using namespace tiller;
using testing::random_input;

using Inputs = std::vector<Tensor>;

TEST_CASE("transpose and permute move elements and invert in the backward", "[shape]") {
  Tensor x = Tensor::arange(6).reshape({2, 3});
  REQUIRE(transpose(x, 0, 1).shape() == Shape{3, 2});
  REQUIRE(transpose(x, 0, 1).to_vector() == std::vector<float>{0, 3, 1, 4, 2, 5});
  Tensor r = random_input({2, 3, 4, 5}, 1);
  Tensor p = permute(r, {0, 2, 1, 3});
  REQUIRE(p.shape() == Shape{2, 4, 3, 5});
  REQUIRE(permute(p, {0, 2, 1, 3}).to_vector() == r.to_vector());
  REQUIRE_GRADCHECK([](const Inputs& v) { return permute(v[0], {3, 1, 0, 2}); }, {r});
  REQUIRE_GRADCHECK([](const Inputs& v) { return transpose(v[0], -1, -2); }, {r});
}

TEST_CASE("slice copies a range along any dim and concat joins along any dim", "[shape]") {
  Tensor x = Tensor::arange(24).reshape({2, 3, 4});
  Tensor s = slice(x, 1, 1, 3);
  REQUIRE(s.shape() == Shape{2, 2, 4});
  REQUIRE(s.to_vector()[0] == 4.f);
  REQUIRE(s.to_vector()[8] == 16.f);
  Tensor parts = concat({slice(x, 2, 0, 1), slice(x, 2, 1, 4)}, 2);
  REQUIRE(parts.to_vector() == x.to_vector());
  Tensor r = random_input({3, 5, 7}, 2);
  REQUIRE_GRADCHECK([](const Inputs& v) { return slice(v[0], 1, 1, 4); }, {r});
  REQUIRE_GRADCHECK([](const Inputs& v) { return slice(v[0], 2, 6, 7); }, {r});
  Tensor a = random_input({3, 2, 7}, 3), b = random_input({3, 5, 7}, 4);
  REQUIRE_GRADCHECK([](const Inputs& v) { return concat({v[0], v[1], v[0]}, 1); }, {a, b});
}

TEST_CASE("reshape, squeeze and unsqueeze pass gradients through", "[shape]") {
  Tensor r = random_input({3, 4}, 5);
  REQUIRE(unsqueeze(r, 1).shape() == Shape{3, 1, 4});
  REQUIRE(squeeze(unsqueeze(r, -1), -1).shape() == Shape{3, 4});
  REQUIRE_GRADCHECK([](const Inputs& v) { return mul(v[0].reshape({2, 6}), v[0].reshape({2, 6})); },
                    {r});
  REQUIRE_THROWS_WITH(squeeze(r, 0), Catch::Contains("squeeze: dim 0 of (3,4) has size 3, not 1"));
}

TEST_CASE("layout ops reject out-of-range arguments by name", "[shape]") {
  Tensor x = Tensor::zeros({2, 3});
  REQUIRE_THROWS_WITH(slice(x, 1, 2, 5),
                      Catch::Contains("slice: [2, 5) is not inside dim 1 of size 3"));
  REQUIRE_THROWS_WITH(permute(x, {0, 0}), Catch::Contains("permute: dim 0 repeated"));
  REQUIRE_THROWS_WITH(concat({x, Tensor::zeros({3, 3})}, 1),
                      Catch::Contains("concat: tensor 1 is (3,3)"));
  REQUIRE_THROWS_WITH(concat({}, 0), Catch::Contains("concat: no tensors given"));
}

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
