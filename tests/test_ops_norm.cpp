// layernorm and rmsnorm: normalisation statistics, agreement with the same formula written in
// elementary ops, finite-difference gradients for every input, the fused residual kernel,
// thread-count independence of dweight/dbias, and the messages of bad inputs.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/ops/ops.h"
#include "kernels/layernorm.h"
#include "support/gradcheck.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace tiller;

namespace {

// layernorm written with elementary ops: the specification the fused op must match.
Tensor layernorm_reference(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  Tensor centred = sub(x, mean(x, -1, true));
  Tensor variance = mean(square(centred), -1, true);
  Tensor normalised = div(centred, sqrt(add_scalar(variance, eps)));
  Tensor y = mul(normalised, weight);
  return bias.defined() ? add(y, bias) : y;
}

Tensor rmsnorm_reference(const Tensor& x, const Tensor& weight, float eps) {
  Tensor rms = sqrt(add_scalar(mean(square(x), -1, true), eps));
  return mul(div(x, rms), weight);
}

}  // namespace

TEST_CASE("layernorm with unit weight and zero bias gives rows of mean 0 and variance 1",
          "[norm]") {
  const int64_t C = 13;
  Tensor x = testing::random_input({3, 7, C}, 1, 3.f, false);
  x = add_scalar(x, 5.f);  // an offset the normalisation must remove
  Tensor y = layernorm(x, Tensor::ones({C}), Tensor::zeros({C}), 1e-5f);
  REQUIRE(y.shape() == x.shape());
  std::vector<float> v = y.to_vector();
  for (int64_t row = 0; row < 3 * 7; ++row) {
    double row_sum = 0, row_squares = 0;
    for (int64_t c = 0; c < C; ++c) row_sum += v[row * C + c];
    double row_mean = row_sum / C;
    for (int64_t c = 0; c < C; ++c) row_squares += std::pow(v[row * C + c] - row_mean, 2);
    REQUIRE(row_mean == Approx(0.0).margin(1e-5));
    REQUIRE(row_squares / C == Approx(1.0).epsilon(1e-3));
  }
}

TEST_CASE("layernorm of a hand-sized row scales by 1/std then applies weight and bias", "[norm]") {
  // x = (1, 2, 3, 4): mean 2.5, biased variance 1.25.
  Tensor x = Tensor::from_vector({1.f, 2.f, 3.f, 4.f}, {1, 4});
  Tensor weight = Tensor::from_vector({1.f, 2.f, -1.f, 0.5f}, {4});
  Tensor bias = Tensor::from_vector({0.f, 1.f, 0.f, -1.f}, {4});
  std::vector<float> y = layernorm(x, weight, bias, 0.f).to_vector();
  float inv_std = 1.f / std::sqrt(1.25f);
  REQUIRE(y[0] == Approx(-1.5f * inv_std * 1.f + 0.f));
  REQUIRE(y[1] == Approx(-0.5f * inv_std * 2.f + 1.f));
  REQUIRE(y[2] == Approx(0.5f * inv_std * -1.f + 0.f));
  REQUIRE(y[3] == Approx(1.5f * inv_std * 0.5f - 1.f));
}

TEST_CASE("layernorm matches the formula in elementary ops, with and without bias", "[norm]") {
  Tensor x = testing::random_input({3, 7, 13}, 2, 1.f, false);
  Tensor weight = testing::random_input({13}, 3, 1.f, false);
  Tensor bias = testing::random_input({13}, 4, 1.f, false);
  REQUIRE_CLOSE(layernorm(x, weight, bias, 1e-5f), layernorm_reference(x, weight, bias, 1e-5f),
                1e-4f, 1e-5f);
  REQUIRE_CLOSE(layernorm(x, weight, Tensor(), 1e-5f),
                layernorm_reference(x, weight, Tensor(), 1e-5f), 1e-4f, 1e-5f);
}

TEST_CASE("layernorm gradients for x, weight and bias match finite differences", "[norm]") {
  Tensor x = testing::random_input({3, 7, 13}, 5);
  Tensor weight = testing::random_input({13}, 6);
  Tensor bias = testing::random_input({13}, 7);
  REQUIRE_GRADCHECK(
      [](const std::vector<Tensor>& in) { return layernorm(in[0], in[1], in[2], 1e-5f); },
      {x, weight, bias});
}

TEST_CASE("layernorm without bias has gradients for x and weight", "[norm]") {
  Tensor x = testing::random_input({5, 11}, 8);
  Tensor weight = testing::random_input({11}, 9);
  REQUIRE_GRADCHECK(
      [](const std::vector<Tensor>& in) { return layernorm(in[0], in[1], Tensor(), 1e-5f); },
      {x, weight});
}

TEST_CASE("layernorm gives a gradient only to the inputs that require one", "[norm]") {
  Tensor x = testing::random_input({4, 6}, 10, 1.f, false);
  Tensor weight = testing::random_input({6}, 11);
  Tensor bias = testing::random_input({6}, 12, 1.f, false);
  sum(layernorm(x, weight, bias)).backward();
  REQUIRE(weight.grad().defined());
  REQUIRE_FALSE(x.grad().defined());
  REQUIRE_FALSE(bias.grad().defined());
}

