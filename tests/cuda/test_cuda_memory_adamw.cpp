// [cuda] The caching allocator and memory entry points (kernels/memory.h), and the fused
// multi-tensor AdamW kernel against the CPU reference (kernels/cpu/adamw.cpp).
//
// The allocator's promise is behavioural: once a training step has run, repeating it makes no
// new cudaMalloc calls. AdamW's promise is numerical: the CUDA kernel mirrors the CPU's operation
// order with explicitly rounded arithmetic, so masters and moments agree to the last bit or two
// over several steps, and bf16 parameters are stochastically rounded with the CPU's counters.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/ops/ops.h"
#include "cuda_parity.h"
#include "kernels/adamw.h"
#include "kernels/memory.h"

using namespace tiller;
using namespace tiller::cuda_testing;
namespace cuda = tiller::kernels::cuda;

TEST_CASE("CUDA device queries report a device and copies round-trip bytes", "[cuda][memory]") {
  REQUIRE(cuda::available());
  REQUIRE(cuda::device_count() >= 1);
  std::vector<float> host = {1.f, -2.5f, 3.25f, 1e-30f, 7.f};
  void* a = cuda::allocate(host.size() * sizeof(float), 0);
  void* b = cuda::allocate(host.size() * sizeof(float), 0);
  cuda::copy_host_to_device(a, host.data(), host.size() * sizeof(float));
  cuda::copy_device_to_device(b, a, host.size() * sizeof(float));
  std::vector<float> back(host.size(), 0.f);
  cuda::copy_device_to_host(back.data(), b, back.size() * sizeof(float));
  REQUIRE(back == host);
  cuda::memset_zero(b, 2 * sizeof(float));  // only the first two
  cuda::copy_device_to_host(back.data(), b, back.size() * sizeof(float));
  REQUIRE(back == std::vector<float>{0.f, 0.f, 3.25f, 1e-30f, 7.f});
  cuda::release(a, 0);
  cuda::release(b, 0);
  REQUIRE_THROWS_WITH(cuda::allocate(16, cuda::device_count()),
                      Catch::Contains("cuda::allocate: device"));
}

TEST_CASE("CUDA caching allocator reuses blocks: a repeated training step allocates nothing new",
          "[cuda][memory]") {
  Tensor x = on_cuda(exact_input({64, 96}, 50, DType::f32), DType::f32);
  Tensor w = on_cuda(exact_input({96, 96}, 51, DType::f32, 0.1f), DType::f32).requires_grad_();
  Tensor gain = Tensor::ones({96}, {.device = Device::cuda()}).requires_grad_();
  Tensor targets = on_cuda(Tensor::from_ints(std::vector<int32_t>(64, 3), {64}), DType::f32);
  auto step = [&] {
    w.zero_grad();
    gain.zero_grad();
    Tensor h = layernorm(linear(x, w), gain, Tensor());
    cross_entropy(gelu(h), targets).backward();
    cuda::synchronize();
  };
  step();
  step();
  cuda::AllocatorStats warm = cuda::allocator_stats();
  for (int i = 0; i < 5; ++i) step();
  cuda::AllocatorStats after = cuda::allocator_stats();
  REQUIRE(after.device_allocations == warm.device_allocations);
  REQUIRE(after.bytes_in_use == warm.bytes_in_use);  // nothing leaked between steps

  size_t before_cache = after.bytes_cached;
  REQUIRE(before_cache > 0);
  cuda::empty_cache();
  REQUIRE(cuda::allocator_stats().bytes_cached == 0);
  REQUIRE(cuda::allocator_stats().bytes_in_use == after.bytes_in_use);
}

TEST_CASE("CUDA caching allocator hands a released block of the same size class back",
          "[cuda][memory]") {
  void* first = cuda::allocate(1000, 0);
  cuda::release(first, 0);
  size_t allocations = cuda::allocator_stats().device_allocations;
  void* second = cuda::allocate(900, 0);  // rounds to the same 1024-byte bin
  REQUIRE(second == first);
  REQUIRE(cuda::allocator_stats().device_allocations == allocations);
  cuda::release(second, 0);
}

