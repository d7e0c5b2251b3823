// [cuda] Neural-network ops on CUDA against the CPU backend: layernorm, rmsnorm (and the fused
// residual kernel), softmax, log-softmax, cross-entropy, token log-probs, entropy, embedding and
// rope — forward and backward, f32 and bf16, at widths that are not multiples of a warp or of a
// 16-byte pack (C = 13, 1000, 771) and at a GPT-2 vocabulary (64 x 50304) for the losses.
// The weight-gradient reductions (layernorm, embedding) must also be bitwise deterministic.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "core/ops/ops.h"
#include "cuda_parity.h"
#include "kernels/error.h"
#include "kernels/layernorm.h"
#include "kernels/memory.h"

using namespace tiller;
using namespace tiller::cuda_testing;

namespace {

const std::vector<DType>& float_dtypes() {
  static const std::vector<DType> dtypes = {DType::f32, DType::bf16};
  return dtypes;
}

// Targets in [0, V), every `ignore_every`-th one replaced by ignore_index (0: none).
Tensor random_targets(int64_t rows, int64_t V, uint64_t seed, int ignore_every = 0) {
  Generator gen(seed);
  std::vector<float> u = Tensor::rand({rows}, gen).to_vector();
  std::vector<int32_t> targets(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    targets[r] = static_cast<int32_t>(u[r] * static_cast<float>(V)) % static_cast<int32_t>(V);
    if (ignore_every > 0 && r % ignore_every == 1) targets[r] = -100;
  }
  return Tensor::from_ints(targets, {rows});
}

}  // namespace

TEST_CASE("CUDA layernorm and rmsnorm match the CPU forward and backward", "[cuda][norm]") {
  const std::vector<Shape> shapes = {{3, 7, 13}, {5, 1000}, {2, 3, 771}, {64, 768}};
  for (DType dtype : float_dtypes())
    for (const Shape& shape : shapes) {
      DYNAMIC_SECTION(shape_str(shape) << " " << dtype_name(dtype)) {
        int64_t C = shape.back();
        // Rows with a large mean: a one-pass E[x^2] - E[x]^2 variance would fail here.
        Tensor x = add_scalar(exact_input(shape, 21, dtype), 4.f).to(dtype).to(DType::f32);
        Tensor weight = add_scalar(exact_input({C}, 22, dtype, 0.3f), 1.f).to(dtype).to(DType::f32);
        Tensor bias = exact_input({C}, 23, dtype, 0.3f);
        // Gradients of the affine parameters sum over all rows: allow for that many terms.
        Tolerance tol = dtype == DType::f32 ? Tolerance{1e-4f, 1e-4f} : Tolerance{3e-2f, 3e-2f};
        require_op_parity(
            [](const std::vector<Tensor>& in) { return layernorm(in[0], in[1], in[2], 1e-5f); },
            {x, weight, bias}, dtype, tol);
        require_op_parity(
            [](const std::vector<Tensor>& in) { return layernorm(in[0], in[1], Tensor(), 1e-5f); },
            {x, weight}, dtype, tol);
        require_op_parity(
            [](const std::vector<Tensor>& in) { return rmsnorm(in[0], in[1], 1e-6f); },
            {x, weight}, dtype, tol);
      }
    }
}

