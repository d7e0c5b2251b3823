// Atomic file writes and checkpoint directories: what survives a failure, what a round trip
// preserves, and the errors a caller sees for a checkpoint that does not fit its model.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "core/io/atomic_file.h"
#include "core/io/checkpoint.h"
#include "support/temp_dir.h"

using namespace tiller;
using tiller::testing::TempDir;

namespace {

std::string read_text(const std::filesystem::path& path) {
  return read_file_bytes(path);
}

// Every entry of a directory, so a test can assert that no temporary file or directory is left.
std::vector<std::string> entries(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
}

}  // namespace

TEST_CASE("write_file_atomic writes a new file and replaces an existing one", "[checkpoint]") {
  TempDir dir;
  write_file_atomic(dir / "notes.txt", "first");
  REQUIRE(read_text(dir / "notes.txt") == "first");
  write_file_atomic(dir / "notes.txt", [](FileSink& sink) {
    sink.write("second, ");
    sink.write("in two parts");
    REQUIRE(sink.bytes_written() == 20);
  });
  REQUIRE(read_text(dir / "notes.txt") == "second, in two parts");
  REQUIRE(entries(dir.path()) == std::vector<std::string>{"notes.txt"});
}

TEST_CASE("write_file_atomic leaves the old file intact when the writer throws midway",
          "[checkpoint]") {
  TempDir dir;
  write_file_atomic(dir / "weights.bin", "the previous, complete contents");
  auto failing_writer = [](FileSink& sink) {
    std::string half(1 << 20, 'x');  // large enough that some of it reaches the temporary file
    sink.write(half);
    throw std::runtime_error("disk quota exceeded halfway");
  };
  REQUIRE_THROWS_WITH(write_file_atomic(dir / "weights.bin", failing_writer),
                      "disk quota exceeded halfway");
  REQUIRE(read_text(dir / "weights.bin") == "the previous, complete contents");
  REQUIRE(entries(dir.path()) == std::vector<std::string>{"weights.bin"});  // temporary removed
}

TEST_CASE("write_file_atomic names the file and the system error when it cannot write",
          "[checkpoint]") {
  TempDir dir;
  auto target = dir / "missing-directory" / "file.txt";
  REQUIRE_THROWS_WITH(write_file_atomic(target, "x"),
                      Catch::Contains(target.string()) &&
                          Catch::Contains("No such file or directory") && Catch::Contains("errno"));
  REQUIRE_THROWS_WITH(
      read_file_bytes(dir / "absent"),
      Catch::Contains((dir / "absent").string()) && Catch::Contains("No such file or directory"));
}

TEST_CASE("a checkpoint directory round-trips model tensors, config and trainer state",
          "[checkpoint]") {
  TempDir root;
  Generator gen(5);
  Tensor wte = Tensor::randn({16, 8}, gen);
  Tensor ln_bias = Tensor::randn({8}, gen, 0.f, 1.f, {.dtype = DType::bf16});
  Tensor moment = Tensor::randn({16, 8}, gen);
  Tensor data_order = Tensor::from_ints({3, 0, 2, 1}, {4});
  TrainerState state{
      .tensors = {{"adamw.m.wte.weight", moment}, {"loader.order", data_order}},
      .json = R"({"step": 1200, "rng": {"seed": 18446744073709551615, "offset": 77}})"};
  auto dir = root / "step-1200";
  save_checkpoint(dir, {{"wte.weight", wte}, {"ln_f.bias", ln_bias}},
                  R"({"model_type": "gpt2", "n_layer": 2, "n_embd": 8})", state);

  REQUIRE(entries(dir) == std::vector<std::string>{"config.json", "model.safetensors",
                                                   "trainer_state.json",
                                                   "trainer_state.safetensors"});
  REQUIRE(entries(root.path()) == std::vector<std::string>{"step-1200"});

  Checkpoint loaded = load_checkpoint(dir);
  REQUIRE(loaded.tensors.size() == 2);
  REQUIRE(same_bytes(loaded.tensors.get("wte.weight", {16, 8}), wte));
  REQUIRE(same_bytes(loaded.tensors.get("ln_f.bias", {8}), ln_bias));
  REQUIRE_THAT(loaded.config_json, Catch::Contains(R"("n_layer": 2)"));
  REQUIRE_THAT(loaded.config_json, Catch::Contains(R"("model_type": "gpt2")"));
  REQUIRE(loaded.has_trainer_state);
  REQUIRE(same_bytes(loaded.trainer_tensors.get("adamw.m.wte.weight"), moment));
  REQUIRE(loaded.trainer_tensors.get("loader.order").to_int_vector() ==
          std::vector<int32_t>{3, 0, 2, 1});
  REQUIRE_THAT(loaded.trainer_json, Catch::Contains(R"("step": 1200)"));
  REQUIRE_THAT(loaded.trainer_json, Catch::Contains("18446744073709551615"));  // u64 kept exact
}

