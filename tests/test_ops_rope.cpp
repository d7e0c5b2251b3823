// rope: hand-computed rotate-half values, the rotation's algebra (identity at position 0,
// norm preservation, inverse, relative-position property), gradients and input validation.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/ops/ops.h"
#include "kernels/embedding.h"
#include "support/gradcheck.h"

using namespace tiller;

namespace {

// Euclidean norm of each (b, h, t) vector of x (B, H, T, D), flattened.
std::vector<double> row_norms(const Tensor& x) {
  std::vector<float> v = x.to_vector();
  int64_t D = x.size(3);
  std::vector<double> norms;
  for (size_t row = 0; row * D < v.size(); ++row) {
    double acc = 0;
    for (int64_t d = 0; d < D; ++d) acc += double(v[row * D + d]) * v[row * D + d];
    norms.push_back(std::sqrt(acc));
  }
  return norms;
}

Tensor raw_rope(const Tensor& x, const Tensor& positions, float theta, bool inverse) {
  Tensor out = Tensor::empty(x.shape());
  kernels::rope<kernels::Backend::cpu>(x.data_ptr(), positions.data<int32_t>(), out.data_ptr(),
                                       x.size(0), x.size(1), x.size(2), x.size(3), theta, inverse,
                                       DType::f32);
  return out;
}

}  // namespace

TEST_CASE("rope rotates the pairs (x[i], x[i + D/2]) by pos * theta^(-2i/D)", "[rope]") {
  // D = 4, theta = 100: pair 0 turns by pos rad, pair 1 by pos / 10 rad.
  Tensor x = Tensor::from_vector({1.f, 2.f, 3.f, 4.f, 1.f, 2.f, 3.f, 4.f}, {1, 1, 2, 4});
  Tensor positions = Tensor::from_ints({1, 2}, {1, 2});
  std::vector<float> out = rope(x, positions, 100.f).to_vector();
  // Position 1: cos 1 = 0.5403023, sin 1 = 0.8414710, cos 0.1 = 0.9950042, sin 0.1 = 0.0998334.
  CHECK(out[0] == Approx(1 * 0.5403023 - 3 * 0.8414710));  // -1.9841107
  CHECK(out[1] == Approx(2 * 0.9950042 - 4 * 0.0998334));  //  1.5906748
  CHECK(out[2] == Approx(3 * 0.5403023 + 1 * 0.8414710));  //  2.4623779
  CHECK(out[3] == Approx(4 * 0.9950042 + 2 * 0.0998334));  //  4.1796836
  // Position 2: cos 2 = -0.4161468, sin 2 = 0.9092974, cos 0.2 = 0.9800666, sin 0.2 = 0.1986693.
  CHECK(out[4] == Approx(1 * -0.4161468 - 3 * 0.9092974));
  CHECK(out[5] == Approx(2 * 0.9800666 - 4 * 0.1986693));
  CHECK(out[6] == Approx(3 * -0.4161468 + 1 * 0.9092974));
  CHECK(out[7] == Approx(4 * 0.9800666 + 2 * 0.1986693));
}

TEST_CASE("rope at position 0 is the identity", "[rope]") {
  Tensor x = testing::random_input({2, 3, 4, 8}, 1, 1.f, false);
  Tensor out = rope(x, Tensor::from_ints({0, 0, 0, 0}, {4}));
  REQUIRE(out.to_vector() == x.to_vector());
}

TEST_CASE("rope preserves the norm of every head vector", "[rope]") {
  Tensor x = testing::random_input({2, 3, 5, 8}, 2, 1.f, false);
  Tensor positions = Tensor::from_ints({0, 3, 17, 250, 4095, 7, 1, 1000, 33, 12}, {2, 5});
  std::vector<double> before = row_norms(x), after = row_norms(rope(x, positions));
  REQUIRE(after.size() == before.size());
  for (size_t i = 0; i < before.size(); ++i) REQUIRE(after[i] == Approx(before[i]).epsilon(1e-5));
}

TEST_CASE("rope with inverse = true undoes the forward rotation", "[rope]") {
  Tensor x = testing::random_input({2, 2, 6, 10}, 3, 1.f, false);
  // A span wider than B*T exercises the per-token angle table as well as the per-position one.
  for (auto values : {std::vector<int32_t>{0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5},
                      std::vector<int32_t>{-5, 90000, 7, 12, 3, 3, 1 << 20, 0, 1, 2, 64, 8}}) {
    Tensor positions = Tensor::from_ints(values, {2, 6});
    Tensor rotated = raw_rope(x, positions, 10000.f, false);
    REQUIRE(testing::compare(rotated, x, 0.f, 1e-3f) != "");  // it did rotate
    REQUIRE_CLOSE(raw_rope(rotated, positions, 10000.f, true), x, 1e-5f, 1e-5f);
  }
}

