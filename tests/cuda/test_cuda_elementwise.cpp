// [cuda] Elementwise, reduction, layout and matmul ops on CUDA against the CPU backend.
//
// Every op runs forward and backward through autograd on both backends (cuda_parity.h), in f32
// (tolerance ~1e-5) and bf16 (~2e-2), at shapes that are not multiples of any block, pack or tile
// size: (3, 7, 13) for the vector paths' scalar tails, (5, 1000) for the grid-stride loops.
// Random fills and dropout must reproduce the CPU's numbers, since both draw from
// kernels/random.h by element index.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "core/ops/ops.h"
#include "cuda_parity.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"

using namespace tiller;
using namespace tiller::cuda_testing;

namespace {

const std::vector<Shape>& odd_shapes() {
  static const std::vector<Shape> shapes = {{3, 7, 13}, {5, 1000}, {1}, {4099}};
  return shapes;
}

const std::vector<DType>& float_dtypes() {
  static const std::vector<DType> dtypes = {DType::f32, DType::bf16};
  return dtypes;
}

// Inputs in (0.5, ~3.5): valid for log and sqrt, and away from the kinks of abs/relu/clamp
// where a bf16 rounding could flip the branch taken.
Tensor positive_input(const Shape& shape, uint64_t seed, DType dtype) {
  return add_scalar(abs(exact_input(shape, seed, DType::f32)), 0.5f).to(dtype).to(DType::f32);
}

}  // namespace

TEST_CASE("CUDA binary ops with broadcasting match the CPU forward and backward",
          "[cuda][elementwise]") {
  struct Case {
    Shape a, b;
  };
  const std::vector<Case> cases = {{{3, 7, 13}, {3, 7, 13}},  // dense: the vector path
                                   {{3, 7, 13}, {13}},        // bias-like broadcast
                                   {{3, 1, 13}, {7, 1}},      // both sides broadcast
                                   {{5, 1000}, {5, 1}},
                                   {{4099}, {1}}};
  const std::vector<std::pair<const char*, OpFn>> ops = {
      {"add", [](const std::vector<Tensor>& in) { return add(in[0], in[1]); }},
      {"sub", [](const std::vector<Tensor>& in) { return sub(in[0], in[1]); }},
      {"mul", [](const std::vector<Tensor>& in) { return mul(in[0], in[1]); }},
      {"div", [](const std::vector<Tensor>& in) { return div(in[0], in[1]); }},
      {"maximum", [](const std::vector<Tensor>& in) { return maximum(in[0], in[1]); }},
      {"minimum", [](const std::vector<Tensor>& in) { return minimum(in[0], in[1]); }},
  };
  for (DType dtype : float_dtypes())
    for (const auto& [name, op] : ops)
      for (const Case& c : cases) {
        DYNAMIC_SECTION(name << " " << shape_str(c.a) << " with " << shape_str(c.b) << " "
                             << dtype_name(dtype)) {
          Tensor a = exact_input(c.a, 1, dtype);
          Tensor b = positive_input(c.b, 2, dtype);  // div never divides by ~0
          require_op_parity(op, {a, b}, dtype, default_tolerance(dtype));
        }
      }
}

TEST_CASE("CUDA unary ops and activations match the CPU forward and backward",
          "[cuda][elementwise]") {
  using Unary = Tensor (*)(const Tensor&);
  const std::vector<std::pair<const char*, Unary>> ops = {
      {"neg", neg},         {"exp", exp},   {"log", log},         {"sqrt", sqrt},
      {"square", square},   {"abs", abs},   {"tanh", tanh},       {"sigmoid", sigmoid},
      {"logsigmoid", logsigmoid}, {"relu", relu}, {"gelu", gelu}, {"silu", silu}};
  for (DType dtype : float_dtypes())
    for (const auto& [name, op] : ops)
      for (const Shape& shape : odd_shapes()) {
        DYNAMIC_SECTION(name << " " << shape_str(shape) << " " << dtype_name(dtype)) {
          bool needs_positive = std::string(name) == "log" || std::string(name) == "sqrt";
          Tensor x = needs_positive ? positive_input(shape, 3, dtype) : exact_input(shape, 3, dtype);
          Unary fn = op;
          require_op_parity([fn](const std::vector<Tensor>& in) { return fn(in[0]); }, {x}, dtype,
                            default_tolerance(dtype));
        }
      }
}