TEST_CASE("saving over a checkpoint replaces the whole directory and leaves nothing behind",
          "[checkpoint]") {
  TempDir root;
  auto dir = root / "latest";
  save_checkpoint(dir, {{"w", Tensor::ones({2})}}, R"({"version": 1})",
                  TrainerState{.tensors = {{"m", Tensor::zeros({2})}}, .json = R"({"step": 1})"});
  save_checkpoint(dir.string() + "/", {{"w", Tensor::full({3}, 2.f)}}, R"({"version": 2})");

  REQUIRE(entries(root.path()) == std::vector<std::string>{"latest"});
  REQUIRE(entries(dir) == std::vector<std::string>{"config.json", "model.safetensors"});
  Checkpoint loaded = load_checkpoint(dir);
  REQUIRE(loaded.tensors.get("w").to_vector() == std::vector<float>{2.f, 2.f, 2.f});
  REQUIRE_THAT(loaded.config_json, Catch::Contains(R"("version": 2)"));
  REQUIRE_FALSE(loaded.has_trainer_state);
}

TEST_CASE("a failed save keeps the previous checkpoint and removes its staging directory",
          "[checkpoint]") {
  TempDir root;
  auto dir = root / "ckpt";
  save_checkpoint(dir, {{"w", Tensor::ones({2})}}, R"({"version": 1})");

  REQUIRE_THROWS_WITH(
      save_checkpoint(dir, {{"w", Tensor::ones({2})}}, R"({"version": )"),
      Catch::Contains(dir.string()) && Catch::Contains("config.json is not valid JSON"));
  REQUIRE_THROWS_WITH(save_checkpoint(dir, {{"w", Tensor::ones({2})}}, "[1, 2]"),
                      Catch::Contains("config.json is a JSON array, expected an object"));
  // Fails while writing model.safetensors, after the staging directory exists.
  REQUIRE_THROWS_WITH(save_checkpoint(dir, {{"w", Tensor::ones({2})}, {"w", Tensor::ones({1})}},
                                      R"({"version": 2})"),
                      Catch::Contains("tensor name 'w' appears twice"));

  REQUIRE(entries(root.path()) == std::vector<std::string>{"ckpt"});
  Checkpoint loaded = load_checkpoint(dir);
  REQUIRE(loaded.tensors.get("w").to_vector() == std::vector<float>{1.f, 1.f});
  REQUIRE_THAT(loaded.config_json, Catch::Contains(R"("version": 1)"));
}

TEST_CASE("save_checkpoint refuses to replace a directory that is not a checkpoint",
          "[checkpoint]") {
  TempDir root;
  auto precious = root / "home";
  std::filesystem::create_directories(precious);
  write_file_atomic(precious / "thesis.tex", "years of work");
  REQUIRE_THROWS_WITH(
      save_checkpoint(precious, {{"w", Tensor::ones({1})}}, "{}"),
      Catch::Contains(precious.string()) &&
          Catch::Contains("refusing to replace a directory that is not a checkpoint"));
  REQUIRE(read_text(precious / "thesis.tex") == "years of work");

  write_file_atomic(root / "plain-file", "not a directory");
  REQUIRE_THROWS_WITH(save_checkpoint(root / "plain-file", {{"w", Tensor::ones({1})}}, "{}"),
                      Catch::Contains("exists and is not a directory"));
}