// Calls a Backend::cuda kernel directly: compiled only where libtiller has CUDA kernels.
#if defined(TILLER_HAS_CUDA)
TEST_CASE("CUDA fused residual layernorm equals the residual add followed by layernorm",
          "[cuda][norm]") {
  using kernels::Backend;
  for (DType dtype : float_dtypes())
    for (int64_t C : {int64_t{13}, int64_t{768}}) {
      DYNAMIC_SECTION(dtype_name(dtype) << " C = " << C) {
        const int64_t N = 37;
        Tensor x = exact_input({N, C}, 24, dtype), residual = exact_input({N, C}, 25, dtype);
        Tensor weight = exact_input({C}, 26, dtype), bias = exact_input({C}, 27, dtype);
        // CPU reference: the unfused pair, on the residual sum rounded as the kernel stores it.
        Tensor sum = add(x, residual).to(dtype).to(DType::f32);
        Tensor want_y = layernorm(sum, weight, bias, 1e-5f);

        TensorOptions options{.dtype = dtype, .device = Device::cuda()};
        Tensor residual_out = Tensor::full({N, C}, kNaN, options);
        Tensor y = Tensor::full({N, C}, kNaN, options);
        Tensor mean = Tensor::full({N}, kNaN, options.with(DType::f32));
        Tensor rstd = Tensor::full({N}, kNaN, options.with(DType::f32));
        Tensor dx = on_cuda(x, dtype), dres = on_cuda(residual, dtype);
        Tensor dw = on_cuda(weight, dtype), db = on_cuda(bias, dtype);
        kernels::residual_layernorm_forward<Backend::cuda>(
            dx.data_ptr(), dres.data_ptr(), residual_out.data_ptr(), dw.data_ptr(), db.data_ptr(),
            y.data_ptr(), mean.data<float>(), rstd.data<float>(), N, C, 1e-5f, dtype);
        REQUIRE(bitwise_equal(residual_out, sum.to(dtype)));
        Tolerance tol = default_tolerance(dtype);
        REQUIRE_CLOSE_TO_MAX(on_host_f32(y), want_y, tol.rtol, tol.atol);
        REQUIRE_CLOSE_TO_MAX(on_host_f32(mean), tiller::mean(sum, 1), 1e-5f, 1e-5f);
      }
    }
}
#endif  // TILLER_HAS_CUDA

TEST_CASE("CUDA layernorm backward is bitwise deterministic", "[cuda][norm]") {
  Tensor x = on_cuda(exact_input({4096, 771}, 28, DType::f32), DType::f32).requires_grad_();
  Tensor weight = on_cuda(exact_input({771}, 29, DType::f32), DType::f32).requires_grad_();
  Tensor bias = on_cuda(exact_input({771}, 30, DType::f32), DType::f32).requires_grad_();
  Tensor upstream = on_cuda(exact_input({4096, 771}, 31, DType::f32), DType::f32);
  std::vector<Tensor> first;
  for (int run = 0; run < 3; ++run) {
    x.zero_grad();
    weight.zero_grad();
    bias.zero_grad();
    layernorm(x, weight, bias).backward(upstream);
    if (run == 0) {
      first = {x.grad(), weight.grad(), bias.grad()};
      continue;
    }
    REQUIRE(bitwise_equal(x.grad(), first[0]));
    REQUIRE(bitwise_equal(weight.grad(), first[1]));
    REQUIRE(bitwise_equal(bias.grad(), first[2]));
  }
}

TEST_CASE("CUDA softmax and log_softmax match the CPU forward and backward", "[cuda][softmax]") {
  const std::vector<Shape> shapes = {{3, 7, 13}, {5, 1000}, {4, 50304}};
  for (DType dtype : float_dtypes())
    for (const Shape& shape : shapes) {
      DYNAMIC_SECTION(shape_str(shape) << " " << dtype_name(dtype)) {
        Tensor x = exact_input(shape, 32, dtype, 3.f);
        Tolerance tol = default_tolerance(dtype);
        require_op_parity([](const std::vector<Tensor>& in) { return softmax(in[0]); }, {x},
                          dtype, tol);
        require_op_parity([](const std::vector<Tensor>& in) { return log_softmax(in[0]); }, {x},
                          dtype, tol);
      }
    }
  DYNAMIC_SECTION("large logits keep x - max exact") {
    Tensor x = add_scalar(exact_input({5, 1000}, 33, DType::f32), 3.0e4f);
    require_op_parity([](const std::vector<Tensor>& in) { return log_softmax(in[0]); }, {x},
                      DType::f32, default_tolerance(DType::f32));
  }
}

