// The CPU caching allocator (kernels/cpu/memory.cpp): alignment, reuse of freed blocks by size
// class, and that a training-like loop stops asking the C runtime for memory after warm-up.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>

#include "core/ops/ops.h"
#include "kernels/memory.h"

using namespace tiller;
namespace cpu_memory = tiller::kernels::cpu;

TEST_CASE("cpu allocate returns 64-byte aligned, writable blocks of any size", "[memory]") {
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{1000}, size_t{1} << 20,
                       (size_t{1} << 20) + 4}) {
    void* p = cpu_memory::allocate(bytes);
    REQUIRE(reinterpret_cast<uintptr_t>(p) % 64 == 0);
    std::memset(p, 0xab, bytes);
    cpu_memory::release(p);
  }
  cpu_memory::release(nullptr);  // like free(nullptr)
}

#if !defined(__SANITIZE_ADDRESS__)
TEST_CASE("a freed block is reused for a request of the same size class", "[memory]") {
  cpu_memory::empty_cache();
  REQUIRE(cpu_memory::allocator_stats().bytes_cached == 0);
  void* first = cpu_memory::allocate(300000);
  auto in_use = cpu_memory::allocator_stats().bytes_in_use;
  REQUIRE(in_use >= 300000);
  cpu_memory::release(first);
  auto after_free = cpu_memory::allocator_stats();
  REQUIRE(after_free.bytes_cached >= 300000);
  REQUIRE(after_free.bytes_in_use == in_use - after_free.bytes_cached);

  // 299,000 bytes rounds to the same class as 300,000; it gets the cached block back.
  auto hits = after_free.cache_hits;
  void* second = cpu_memory::allocate(299000);
  REQUIRE(second == first);
  REQUIRE(cpu_memory::allocator_stats().cache_hits == hits + 1);
  // A much larger request cannot use it.
  void* larger = cpu_memory::allocate(600000);
  REQUIRE(larger != first);
  cpu_memory::release(second);
  cpu_memory::release(larger);
  cpu_memory::empty_cache();
  REQUIRE(cpu_memory::allocator_stats().bytes_cached == 0);
}

TEST_CASE("repeated forward/backward steps reach a state with no new system allocations",
          "[memory]") {
  Generator gen(3);
  Tensor w = Tensor::randn({64, 96}, gen, 0.f, 0.1f).requires_grad_(true);
  Tensor x = Tensor::randn({32, 64}, gen);
  auto step = [&] {
    Tensor loss = sum(gelu(matmul(x, w)));
    loss.backward();
    w.zero_grad();
  };
  step();
  step();
  auto before = cpu_memory::allocator_stats();
  for (int i = 0; i < 3; ++i) step();
  auto after = cpu_memory::allocator_stats();
  REQUIRE(after.system_allocations == before.system_allocations);
  REQUIRE(after.cache_hits > before.cache_hits);
}
#endif