TEST_CASE("CUDA scale, add_scalar, clamp and swiglu match the CPU forward and backward",
          "[cuda][elementwise]") {
  for (DType dtype : float_dtypes())
    for (const Shape& shape : odd_shapes()) {
      DYNAMIC_SECTION(shape_str(shape) << " " << dtype_name(dtype)) {
        Tolerance tol = default_tolerance(dtype);
        Tensor x = exact_input(shape, 4, dtype), y = exact_input(shape, 5, dtype);
        require_op_parity([](const std::vector<Tensor>& in) { return scale(in[0], -1.75f); }, {x},
                          dtype, tol);
        require_op_parity([](const std::vector<Tensor>& in) { return add_scalar(in[0], 0.3f); },
                          {x}, dtype, tol);
        require_op_parity([](const std::vector<Tensor>& in) { return clamp(in[0], -0.6f, 0.8f); },
                          {x}, dtype, tol);
        require_op_parity([](const std::vector<Tensor>& in) { return swiglu(in[0], in[1]); },
                          {x, y}, dtype, tol);
      }
    }
}

TEST_CASE("CUDA gradient accumulation sums the gradients of a tensor used twice",
          "[cuda][elementwise]") {
  for (DType dtype : float_dtypes()) {
    DYNAMIC_SECTION(dtype_name(dtype)) {
      Tensor x = exact_input({5, 1000}, 6, dtype);
      require_op_parity(
          [](const std::vector<Tensor>& in) { return add(mul(in[0], in[0]), tanh(in[0])); }, {x},
          dtype, default_tolerance(dtype));
    }
  }
}

TEST_CASE("CUDA fills and dtype casts give the CPU's values", "[cuda][elementwise]") {
  for (DType dtype : {DType::f32, DType::bf16, DType::i32}) {
    DYNAMIC_SECTION(dtype_name(dtype)) {
      Tensor filled = Tensor::full({3, 7, 13}, -2.75f, {.dtype = dtype, .device = Device::cuda()});
      std::vector<float> values = filled.to_vector();
      float expected = dtype == DType::i32 ? -2.f : -2.75f;  // i32 truncates like static_cast
      for (float v : values) REQUIRE(v == expected);
    }
  }
  // f32 -> bf16 -> f32 rounds to nearest even, and -> i32 rounds half to even, as on the CPU.
  Tensor x = Tensor::from_vector({0.5f, 1.5f, 2.5f, -0.5f, 1.00390625f, 3.3f, -7.9f, 1e6f}, {8});
  for (DType target : {DType::bf16, DType::i32}) {
    Tensor want = x.to(target).to(DType::f32);
    Tensor got = on_host_f32(x.to(Device::cuda()).to(target));
    REQUIRE(bitwise_equal(got, want));
  }
  Tensor ints = Tensor::from_ints({-3, 0, 7, 1 << 20}, {4});
  REQUIRE(bitwise_equal(on_host_f32(ints.to(Device::cuda()).to(DType::f32)), ints.to(DType::f32)));
}

TEST_CASE("CUDA randn, rand and dropout draw the CPU's numbers", "[cuda][elementwise]") {
  for (DType dtype : float_dtypes()) {
    DYNAMIC_SECTION(dtype_name(dtype)) {
      Generator cpu_gen(2024), cuda_gen(2024);
      cpu_gen.take(17);  // a nonzero counter offset
      cuda_gen.take(17);
      Tensor want = Tensor::randn({5, 1000}, cpu_gen, 0.5f, 2.f).to(dtype).to(DType::f32);
      Tensor got = Tensor::randn({5, 1000}, cuda_gen, 0.5f, 2.f,
                                 {.dtype = dtype, .device = Device::cuda()});
      // Box-Muller's logf/cosf may differ by an ulp between host and device.
      REQUIRE_CLOSE(on_host_f32(got), want, dtype == DType::f32 ? 1e-5f : 8e-3f, 1e-5f);
      Tensor want_u = Tensor::rand({3, 7, 13}, cpu_gen, -1.f, 3.f).to(dtype).to(DType::f32);
      Tensor got_u = Tensor::rand({3, 7, 13}, cuda_gen, -1.f, 3.f,
                                  {.dtype = dtype, .device = Device::cuda()});
      REQUIRE(bitwise_equal(got_u, want_u));
    }
  }
  for (DType dtype : float_dtypes()) {
    DYNAMIC_SECTION("dropout " << dtype_name(dtype)) {
      Tensor x = exact_input({5, 1000}, 7, dtype);
      require_op_parity(
          [](const std::vector<Tensor>& in) {
            Generator gen(31);
            return dropout(in[0], 0.3f, gen);
          },
          {x}, dtype, default_tolerance(dtype));
    }
  }
}