TEST_CASE("CUDA cross-entropy matches the CPU at a GPT-2 vocabulary, with ignored targets",
          "[cuda][loss]") {
  struct Case {
    int64_t rows, V;
  };
  for (DType dtype : float_dtypes())
    for (Case c : {Case{64, 50304}, Case{5, 1000}, Case{21, 13}})
      for (Reduction reduction : {Reduction::mean, Reduction::sum, Reduction::none}) {
        DYNAMIC_SECTION(c.rows << " x " << c.V << " " << dtype_name(dtype) << " reduction "
                               << static_cast<int>(reduction)) {
          Tensor logits = exact_input({c.rows, c.V}, 34, dtype, 2.f);
          Tensor targets = random_targets(c.rows, c.V, 35, 4);
          // f32 losses are log-sum-exps of 50k terms (~11): relative 1e-5 of that.
          Tolerance tol = dtype == DType::f32 ? Tolerance{1e-5f, 2e-5f} : default_tolerance(dtype);
          require_op_parity(
              [reduction](const std::vector<Tensor>& in) {
                return cross_entropy(in[0], in[1], -100, reduction);
              },
              {logits, targets}, dtype, tol);
        }
      }
}

TEST_CASE("CUDA token log-probs and entropy match the CPU forward and backward", "[cuda][loss]") {
  for (DType dtype : float_dtypes())
    for (Shape shape : {Shape{2, 3, 1000}, Shape{64, 50304}, Shape{7, 13}}) {
      DYNAMIC_SECTION(shape_str(shape) << " " << dtype_name(dtype)) {
        int64_t rows = shape_numel(shape) / shape.back();
        Tensor logits = exact_input(shape, 36, dtype, 2.f);
        Shape token_shape(shape.begin(), shape.end() - 1);
        Tensor tokens = random_targets(rows, shape.back(), 37).reshape(token_shape);
        Tolerance tol = dtype == DType::f32 ? Tolerance{1e-5f, 2e-5f} : default_tolerance(dtype);
        require_op_parity(
            [](const std::vector<Tensor>& in) { return token_logprobs(in[0], in[1]); },
            {logits, tokens}, dtype, tol);
        require_op_parity([](const std::vector<Tensor>& in) { return entropy(in[0]); }, {logits},
                          dtype, tol);
      }
    }
}

TEST_CASE("CUDA embedding matches the CPU and its backward is deterministic", "[cuda][embedding]") {
  for (DType dtype : float_dtypes())
    for (int64_t C : {int64_t{13}, int64_t{768}}) {
      DYNAMIC_SECTION(dtype_name(dtype) << " C = " << C) {
        const int64_t V = 1000;
        // Ids drawn from a small range so many rows share an id (a real scatter-add), plus the
        // ends of the vocabulary; most of the 1000 rows of dweight receive nothing and must be 0.
        Tensor ids = random_targets(3 * 67, 50, 38).reshape({3, 67});
        std::vector<int32_t> id_values = ids.to_int_vector();
        id_values[0] = 0;
        id_values[1] = V - 1;
        ids = Tensor::from_ints(id_values, {3, 67});
        Tensor weight = exact_input({V, C}, 39, dtype);
        require_op_parity(
            [](const std::vector<Tensor>& in) { return embedding(in[1], in[0]); }, {weight, ids},
            dtype, default_tolerance(dtype));
      }
    }
  DYNAMIC_SECTION("deterministic backward") {
    Tensor ids = on_cuda(random_targets(4096, 7, 40), DType::f32);  // 7 ids, ~585 rows each
    Tensor weight = on_cuda(exact_input({7, 771}, 41, DType::f32), DType::f32).requires_grad_();
    Tensor upstream = on_cuda(exact_input({4096, 771}, 42, DType::f32), DType::f32);
    embedding(ids, weight).backward(upstream);
    Tensor first = weight.grad();
    weight.zero_grad();
    embedding(ids, weight).backward(upstream);
    REQUIRE(bitwise_equal(weight.grad(), first));
  }
}

