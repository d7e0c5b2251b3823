// [cuda] The NCCL communicator against closed-form results computed on the CPU, on whatever world
// it runs in: alone (one GPU, a world of one: MPI starts as a singleton), or under
// `mpirun -np N` on a machine with N GPUs (rank r on cuda:local_rank), where the sums are real.
// Rank r contributes values built from r, so each expected number is a formula in r and N.
// A build without NCCL has nothing to test here and says so (the case passes with a warning).
#include <catch2/catch.hpp>

#include <memory>

#include "core/dist/communicator.h"

using namespace tiller;

namespace {

std::shared_ptr<dist::Communicator> nccl() {
  const dist::LaunchInfo launch = dist::launch_info_from_environment();
  static std::shared_ptr<dist::Communicator> comm =
      dist::nccl_world(dist::device_for_rank(Device::cuda(0), launch));
  return comm;
}

Tensor on_device(const std::vector<float>& values, DType dtype = DType::f32) {
  return Tensor::from_vector(values, {static_cast<int64_t>(values.size())})
      .to(dtype)
      .to(nccl()->device());
}

}  // namespace

TEST_CASE("NCCL all_reduce, reduce_scatter, all_gather and broadcast match the CPU result",
          "[cuda][nccl]") {
  if (!dist::nccl_built()) {
    WARN("tiller was built without NCCL: nothing to test");
    return;
  }
  const int n = nccl()->world_size(), r = nccl()->rank();
  REQUIRE(std::string(nccl()->backend()) == "nccl");

  for (DType dtype : {DType::f32, DType::bf16}) {
    // Small integers: exact in bf16 too.
    Tensor x = on_device({1.f + r, 2.f * r, -4.f}, dtype);
    nccl()->all_reduce(x, dist::ReduceOp::sum);
    REQUIRE(x.to(DType::f32).to_vector() ==
            std::vector<float>{n + n * (n - 1) / 2.f, static_cast<float>(n * (n - 1)), -4.f * n});
    Tensor y = on_device({2.f * r, 8.f}, dtype);
    nccl()->all_reduce(y, dist::ReduceOp::average);
    REQUIRE(y.to(DType::f32).to_vector() == std::vector<float>{static_cast<float>(n - 1), 8.f});
  }

  std::vector<float> chunks;
  for (int c = 0; c < n; ++c) chunks.insert(chunks.end(), {10.f * c + r, 1.f});
  Tensor input = on_device(chunks);
  Tensor mine = on_device({0.f, 0.f});
  nccl()->reduce_scatter(input, mine, dist::ReduceOp::sum);
  REQUIRE(mine.to_vector() ==
          std::vector<float>{10.f * r * n + n * (n - 1) / 2.f, static_cast<float>(n)});

  Tensor part = on_device({static_cast<float>(r), -1.f});
  Tensor all = on_device(std::vector<float>(static_cast<size_t>(2 * n), 0.f));
  nccl()->all_gather(part, all);
  std::vector<float> expected;
  for (int q = 0; q < n; ++q) expected.insert(expected.end(), {static_cast<float>(q), -1.f});
  REQUIRE(all.to_vector() == expected);

  Tensor root = on_device({static_cast<float>(r) + 3.f});
  nccl()->broadcast(root, 0);
  REQUIRE(root.to_vector() == std::vector<float>{3.f});
  nccl()->barrier();

  REQUIRE_THROWS_WITH(nccl()->all_reduce(Tensor::zeros({2}), dist::ReduceOp::sum),
                      Catch::Contains("all_reduce") && Catch::Contains("cpu"));
  REQUIRE_THROWS_WITH(nccl()->all_gather(part, on_device({0.f})), Catch::Contains("all_gather"));
}
