// [cuda] Checkpoints and safetensors with tensors on the GPU: saving copies device tensors to the
// host byte for byte, and loading onto a device gives the same values as loading onto the CPU.
#include <catch2/catch.hpp>

#include <cstring>

#include "core/io/checkpoint.h"
#include "core/io/safetensors.h"
#include "support/temp_dir.h"

using namespace tiller;
using tiller::testing::TempDir;

TEST_CASE("CUDA tensors serialize to the same bytes as their CPU copies", "[cuda][safetensors]") {
  Generator gen(17);
  Tensor weights = Tensor::randn({33, 7}, gen);
  Tensor half_weights = Tensor::randn({5, 3}, gen, 0.f, 1.f, {.dtype = DType::bf16});
  Tensor ids = Tensor::from_ints({4, -1, 9}, {3});
  safetensors::NamedTensors on_host{{"w", weights}, {"h", half_weights}, {"ids", ids}};
  safetensors::NamedTensors on_device{{"w", weights.to(Device::cuda())},
                                      {"h", half_weights.to(Device::cuda())},
                                      {"ids", ids.to(Device::cuda())}};
  REQUIRE(safetensors::serialize(on_device) == safetensors::serialize(on_host));
}

TEST_CASE("a checkpoint loads onto a CUDA device with the values it was saved with",
          "[cuda][checkpoint]") {
  TempDir root;
  Generator gen(23);
  Tensor weights = Tensor::randn({129, 3}, gen);
  Tensor moment = Tensor::randn({129, 3}, gen, 0.f, 1.f, {.dtype = DType::bf16});
  save_checkpoint(root / "ckpt", {{"w", weights}}, "{}",
                  TrainerState{.tensors = {{"m", moment}}, .json = R"({"step": 3})"});

  Checkpoint loaded = load_checkpoint(root / "ckpt", Device::cuda());
  const Tensor& w = loaded.tensors.get("w", {129, 3});
  const Tensor& m = loaded.trainer_tensors.get("m", {129, 3});
  REQUIRE(w.is_cuda());
  REQUIRE(m.is_cuda());
  REQUIRE(m.dtype() == DType::bf16);
  REQUIRE(w.to_vector() == weights.to_vector());
  REQUIRE(m.to_vector() == moment.to_vector());

  Tensor parameter = Tensor::zeros({129, 3}, {.device = Device::cuda()});
  loaded.tensors.copy_into("w", parameter);
  REQUIRE(parameter.to_vector() == weights.to_vector());
}