TEST_CASE("CUDA sums, means and layout ops match the CPU forward and backward",
          "[cuda][reduce]") {
  for (DType dtype : float_dtypes()) {
    Tolerance tol = default_tolerance(dtype);
    DYNAMIC_SECTION("sums " << dtype_name(dtype)) {
      Tensor x = exact_input({3, 7, 13}, 8, dtype);
      Tensor wide = exact_input({5, 1000}, 9, dtype);
      Tensor tall = exact_input({20000, 3}, 10, dtype);  // a long column sum: many chunks
      for (int64_t dim : {0, 1, 2})
        require_op_parity([dim](const std::vector<Tensor>& in) { return sum(in[0], dim); }, {x},
                          dtype, tol);
      require_op_parity([](const std::vector<Tensor>& in) { return sum(in[0], 1); }, {wide},
                        dtype, tol);
      require_op_parity([](const std::vector<Tensor>& in) { return mean(in[0], 0, true); }, {tall},
                        dtype, tol);
      require_op_parity([](const std::vector<Tensor>& in) { return sum(in[0]); }, {tall}, dtype,
                        Tolerance{tol.rtol * 10, tol.atol * 10});  // 60000 terms
      require_op_parity([](const std::vector<Tensor>& in) { return mean(in[0]); }, {x}, dtype,
                        tol);
    }
    DYNAMIC_SECTION("layout " << dtype_name(dtype)) {
      Tensor x = exact_input({3, 7, 13}, 11, dtype);
      Tensor y = exact_input({3, 5, 13}, 12, dtype);
      require_op_parity([](const std::vector<Tensor>& in) { return transpose(in[0], 0, 2); }, {x},
                        dtype, tol);
      require_op_parity([](const std::vector<Tensor>& in) { return permute(in[0], {1, 2, 0}); },
                        {x}, dtype, tol);
      require_op_parity([](const std::vector<Tensor>& in) { return slice(in[0], 1, 2, 6); }, {x},
                        dtype, tol);
      require_op_parity([](const std::vector<Tensor>& in) { return slice(in[0], 2, 0, 1); }, {x},
                        dtype, tol);
      require_op_parity([](const std::vector<Tensor>& in) { return concat({in[0], in[1]}, 1); },
                        {x, y}, dtype, tol);
    }
  }
}

// Calls a Backend::cuda kernel directly: compiled only where libtiller has CUDA kernels.
#if defined(TILLER_HAS_CUDA)
TEST_CASE("CUDA sum_squares adds into its device result and matches the CPU", "[cuda][reduce]") {
  for (DType dtype : float_dtypes()) {
    for (int64_t n : {int64_t{1}, int64_t{4099}, int64_t{1000003}}) {
      DYNAMIC_SECTION(dtype_name(dtype) << " n = " << n) {
        Tensor x = exact_input({n}, 13, dtype);
        Tensor cpu_result = Tensor::full({1}, 2.5f);
        kernels::sum_squares<kernels::Backend::cpu>(x.data_ptr(), n, cpu_result.data<float>(),
                                                    DType::f32);
        Tensor dev_x = on_cuda(x, dtype);
        Tensor dev_result = Tensor::full({1}, 2.5f, {.device = Device::cuda()});
        kernels::sum_squares<kernels::Backend::cuda>(dev_x.data_ptr(), n,
                                                     dev_result.data<float>(), dtype);
        REQUIRE_CLOSE(on_host_f32(dev_result), cpu_result, 1e-5f, 1e-5f);
      }
    }
  }
}
#endif  // TILLER_HAS_CUDA

TEST_CASE("CUDA matmul and linear match the CPU forward and backward", "[cuda][matmul]") {
  struct Case {
    Shape a, b;
    bool ta, tb;
  };
  const std::vector<Case> cases = {{{37, 61}, {61, 29}, false, false},
                                   {{61, 37}, {61, 29}, true, false},
                                   {{37, 61}, {29, 61}, false, true},
                                   {{3, 17, 33}, {3, 33, 5}, false, false},
                                   {{3, 33, 17}, {5, 33}, true, true},  // shared 2-D b
                                   {{2, 1, 1000}, {1000, 7}, false, false}};
  for (DType dtype : float_dtypes())
    for (const Case& c : cases) {
      DYNAMIC_SECTION(shape_str(c.a) << (c.ta ? "^T" : "") << " @ " << shape_str(c.b)
                                     << (c.tb ? "^T" : "") << " " << dtype_name(dtype)) {
        Tensor a = exact_input(c.a, 14, dtype), b = exact_input(c.b, 15, dtype);
        bool ta = c.ta, tb = c.tb;
        // K up to 1000 terms of magnitude ~1: f32 sums differ by ~K * 6e-8 between libraries.
        Tolerance tol = dtype == DType::f32 ? Tolerance{1e-4f, 1e-4f} : default_tolerance(dtype);
        require_op_parity(
            [ta, tb](const std::vector<Tensor>& in) { return matmul(in[0], in[1], ta, tb); },
            {a, b}, dtype, tol);
      }
    }
  for (DType dtype : float_dtypes()) {
    DYNAMIC_SECTION("linear " << dtype_name(dtype)) {
      Tensor x = exact_input({3, 7, 65}, 16, dtype);
      Tensor w = exact_input({33, 65}, 17, dtype, 0.2f), bias = exact_input({33}, 18, dtype);
      Tolerance tol = dtype == DType::f32 ? Tolerance{1e-4f, 1e-4f} : default_tolerance(dtype);
      require_op_parity(
          [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); }, {x, w, bias},
          dtype, tol);
    }
  }
}