TEST_CASE("rope makes q . k depend only on the distance between positions", "[rope]") {
  Tensor q = testing::random_input({1, 1, 1, 16}, 4, 1.f, false);
  Tensor k = testing::random_input({1, 1, 1, 16}, 5, 1.f, false);
  auto score = [&](int32_t query_pos, int32_t key_pos) {
    Tensor rq = rope(q, Tensor::from_ints({query_pos}, {1}));
    Tensor rk = rope(k, Tensor::from_ints({key_pos}, {1}));
    return sum(rq * rk).item();
  };
  REQUIRE(score(9, 4) == Approx(score(5, 0)).margin(1e-5));
  REQUIRE(score(107, 100) == Approx(score(7, 0)).margin(1e-4));
  REQUIRE(score(9, 4) != Approx(score(9, 5)).margin(1e-3));
}

TEST_CASE("rope with shared (T) positions equals (B, T) positions repeated", "[rope]") {
  Tensor x = testing::random_input({3, 2, 4, 6}, 6, 1.f, false);
  Tensor shared = rope(x, Tensor::from_ints({5, 6, 7, 8}, {4}));
  Tensor per_batch = rope(x, Tensor::from_ints({5, 6, 7, 8, 5, 6, 7, 8, 5, 6, 7, 8}, {3, 4}));
  REQUIRE(shared.to_vector() == per_batch.to_vector());
}

TEST_CASE("each token turns by its own position, however far apart positions are", "[rope]") {
  // The kernel tabulates angles per distinct position when positions are dense and per token
  // when they are sparse; one-token calls always take the dense path.
  Tensor x = testing::random_input({2, 3, 2, 8}, 8, 1.f, false);
  std::vector<int32_t> values = {0, 1 << 20, -7, 5};  // (B, T) = (2, 2)
  Tensor together = rope(x, Tensor::from_ints(values, {2, 2}));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 2; ++t) {
      INFO("b " << b << " t " << t);
      auto token = [&](const Tensor& whole) {
        return slice(slice(whole, 0, b, b + 1), 2, t, t + 1);
      };
      Tensor alone = rope(token(x), Tensor::from_ints({values[b * 2 + t]}, {1}));
      REQUIRE_CLOSE(token(together), alone, 1e-6f, 1e-7f);
    }
}

TEST_CASE("rope gradient matches finite differences", "[rope]") {
  Tensor per_batch = Tensor::from_ints({0, 1, 2, 3, 4, 9, 2, 30, 31, 32}, {2, 5});
  Tensor shared = Tensor::from_ints({3, 4, 5, 6, 7}, {5});
  for (const Tensor& positions : {per_batch, shared}) {
    INFO("positions " << shape_str(positions.shape()));
    Tensor x = testing::random_input({2, 3, 5, 6}, 7);
    auto f = [&](const std::vector<Tensor>& in) { return rope(in[0], positions, 500.f); };
    REQUIRE_GRADCHECK(f, {x});
  }
}

TEST_CASE("rope rejects bad inputs with messages naming the shapes", "[rope]") {
  Tensor x = Tensor::zeros({2, 3, 5, 6});
  Tensor positions = Tensor::from_ints({0, 1, 2, 3, 4}, {5});
  REQUIRE_THROWS_WITH(rope(Tensor::zeros({2, 3, 5, 7}), positions),
                      Catch::Contains("rope: head dim D = 7 must be even"));
  REQUIRE_THROWS_WITH(rope(Tensor::zeros({3, 5, 6}), positions),
                      Catch::Contains("rope: x must be (B, H, T, D), got (3,5,6)"));
  REQUIRE_THROWS_WITH(rope(x, Tensor::zeros({5})),
                      Catch::Contains("rope: positions must be i32, got f32 (5)"));
  REQUIRE_THROWS_WITH(rope(x, Tensor::from_ints({0, 1, 2, 3}, {4})),
                      Catch::Contains("rope: positions are (4) but x is (2,3,5,6)"));
  REQUIRE_THROWS_WITH(rope(x, Tensor::from_ints({0, 1, 2, 3, 4}, {1, 5})),
                      Catch::Contains("rope: positions are (1,5) but x is (2,3,5,6)"));
  REQUIRE_THROWS_WITH(rope(x, positions, 0.f), Catch::Contains("rope: theta must be positive"));
}
