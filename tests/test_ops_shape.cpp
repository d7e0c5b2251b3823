// Layout ops (transpose, permute, slice, concat, reshape): values, finite-difference gradients, bad input.
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
