// The world communicator's collectives against hand-computed results, on whatever world the suite
// was launched with (mpirun -np 2 in ctest, or one process). Rank r contributes values built
// from r, so every expected number below is a closed form in the rank and the world size.
#include <catch2/catch.hpp>

#include "dist/dist_support.h"
#include "kernels/error.h"

using namespace tiller;
using tiller::testing::world;

TEST_CASE("The world matches the launcher's environment", "[dist]") {
  const dist::LaunchInfo launch = dist::launch_info_from_environment();
  REQUIRE(world()->rank() == launch.rank);
  REQUIRE(world()->world_size() == launch.world_size);
  REQUIRE(std::string(world()->backend()) == (launch.world_size > 1 ? "mpi" : "single"));
}

TEST_CASE("all_reduce sums and averages f32 and sums i32 over the ranks", "[dist]") {
  const int n = world()->world_size(), r = world()->rank();
  Tensor x = Tensor::from_vector({1.f + r, 10.f * r, -0.5f}, {3});
  world()->all_reduce(x, dist::ReduceOp::sum);
  // sum over r of (1 + r) = n + n(n-1)/2; of 10 r = 10 n(n-1)/2; of -0.5 = -0.5 n.
  REQUIRE(x.to_vector() == std::vector<float>{n + n * (n - 1) / 2.f, 5.f * n * (n - 1), -0.5f * n});

  Tensor y = Tensor::from_vector({2.f * r, 3.f}, {2});
  world()->all_reduce(y, dist::ReduceOp::average);
  REQUIRE(y.to_vector() == std::vector<float>{static_cast<float>(n - 1), 3.f});

  Tensor ints = Tensor::from_ints({r, 7}, {2});
  world()->all_reduce(ints, dist::ReduceOp::sum);
  REQUIRE(ints.to_int_vector() == std::vector<int32_t>{n * (n - 1) / 2, 7 * n});
}

TEST_CASE("reduce_scatter gives each rank its chunk of the sum; all_gather concatenates",
          "[dist]") {
  const int n = world()->world_size(), r = world()->rank();
  // Rank r holds, for chunk c and element e (2 per chunk): 100 c + e + r.
  std::vector<float> values;
  for (int c = 0; c < n; ++c)
    for (int e = 0; e < 2; ++e) values.push_back(100.f * c + e + r);
  Tensor input = Tensor::from_vector(values, {2 * n});
  Tensor chunk = Tensor::zeros({2});
  world()->reduce_scatter(input, chunk, dist::ReduceOp::sum);
  const float rank_sum = n * (n - 1) / 2.f;
  REQUIRE(chunk.to_vector() ==
          std::vector<float>{100.f * r * n + rank_sum, 100.f * r * n + n + rank_sum});

  Tensor mine = Tensor::from_vector({static_cast<float>(r), 0.5f}, {2});
  Tensor all = Tensor::zeros({2 * n});
  world()->all_gather(mine, all);
  std::vector<float> expected;
  for (int q = 0; q < n; ++q) expected.insert(expected.end(), {static_cast<float>(q), 0.5f});
  REQUIRE(all.to_vector() == expected);
}

TEST_CASE("broadcast copies the root's tensor; barrier returns on every rank", "[dist]") {
  const int r = world()->rank();
  Tensor x = Tensor::from_vector({static_cast<float>(r) + 1.f, -2.f}, {2});
  world()->broadcast(x, 0);
  REQUIRE(x.to_vector() == std::vector<float>{1.f, -2.f});
  world()->barrier();
  REQUIRE(world()->all_reduce_value(1.0, dist::ReduceOp::sum) == world()->world_size());
}

TEST_CASE("Collectives reject mismatched shapes, foreign devices and bad roots by name", "[dist]") {
  const int n = world()->world_size();
  REQUIRE_THROWS_WITH(
      world()->reduce_scatter(Tensor::zeros({2 * n + 1}), Tensor::zeros({2}), dist::ReduceOp::sum),
      Catch::Contains("reduce_scatter") && Catch::Contains("world_size"));
  REQUIRE_THROWS_WITH(world()->all_gather(Tensor::zeros({2}), Tensor::zeros({2 * n + 1})),
                      Catch::Contains("all_gather"));
  REQUIRE_THROWS_WITH(world()->broadcast(Tensor::zeros({1}), n), Catch::Contains("root"));
  REQUIRE_THROWS_WITH(world()->all_reduce(Tensor(), dist::ReduceOp::sum),
                      Catch::Contains("undefined"));
  if (n > 1) {
    REQUIRE_THROWS_WITH(
        world()->all_reduce(Tensor::zeros({2}, {.dtype = DType::bf16}), dist::ReduceOp::sum),
        Catch::Contains("bf16"));
    REQUIRE_THROWS_WITH(world()->all_reduce(Tensor::from_ints({1}, {1}), dist::ReduceOp::average),
                        Catch::Contains("average"));
  }
}