TEST_CASE("CUDA rope matches the CPU forward and backward, including large positions",
          "[cuda][rope]") {
  for (DType dtype : float_dtypes()) {
    DYNAMIC_SECTION(dtype_name(dtype)) {
      Tensor x = exact_input({2, 3, 7, 10}, 43, dtype);
      std::vector<int32_t> positions;
      for (int b = 0; b < 2; ++b)
        for (int t = 0; t < 7; ++t) positions.push_back(b == 0 ? t : 100000 + 37 * t);
      Tensor pos = Tensor::from_ints(positions, {2, 7});
      require_op_parity(
          [](const std::vector<Tensor>& in) { return rope(in[0], in[1], 10000.f); }, {x, pos},
          dtype, default_tolerance(dtype));
      Tensor shared_positions = Tensor::from_ints({0, 1, 2, 3, 4, 5, 6}, {7});
      Tensor y = exact_input({1, 2, 7, 64}, 44, dtype);
      require_op_parity(
          [](const std::vector<Tensor>& in) { return rope(in[0], in[1], 500000.f); },
          {y, shared_positions}, dtype, default_tolerance(dtype));
    }
  }
}

TEST_CASE("an out-of-range token id on CUDA is a tiller::Error at the next host synchronisation, "
          "naming the op, and later ops run normally",
          "[cuda][embedding][loss][sync]") {
  // The ids are checked on the device (kernels/token_check.h), so the op itself returns; the bad
  // id meanwhile reads nothing outside the table (a zero row, no loss).
  auto expect_fault_at_sync = [](const std::string& expected_start, auto&& make) {
    Tensor result = make();
    try {
      kernels::cuda::synchronize();
      FAIL("expected the device to report the bad id");
    } catch (const Error& error) {
      INFO(error.what());
      CHECK(std::string(error.what()).starts_with(expected_start));
    }
    kernels::cuda::synchronize();  // reported once: the record is clear again
    return result;
  };
  Tensor weight = on_cuda(exact_input({50, 16}, 45, DType::f32), DType::f32);
  Tensor bad_ids = on_cuda(Tensor::from_ints({3, 50, 7, -2}, {4}), DType::f32);
  Tensor rows = expect_fault_at_sync("embedding: ids[1] = 50 is out of range [0, 50)",
                                     [&] { return embedding(bad_ids, weight); });
  std::vector<float> host = on_host_f32(rows).to_vector();
  for (int c = 0; c < 16; ++c) CHECK(host[16 + c] == 0.f);  // the bad rows are zero meanwhile
  Tensor logits = on_cuda(exact_input({4, 50}, 46, DType::f32), DType::f32);
  Tensor bad_targets = on_cuda(Tensor::from_ints({3, -100, 51, 7}, {4}), DType::f32);
  expect_fault_at_sync("cross_entropy: targets[2] = 51 is out of range [0, 50)",
                       [&] { return cross_entropy(logits, bad_targets, -100); });
  expect_fault_at_sync("token_logprobs: tokens[0] = -1 is out of range [0, 50)", [&] {
    return token_logprobs(logits, on_cuda(Tensor::from_ints({-1, 2, 3, 4}, {4}), DType::f32));
  });
  // The mean over real tokens divides on the device by max(1, count), like the CPU.
  Tensor targets = Tensor::from_ints({3, -100, 5, 7}, {4});
  const float cpu = cross_entropy(on_host_f32(logits), targets, -100).item();
  const float gpu = cross_entropy(logits, on_cuda(targets, DType::f32), -100).item();
  CHECK(std::abs(gpu - cpu) <= 1e-5f * std::abs(cpu));
  Tensor all_ignored = on_cuda(Tensor::from_ints({-100, -100, -100, -100}, {4}), DType::f32);
  CHECK(cross_entropy(logits, all_ignored, -100).item() == 0.f);
}