TEST_CASE("checkpoint tensors are fetched with a shape check that names both shapes",
          "[checkpoint]") {
  TempDir root;
  auto dir = root / "gpt2";
  save_checkpoint(dir, {{"h.0.attn.c_attn.weight", Tensor::zeros({768, 2304})}}, "{}");
  Checkpoint loaded = load_checkpoint(dir);

  REQUIRE_THROWS_WITH(loaded.tensors.get("h.0.attn.c_attn.weight", {2304, 768}),
                      fmt::format("checkpoint {}: tensor h.0.attn.c_attn.weight is (768,2304) but "
                                  "the model expects (2304,768)",
                                  dir.string()));
  REQUIRE_THROWS_WITH(loaded.tensors.get("h.0.attn.c_proj.weight"),
                      fmt::format("checkpoint {}: no tensor named h.0.attn.c_proj.weight (it "
                                  "holds 1 tensors)",
                                  dir.string()));
  REQUIRE(loaded.tensors.contains("h.0.attn.c_attn.weight"));
  REQUIRE_FALSE(loaded.tensors.contains("h.0.attn.c_proj.weight"));
}

TEST_CASE("copy_into checks the shape and converts to the destination's dtype", "[checkpoint]") {
  TempDir root;
  auto dir = root / "ckpt";
  save_checkpoint(dir, {{"w", Tensor::from_vector({1.5f, -2.f, 3.f}, {3})}}, "{}");
  Checkpoint loaded = load_checkpoint(dir);

  Tensor parameter = Tensor::zeros({3}, {.dtype = DType::bf16});
  loaded.tensors.copy_into("w", parameter);
  REQUIRE(parameter.dtype() == DType::bf16);
  REQUIRE(parameter.to_vector() == std::vector<float>{1.5f, -2.f, 3.f});

  Tensor wrong = Tensor::zeros({1, 3});
  REQUIRE_THROWS_WITH(loaded.tensors.copy_into("w", wrong),
                      Catch::Contains("tensor w is (3) but the model expects (1,3)"));
  REQUIRE(wrong.to_vector() == std::vector<float>{0.f, 0.f, 0.f});
}

TEST_CASE("load_checkpoint names the directory and the file that is missing or broken",
          "[checkpoint]") {
  TempDir root;
  auto dir = root / "ckpt";
  REQUIRE_THROWS_WITH(load_checkpoint(dir),
                      fmt::format("checkpoint {}: not a directory", dir.string()));

  save_checkpoint(dir, {{"w", Tensor::ones({1})}}, "{}",
                  TrainerState{.tensors = {{"m", Tensor::ones({1})}}, .json = "{}"});
  std::filesystem::remove(dir / "trainer_state.json");
  REQUIRE_THROWS_WITH(load_checkpoint(dir),
                      Catch::Contains("has trainer_state.safetensors but not trainer_state.json"));

  std::filesystem::remove(dir / "trainer_state.safetensors");
  write_file_atomic(dir / "config.json", "{\"n_layer\": ");
  REQUIRE_THROWS_WITH(
      load_checkpoint(dir),
      Catch::StartsWith(fmt::format("checkpoint {}: config.json is not valid JSON", dir.string())));

  std::filesystem::remove(dir / "config.json");
  REQUIRE_THROWS_WITH(load_checkpoint(dir),
                      fmt::format("checkpoint {}: config.json is missing", dir.string()));

  write_file_atomic(dir / "config.json", "{}");
  write_file_atomic(dir / "model.safetensors", "short");
  REQUIRE_THROWS_WITH(load_checkpoint(dir),
                      Catch::Contains((dir / "model.safetensors").string()) &&
                          Catch::Contains("shorter than the 8-byte header length"));
}
