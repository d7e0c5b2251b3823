// Reductions (sum, mean): values, shapes, finite-difference gradients, bad input.
#include <catch2/catch.hpp>

#include "support/gradcheck.h"

using namespace tiller;
using testing::random_input;

using Inputs = std::vector<Tensor>;

TEST_CASE("sum and mean reduce over a dim or everything", "[reduce]") {
  Tensor x = Tensor::arange(24).reshape({2, 3, 4});
  REQUIRE(sum(x).item() == 276.f);
  REQUIRE(sum(x).shape() == Shape{});
  REQUIRE(sum(x, 1).shape() == Shape{2, 4});
  REQUIRE(sum(x, 1).to_vector() == std::vector<float>{12, 15, 18, 21, 48, 51, 54, 57});
  REQUIRE(sum(x, -1, true).shape() == Shape{2, 3, 1});
  REQUIRE(sum(x, -1, true).to_vector() == std::vector<float>{6, 22, 38, 54, 70, 86});
  REQUIRE(mean(x, 0).to_vector()[0] == 6.f);
  REQUIRE(mean(x).item() == 11.5f);
  Tensor r = random_input({3, 5, 7}, 7);
  for (int64_t d = 0; d < 3; ++d) {
    REQUIRE_GRADCHECK([d](const Inputs& v) { return sum(v[0], d); }, {r});
    REQUIRE_GRADCHECK([d](const Inputs& v) { return mean(v[0], d, true); }, {r});
  }
  REQUIRE_GRADCHECK([](const Inputs& v) { return mean(v[0]); }, {r});
}

TEST_CASE("reductions name a dim that is out of range", "[reduce]") {
  Tensor a = Tensor::zeros({2, 3});
  REQUIRE_THROWS_WITH(sum(a, 2), Catch::Contains("sum: dim 2 out of range for a 2-d tensor"));
}
