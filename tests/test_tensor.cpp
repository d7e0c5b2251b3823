// Tensor creation, conversion, views and error messages.
#include <catch2/catch.hpp>

#include "core/ops/ops.h"
#include "support/gradcheck.h"

using namespace tiller;

TEST_CASE("zeros, ones, full and arange hold the values they promise", "[tensor]") {
  REQUIRE(Tensor::zeros({2, 3}).to_vector() == std::vector<float>(6, 0.f));
  REQUIRE(Tensor::ones({4}).to_vector() == std::vector<float>(4, 1.f));
  REQUIRE(Tensor::full({2}, 2.5f).to_vector() == std::vector<float>{2.5f, 2.5f});
  REQUIRE(Tensor::arange(4).to_vector() == std::vector<float>{0, 1, 2, 3});
  Tensor ids = Tensor::arange(3, {.dtype = DType::i32});
  REQUIRE(ids.to_int_vector() == std::vector<int32_t>{0, 1, 2});
  REQUIRE(Tensor::zeros({2, 3}).str() == "Tensor(2,3) f32 cpu");
}

TEST_CASE("randn is reproducible from the seed and has the requested moments", "[tensor]") {
  Generator a(42), b(42), c(43);
  Tensor x = Tensor::randn({100000}, a, 1.f, 2.f);
  Tensor y = Tensor::randn({100000}, b, 1.f, 2.f);
  Tensor z = Tensor::randn({100000}, c, 1.f, 2.f);
  REQUIRE(x.to_vector() == y.to_vector());
  REQUIRE(x.to_vector() != z.to_vector());
  REQUIRE(a.offset == 100000);
  REQUIRE(mean(x).item() == Approx(1.f).margin(0.03));
  REQUIRE(mean(square(add_scalar(x, -1.f))).item() == Approx(4.f).epsilon(0.03));
  Tensor u = Tensor::rand({100000}, a, -1.f, 3.f);
  auto v = u.to_vector();
  REQUIRE(*std::min_element(v.begin(), v.end()) >= -1.f);
  REQUIRE(*std::max_element(v.begin(), v.end()) <= 3.f);
  REQUIRE(mean(u).item() == Approx(1.f).margin(0.03));
}

TEST_CASE("a generator draw continues where the previous draw stopped", "[tensor]") {
  Generator one(7), two(7);
  Tensor whole = Tensor::randn({10}, one);
  Tensor first = Tensor::randn({4}, two);
  Tensor second = Tensor::randn({6}, two);
  REQUIRE(concat({first, second}, 0).to_vector() == whole.to_vector());
}

TEST_CASE("bf16 conversion rounds to nearest even and round-trips exactly representable values",
          "[tensor]") {
  Tensor x = Tensor::from_vector({1.0f, -2.5f, 3.140625f, 1.00390625f, 65504.f}, {5});
  Tensor b = x.to(DType::bf16);
  REQUIRE(b.dtype() == DType::bf16);
  REQUIRE(b.nbytes() == 10);
  auto back = b.to(DType::f32).to_vector();
  REQUIRE(back[0] == 1.0f);
  REQUIRE(back[1] == -2.5f);
  REQUIRE(back[2] == 3.140625f);
  REQUIRE(back[3] == 1.0f);  // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: rounds to even (1)
  REQUIRE(back[4] == 65536.f);
}

TEST_CASE("reshape is a view sharing storage and -1 is inferred", "[tensor]") {
  Tensor x = Tensor::arange(12);
  Tensor y = x.reshape({3, -1});
  REQUIRE(y.shape() == Shape{3, 4});
  REQUIRE(y.data_ptr() == x.data_ptr());
  REQUIRE_THROWS_WITH(x.reshape({5, -1}), Catch::Contains("reshape: cannot view (12) as (5,-1)"));
}

TEST_CASE("item, size and from_vector report bad use with the offending values", "[tensor]") {
  REQUIRE_THROWS_WITH(Tensor::zeros({2}).item(),
                      Catch::Contains("item: tensor has 2 elements, shape (2)"));
  REQUIRE_THROWS_WITH(Tensor::zeros({2, 3}).size(2),
                      Catch::Contains("dim 2 out of range for shape (2,3)"));
  REQUIRE_THROWS_WITH(Tensor::from_vector(std::vector<float>{1, 2, 3}, {2, 2}),
                      Catch::Contains("3 values do not fill shape (2,2)"));
  REQUIRE_THROWS_WITH(Device::parse("tpu"), Catch::Contains("cannot parse 'tpu'"));
}

TEST_CASE("CUDA use without a device is a clear error", "[tensor]") {
  if (cuda_available()) return;  // exercised by the [cuda] suite instead
  REQUIRE_THROWS_WITH(Tensor::zeros({2}, {.device = Device::cuda()}),
                      Catch::Contains("cuda:0") && Catch::Contains("no CUDA device"));
}

TEST_CASE("clone copies, detach shares storage but not history", "[tensor]") {
  Tensor x = testing::random_input({3}, 1);
  Tensor c = x.clone();
  REQUIRE(c.data_ptr() != x.data_ptr());
  REQUIRE(c.to_vector() == x.to_vector());
  REQUIRE_FALSE(c.requires_grad());
  Tensor y = scale(x, 2.f);
  Tensor d = y.detach();
  REQUIRE(d.data_ptr() == y.data_ptr());
  REQUIRE_FALSE(d.requires_grad());
  REQUIRE(d.is_leaf());
}

TEST_CASE("printing shows shape, dtype, device and the first values", "[tensor]") {
  std::ostringstream os;
  os << Tensor::from_vector({1.f, 2.5f}, {2});
  REQUIRE(os.str() == "Tensor(2) f32 cpu [1, 2.5]");
}

TEST_CASE("an undefined tensor's dtype and device are a clear error, not a crash", "[tensor]") {
  Tensor undefined;
  REQUIRE_FALSE(undefined.defined());
  REQUIRE_THROWS_WITH(undefined.dtype(), Catch::Contains("Tensor::dtype: use of an undefined tensor"));
  REQUIRE_THROWS_WITH(undefined.device(),
                      Catch::Contains("Tensor::device: use of an undefined tensor"));
  REQUIRE_THROWS_WITH(undefined.shape(), Catch::Contains("undefined tensor"));
}
