// The [cuda] parity harness: an op run on CUDA must match the same op on the CPU backend.
//
// require_op_parity(f, inputs, dtype, tolerance) runs f forward and backward on the CPU (f32)
// and on CUDA (in `dtype`) from the same inputs and the same upstream gradient, then compares
// the output and every float input's gradient. Inputs are made exactly representable in `dtype`
// (bf16-rounded for bf16 runs), so the tolerance only has to cover the CUDA side's arithmetic
// and its bf16 outputs. Before the CUDA run the caching allocator is seeded with NaN-filled
// blocks of the output's and inputs' sizes: the op's outputs and gradients are then carved from
// poisoned memory, and an element a kernel forgets to write shows up as a NaN mismatch.
#pragma once

#include <catch2/catch.hpp>

#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "core/ops/ops.h"
#include "kernels/memory.h"
#include "support/gradcheck.h"

namespace tiller::cuda_testing {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Tolerance {
  float rtol, atol;
};

// f32: both backends compute in f32, different summation orders. bf16: outputs rounded to
// 8 mantissa bits (relative step 2^-8 = 0.4%), a couple of roundings deep.
inline Tolerance default_tolerance(DType dtype) {
  return dtype == DType::f32 ? Tolerance{1e-5f, 1e-5f} : Tolerance{2e-2f, 2e-2f};
}

// A CPU f32 tensor of N(0, std) values that are exact in `dtype`.
inline Tensor exact_input(const Shape& shape, uint64_t seed, DType dtype, float std = 1.f) {
  return testing::random_input(shape, seed, std, false).to(dtype).to(DType::f32);
}

inline Tensor on_cuda(const Tensor& cpu, DType dtype) {
  return (cpu.dtype() == DType::i32 ? cpu : cpu.to(dtype)).to(Device::cuda());
}

inline Tensor on_host_f32(const Tensor& t) { return t.to(Device::cpu()).to(DType::f32); }

// Leaves NaN-filled blocks of these shapes (in f32 and `dtype`) in the allocator's free lists.
inline void poison_allocator(const std::vector<Shape>& shapes, DType dtype) {
  constexpr int kCopies = 4;  // outputs and gradients of one shape may take several blocks
  std::vector<Tensor> blocks;
  for (const Shape& shape : shapes)
    for (int i = 0; i < kCopies; ++i) {
      TensorOptions options{.dtype = dtype, .device = Device::cuda()};
      blocks.push_back(Tensor::full(shape, kNaN, options));
      blocks.push_back(Tensor::full(shape, kNaN, options.with(DType::f32)));
    }
  kernels::cuda::synchronize();
}  // blocks released here, NaNs and all

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

// inputs: CPU tensors, f32 (exact in dtype; these get gradients) or i32 (ids, targets).
inline void require_op_parity(const OpFn& f, const std::vector<Tensor>& inputs, DType dtype,
                              Tolerance tol, uint64_t seed = 99) {
  std::vector<Tensor> cpu_inputs, cuda_inputs;
  std::vector<Shape> shapes;
  for (const Tensor& t : inputs) {
    bool differentiable = t.dtype() != DType::i32;
    Tensor cpu = t.detach().clone();
    Tensor dev = on_cuda(t, dtype).detach();
    if (differentiable) {
      cpu.requires_grad_();
      dev.requires_grad_();
    }
    cpu_inputs.push_back(cpu);
    cuda_inputs.push_back(dev);
    shapes.push_back(t.shape());
  }
  Tensor want = f(cpu_inputs);
  Tensor upstream = exact_input(want.shape(), seed, dtype);
  want.backward(upstream);

  shapes.push_back(want.shape());
  poison_allocator(shapes, dtype);
  Tensor got = f(cuda_inputs);
  REQUIRE(got.is_cuda());
  got.backward(on_cuda(upstream, got.dtype()));

  INFO("output " << got.str());
  REQUIRE_CLOSE(on_host_f32(got), want, tol.rtol, tol.atol);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!cpu_inputs[i].requires_grad()) continue;
    INFO("gradient of input " << i << " " << shape_str(inputs[i].shape()));
    REQUIRE(cuda_inputs[i].grad().defined());
    REQUIRE_CLOSE(on_host_f32(cuda_inputs[i].grad()), cpu_inputs[i].grad(), tol.rtol, tol.atol);
  }
}

inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
  std::vector<float> x = on_host_f32(a).to_vector(), y = on_host_f32(b).to_vector();
  if (x.size() != y.size()) return false;
  return std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

}  // namespace tiller::cuda_testing
