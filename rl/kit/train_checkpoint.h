// Resumable training checkpoints shared by every trainer.
//
// A training checkpoint is a Hugging Face model directory (Transformer::save_pretrained's
// tensors and config.json) plus trainer_state.{json,safetensors}: the AdamW moments as
// "optimizer.<name>" tensors, and a JSON object holding the optimizer step, the model's dropout
// generator (seed, offset) and whatever the trainer adds (its step, data position, shape checks).
// Trainers with more than one model (PPO's critic and frozen reference, a reward model's head)
// add those weights and their optimizers' state as extra named tensors under their own prefixes
// (parameter_tensors / optimizer_tensors, and restore_* on load).
// Everything is written through tiller::save_checkpoint (temporary directory, fsync, atomic swap),
// and tokenizer.json is written beside the model when one is given, so the directory also loads
// as a plain model repository.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "core/data/loader.h"
#include "core/io/checkpoint.h"
#include "core/models/model.h"
#include "core/text/tokenizer.h"
#include "optim/adamw.h"

namespace tiller::rl {

// Upper bound on the step, epoch and token counters a trainer reads back from trainer_state.json:
// far beyond any real run, and far enough below INT64_MAX that counting on cannot overflow.
inline constexpr int64_t kMaxSavedCount = int64_t{1} << 53;

// object[key] as an integer of type T, for trainers reading trainer_state.json (Json is
// nlohmann::json, kept a template so this header does not need it). Only a JSON integer is taken:
// nlohmann's get<T> converts a float such as 1e30 with undefined behaviour. Throws the JSON
// library's own exception, which the caller turns into a tiller::Error naming the file.
template <typename T, typename Json>
T saved_integer(const Json& object, const char* key) {
  const Json& value = object.at(key);
  if (!value.is_number_integer())
    throw Json::type_error::create(302, std::string("'") + key + "' must be an integer", &value);
  return value.template get<T>();
}

// A TokenLoader's position as a trainer_state.json object ({"epoch", "cursor", "seed"}), and
// object[key] read back with saved_integer's checks (the pretraining and SFT replay loaders).
template <typename Json>
Json loader_state_json(const TokenLoaderState& state) {
  return Json{{"epoch", state.epoch}, {"cursor", state.cursor}, {"seed", state.seed}};
}
template <typename Json>
TokenLoaderState saved_loader_state(const Json& object, const char* key) {
  const Json& saved = object.at(key);
  return {.epoch = saved_integer<int64_t>(saved, "epoch"),
          .cursor = saved_integer<int64_t>(saved, "cursor"),
          .seed = saved_integer<uint64_t>(saved, "seed")};
}

// `trainer_json` is a JSON object of the trainer's own fields ("step" is required: it names the
// checkpoint's place in the run); the optimizer step and dropout generator are added to it here.
// Data parallel: every rank calls it (ZeRO-1 gathers the optimizer state) and rank 0 writes.
void save_training_checkpoint(const std::filesystem::path& dir, Transformer& model,
                              const optim::AdamW& optimizer, const std::string& trainer_json,
                              const std::optional<Tokenizer>& tokenizer,
                              const safetensors::NamedTensors& extra_tensors = {});

// Checks that `dir` holds trainer state for the same model configuration, loads the weights into
// `model`, the AdamW state into `optimizer` (on `device`) and the dropout generator, and returns
// the trainer's JSON object (as text) for the caller's own fields. Errors start with `who`.
// `extra`, when given, receives every trainer tensor (for restore_parameters / restore_optimizer).
std::string load_training_checkpoint(const std::filesystem::path& dir, Transformer& model,
                                     optim::AdamW& optimizer, Device device, const char* who,
                                     CheckpointTensors* extra = nullptr);

// "<prefix><parameter name>" -> weights (copies), and back into the same parameters.
safetensors::NamedTensors parameter_tensors(const std::string& prefix, const ParameterList& params);
void restore_parameters(const CheckpointTensors& tensors, const std::string& prefix,
                        const ParameterList& params);
// "<prefix><moment name>" -> an optimizer's moments and masters; its step goes in the JSON.
safetensors::NamedTensors optimizer_tensors(const std::string& prefix,
                                            const optim::AdamW& optimizer);
void restore_optimizer(const CheckpointTensors& tensors, const std::string& prefix, int64_t step,
                       optim::AdamW& optimizer, Device device);

}  // namespace tiller::rl