TEST_CASE("the fused residual layernorm kernel equals add followed by layernorm", "[norm]") {
  const int64_t N = 21, C = 13;
  const float eps = 1e-5f;
  Tensor x = testing::random_input({N, C}, 13, 1.f, false);
  Tensor residual = testing::random_input({N, C}, 14, 1.f, false);
  Tensor weight = testing::random_input({C}, 15, 1.f, false);
  Tensor bias = testing::random_input({C}, 16, 1.f, false);
  Tensor residual_out = Tensor::full({N, C}, NAN), y = Tensor::full({N, C}, NAN);
  Tensor mean = Tensor::full({N}, NAN), rstd = Tensor::full({N}, NAN);
  kernels::residual_layernorm_forward<kernels::Backend::cpu>(
      x.data_ptr(), residual.data_ptr(), residual_out.data_ptr(), weight.data_ptr(),
      bias.data_ptr(), y.data_ptr(), mean.data<float>(), rstd.data<float>(), N, C, eps,
      DType::f32);
  Tensor summed = add(x, residual);
  REQUIRE(residual_out.to_vector() == summed.to_vector());
  REQUIRE_CLOSE(y, layernorm(summed, weight, bias, eps), 1e-5f, 1e-6f);
  REQUIRE_CLOSE(mean.reshape({N, 1}), tiller::mean(summed, -1, true), 1e-5f, 1e-6f);
}

TEST_CASE("rmsnorm divides by the root mean square and applies the weight", "[norm]") {
  // x = (3, 4): mean of squares 12.5.
  Tensor x = Tensor::from_vector({3.f, 4.f}, {1, 2});
  Tensor weight = Tensor::from_vector({2.f, -1.f}, {2});
  std::vector<float> y = rmsnorm(x, weight, 0.f).to_vector();
  REQUIRE(y[0] == Approx(3.f / std::sqrt(12.5f) * 2.f));
  REQUIRE(y[1] == Approx(4.f / std::sqrt(12.5f) * -1.f));

  Tensor xr = testing::random_input({3, 7, 13}, 17, 1.f, false);
  Tensor wr = testing::random_input({13}, 18, 1.f, false);
  REQUIRE_CLOSE(rmsnorm(xr, wr, 1e-6f), rmsnorm_reference(xr, wr, 1e-6f), 1e-4f, 1e-5f);
}

TEST_CASE("rmsnorm gradients for x and weight match finite differences", "[norm]") {
  Tensor x = testing::random_input({3, 7, 13}, 19);
  Tensor weight = testing::random_input({13}, 20);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return rmsnorm(in[0], in[1], 1e-6f); },
                    {x, weight});
}

#if defined(_OPENMP)
TEST_CASE("norm weight and bias gradients do not depend on the thread count", "[norm]") {
  // Large enough that the kernels actually split across threads.
  Tensor x = testing::random_input({257, 129}, 21, 1.f, false);
  Tensor dy = testing::random_input({257, 129}, 22, 1.f, false);
  auto gradients = [&](int threads) {
    int previous = omp_get_max_threads();
    omp_set_num_threads(threads);
    Tensor weight = testing::random_input({129}, 23);
    Tensor bias = testing::random_input({129}, 24);
    layernorm(x, weight, bias).backward(dy);
    Tensor rms_weight = testing::random_input({129}, 25);
    rmsnorm(x, rms_weight).backward(dy);
    omp_set_num_threads(previous);
    return std::vector<std::vector<float>>{weight.grad().to_vector(), bias.grad().to_vector(),
                                           rms_weight.grad().to_vector()};
  };
  REQUIRE(gradients(1) == gradients(3));
}
#endif

TEST_CASE("layernorm and rmsnorm reject mismatched parameters with the shapes in the message",
          "[norm]") {
  Tensor x = Tensor::zeros({2, 64});
  REQUIRE_THROWS_WITH(layernorm(x, Tensor::ones({32}), Tensor()),
                      Catch::Contains("layernorm: weight is (32) but x has last dim 64"));
  REQUIRE_THROWS_WITH(layernorm(x, Tensor::ones({64}), Tensor::zeros({63})),
                      Catch::Contains("layernorm: bias is (63) but x has last dim 64"));
  REQUIRE_THROWS_WITH(rmsnorm(x, Tensor::ones({64, 1})),
                      Catch::Contains("rmsnorm: weight is (64,1) but x has last dim 64"));
  REQUIRE_THROWS_WITH(layernorm(Tensor::zeros({2, 4}, {.dtype = DType::i32}), Tensor::ones({4}),
                                Tensor()),
                      Catch::Contains("layernorm: x must be floating point"));
  REQUIRE_THROWS_WITH(layernorm(x, Tensor::ones({64}), Tensor(), -1.f),
                      Catch::Contains("layernorm: eps must be >= 0, got -1"));
  REQUIRE_THROWS_WITH(rmsnorm(Tensor::zeros({3, 0}), Tensor::ones({0})),
                      Catch::Contains("rmsnorm: x must have a non-empty last dim, got (3,0)"));
}
