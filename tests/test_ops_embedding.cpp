// embedding: row gather of any id shape, the scatter-add backward (repeated ids sum, unused rows
// get 0), thread-count independence, finite differences, and bad-id messages.
#include <catch2/catch.hpp>

#include "core/ops/ops.h"
#include "support/gradcheck.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace tiller;

TEST_CASE("embedding copies the weight row of each id into an (..., C) output", "[embedding]") {
  const int64_t V = 7, C = 5;
  Tensor weight = testing::random_input({V, C}, 1, 1.f, false);
  Tensor ids = Tensor::from_ints({6, 0, 3, 3, 1, 6}, {2, 3});
  Tensor out = embedding(ids, weight);
  REQUIRE(out.shape() == Shape{2, 3, C});
  std::vector<float> w = weight.to_vector(), o = out.to_vector();
  std::vector<int32_t> id = ids.to_int_vector();
  for (size_t n = 0; n < id.size(); ++n)
    for (int64_t c = 0; c < C; ++c) REQUIRE(o[n * C + c] == w[id[n] * C + c]);
}

TEST_CASE("embedding backward sums the gradient rows of repeated ids and zeroes unused ids",
          "[embedding]") {
  const int64_t V = 6, C = 3;
  Tensor weight = testing::random_input({V, C}, 2);
  Tensor ids = Tensor::from_ints({2, 4, 2, 2}, {4});
  Tensor dout = Tensor::from_vector({1, 2, 3, 10, 20, 30, 100, 200, 300, 1000, 2000, 3000}, {4, C});
  embedding(ids, weight).backward(dout);
  std::vector<float> grad = weight.grad().to_vector();
  std::vector<float> expected(V * C, 0.f);
  for (int64_t c = 0; c < C; ++c) {
    expected[2 * C + c] = 1101.f * static_cast<float>(c + 1);  // rows 0, 2, 3 of dout
    expected[4 * C + c] = 10.f * static_cast<float>(c + 1);    // row 1
  }
  REQUIRE(grad == expected);
}

TEST_CASE("embedding gradient matches finite differences", "[embedding]") {
  Tensor ids = Tensor::from_ints({0, 3, 12, 3, 5, 0, 7}, {7});
  REQUIRE_GRADCHECK([&](const std::vector<Tensor>& in) { return embedding(ids, in[0]); },
                    {testing::random_input({13, 11}, 3)});
}

#if defined(_OPENMP)
TEST_CASE("embedding backward does not depend on the thread count", "[embedding]") {
  const int64_t V = 301, C = 97, N = 1999;
  std::vector<int32_t> id(N);
  for (int64_t n = 0; n < N; ++n) id[n] = static_cast<int32_t>((n * n + 7 * n) % V);
  Tensor ids = Tensor::from_ints(id, {N});
  Tensor dout = testing::random_input({N, C}, 4, 1.f, false);
  auto gradient = [&](int threads) {
    int previous = omp_get_max_threads();
    omp_set_num_threads(threads);
    Tensor weight = testing::random_input({V, C}, 5);
    embedding(ids, weight).backward(dout);
    omp_set_num_threads(previous);
    return weight.grad().to_vector();
  };
  REQUIRE(gradient(1) == gradient(3));
}
#endif

TEST_CASE("embedding rejects out-of-range ids and bad operands by name", "[embedding]") {
  Tensor weight = Tensor::zeros({10, 4});
  REQUIRE_THROWS_WITH(embedding(Tensor::from_ints({1, 10, 2}, {3}), weight),
                      Catch::Contains("embedding: ids[1] = 10 is out of range [0, 10)"));
  REQUIRE_THROWS_WITH(embedding(Tensor::from_ints({1, 2, -3}, {3}), weight),
                      Catch::Contains("embedding: ids[2] = -3 is out of range [0, 10)"));
  REQUIRE_THROWS_WITH(embedding(Tensor::zeros({3}), weight),
                      Catch::Contains("embedding: ids must be i32 token ids, got f32 (3)"));
  REQUIRE_THROWS_WITH(embedding(Tensor::from_ints({1}, {1}), Tensor::zeros({10})),
                      Catch::Contains("embedding: weight must be (V, C), got (10)"));
}