// Calls a Backend::cuda kernel directly: compiled only where libtiller has CUDA kernels.
#if defined(TILLER_HAS_CUDA)
namespace {

struct AdamWState {
  std::vector<Tensor> master, param, grad, m, v;  // one entry per parameter tensor
};

// Tensors of sizes around the kernel's 2048-element chunk, with per-tensor weight decay.
AdamWState make_state(Device device, DType grad_dtype, bool bf16_params) {
  const std::vector<int64_t> sizes = {1, 7, 2048, 5001, 300};
  AdamWState s;
  for (size_t t = 0; t < sizes.size(); ++t) {
    uint64_t seed = 60 + 10 * t;
    auto place = [&](const Tensor& cpu, DType dtype) { return cpu.to(dtype).to(device); };
    Tensor master = exact_input({sizes[t]}, seed, DType::f32);
    s.master.push_back(place(master, DType::f32));
    s.param.push_back(bf16_params ? place(master, DType::bf16) : Tensor());
    s.grad.push_back(place(exact_input({sizes[t]}, seed + 1, grad_dtype, 0.1f), grad_dtype));
    s.m.push_back(place(exact_input({sizes[t]}, seed + 2, DType::f32, 0.01f), DType::f32));
    s.v.push_back(place(square(exact_input({sizes[t]}, seed + 3, DType::f32, 0.01f)), DType::f32));
  }
  return s;
}

std::vector<kernels::AdamWTensor> views(AdamWState& s, DType grad_dtype) {
  std::vector<kernels::AdamWTensor> tensors;
  for (size_t t = 0; t < s.master.size(); ++t) {
    kernels::AdamWTensor x;
    x.master = s.master[t].data<float>();
    x.param = s.param[t].defined() ? s.param[t].data_ptr() : x.master;
    x.param_dtype = s.param[t].defined() ? DType::bf16 : DType::f32;
    x.grad = s.grad[t].data_ptr();
    x.grad_dtype = grad_dtype;
    x.m = s.m[t].data<float>();
    x.v = s.v[t].data<float>();
    x.n = s.master[t].numel();
    x.weight_decay = t % 2 == 0 ? 0.1f : 0.f;
    tensors.push_back(x);
  }
  return tensors;
}

}  // namespace

TEST_CASE("CUDA fused AdamW matches the CPU kernel over several steps", "[cuda][adamw]") {
  for (DType grad_dtype : {DType::f32, DType::bf16})
    for (bool bf16_params : {false, true}) {
      DYNAMIC_SECTION("grad " << dtype_name(grad_dtype) << (bf16_params ? ", bf16 params" : "")) {
        AdamWState cpu_state = make_state(Device::cpu(), grad_dtype, bf16_params);
        AdamWState cuda_state = make_state(Device::cuda(), grad_dtype, bf16_params);
        for (int64_t step = 1; step <= 3; ++step) {
          kernels::AdamWHyper hyper;
          hyper.lr = 3e-3f;
          hyper.step = step;
          hyper.grad_scale = 0.5f;
          hyper.seed = 1000 + step;
          kernels::adamw_step<kernels::Backend::cpu>(views(cpu_state, grad_dtype), hyper);
          kernels::adamw_step<kernels::Backend::cuda>(views(cuda_state, grad_dtype), hyper);
        }
        for (size_t t = 0; t < cpu_state.master.size(); ++t) {
          INFO("tensor " << t << " of " << cpu_state.master[t].numel() << " elements");
          Tensor master = on_host_f32(cuda_state.master[t]);
          REQUIRE_CLOSE(master, cpu_state.master[t], 1e-6f, 1e-7f);
          REQUIRE_CLOSE(on_host_f32(cuda_state.m[t]), cpu_state.m[t], 1e-6f, 1e-9f);
          REQUIRE_CLOSE(on_host_f32(cuda_state.v[t]), cpu_state.v[t], 1e-6f, 1e-12f);
          if (!bf16_params) continue;
          // Where the masters agree bit for bit, the stochastic rounding must too; everywhere
          // the bf16 parameter is one of the two bf16 neighbours of its master.
          std::vector<float> got = on_host_f32(cuda_state.param[t]).to_vector();
          std::vector<float> want = on_host_f32(cpu_state.param[t]).to_vector();
          std::vector<float> cuda_master = master.to_vector();
          std::vector<float> cpu_master = cpu_state.master[t].to_vector();
          for (size_t i = 0; i < got.size(); ++i) {
            if (cuda_master[i] == cpu_master[i]) REQUIRE(got[i] == want[i]);
            float ulp = std::ldexp(1.f, std::ilogb(cuda_master[i]) - 7);
            REQUIRE(std::fabs(got[i] - cuda_master[i]) < ulp);
          }
        }
      }
    }
}

TEST_CASE("CUDA AdamW rejects an f32 parameter separate from its master", "[cuda][adamw]") {
  Tensor master = Tensor::zeros({4}, {.device = Device::cuda()});
  Tensor other = Tensor::zeros({4}, {.device = Device::cuda()});
  Tensor grad = Tensor::zeros({4}, {.device = Device::cuda()});
  Tensor m = Tensor::zeros({4}, {.device = Device::cuda()});
  Tensor v = Tensor::zeros({4}, {.device = Device::cuda()});
  kernels::AdamWTensor x;
  x.master = master.data<float>();
  x.param = other.data_ptr();
  x.grad = grad.data_ptr();
  x.m = m.data<float>();
  x.v = v.data<float>();
  x.n = 4;
  REQUIRE_THROWS_WITH(kernels::adamw_step<kernels::Backend::cuda>({x}, {}),
                      Catch::Contains("only bf16 params have masters"));
}
#endif  // TILLER_HAS_CUDA
