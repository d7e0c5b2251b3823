// Checkpoint directories: the model as Hugging Face lays it out, plus what an exact resume needs.
//
//   <dir>/model.safetensors          model tensors (names chosen by the model code, e.g. HF's)
//   <dir>/config.json                model configuration (JSON object)
//   <dir>/trainer_state.safetensors  optional: optimizer moments, master weights, ...
//   <dir>/trainer_state.json         optional: step, RNG seed and offset, data-loader position, ...
//
// Design choice: JSON crosses this API as text, so the public headers need no JSON library; the
// caller builds it with whatever it likes and save_checkpoint checks it is a JSON object.
//
// The directory is replaced as a whole: files are written into "<dir>.tmp-<random>" beside it,
// fsynced, and the finished directory is atomically exchanged with the old one (or renamed into
// place), so a crash leaves either the previous checkpoint or the new one, never a mix. To avoid
// ever deleting something that is not ours, an existing <dir> is only replaced when it is empty or
// holds a config.json or model.safetensors.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "core/io/safetensors.h"
#include "core/tensor/tensor.h"

namespace tiller {

struct TrainerState {
  safetensors::NamedTensors tensors;  // optimizer moments, master weights, ...
  std::string json = "{}";            // JSON object: step, rng seed/offset, data position, ...
};

void save_checkpoint(const std::filesystem::path& dir, const safetensors::NamedTensors& tensors,
                     const std::string& config_json,
                     const std::optional<TrainerState>& trainer_state = std::nullopt);

// A set of tensors read from one file of a checkpoint, with shape-checked access.
class CheckpointTensors {
 public:
  CheckpointTensors() = default;
  CheckpointTensors(std::string source, std::map<std::string, Tensor> tensors)
      : source_(std::move(source)), tensors_(std::move(tensors)) {}

  bool contains(const std::string& name) const { return tensors_.count(name) > 0; }
  const std::map<std::string, Tensor>& all() const { return tensors_; }
  size_t size() const { return tensors_.size(); }

  // Throws "checkpoint <dir>: no tensor named X" when absent.
  const Tensor& get(const std::string& name) const;
  // Also throws "checkpoint <dir>: tensor X is (768,2304) but the model expects (2304,768)".
  const Tensor& get(const std::string& name, const Shape& expected_shape) const;
  // Checks the shape against `destination` and copies into it, converting dtype and device.
  void copy_into(const std::string& name, Tensor& destination) const;

 private:
  std::string source_;  // "checkpoint <dir>", the prefix of every error
  std::map<std::string, Tensor> tensors_;
};

struct Checkpoint {
  std::filesystem::path dir;
  CheckpointTensors tensors;  // from model.safetensors
  std::string config_json;    // config.json as written
  bool has_trainer_state = false;
  CheckpointTensors trainer_tensors;  // from trainer_state.safetensors when has_trainer_state
  std::string trainer_json;           // trainer_state.json when has_trainer_state
};

// Loads every tensor onto `device`. The trainer-state files must be both present or both absent.
Checkpoint load_checkpoint(const std::filesystem::path& dir, Device device = Device::cpu());

}  // namespace tiller
