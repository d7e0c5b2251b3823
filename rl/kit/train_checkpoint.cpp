// Resumable training checkpoints (see rl/kit/train_checkpoint.h).
#include "rl/kit/train_checkpoint.h"

#include <nlohmann/json.hpp>

#include "kernels/error.h"

namespace tiller::rl {

namespace {
constexpr const char* kOptimizerPrefix = "optimizer.";
}  // namespace

safetensors::NamedTensors parameter_tensors(const std::string& prefix,
                                            const ParameterList& params) {
  safetensors::NamedTensors out;
  for (const auto& p : params) out.emplace_back(prefix + p.name, p.tensor.detach().clone());
  return out;
}

void restore_parameters(const CheckpointTensors& tensors, const std::string& prefix,
                        const ParameterList& params) {
  for (const auto& p : params) {
    Tensor destination = p.tensor;
    tensors.copy_into(prefix + p.name, destination);
  }
}

safetensors::NamedTensors optimizer_tensors(const std::string& prefix,
                                            const optim::AdamW& optimizer) {
  safetensors::NamedTensors out;
  for (auto& [name, tensor] : optimizer.state().tensors) out.emplace_back(prefix + name, tensor);
  return out;
}

void restore_optimizer(const CheckpointTensors& tensors, const std::string& prefix, int64_t step,
                       optim::AdamW& optimizer, Device device) {
  optim::AdamWState state;
  state.step = step;
  for (const auto& [name, tensor] : tensors.all()) {
    if (name.rfind(prefix, 0) == 0) state.tensors[name.substr(prefix.size())] = tensor.to(device);
  }
  optimizer.load_state(state);
}

void save_training_checkpoint(const std::filesystem::path& dir, Transformer& model,
                              const optim::AdamW& optimizer, const std::string& trainer_json,
                              const std::optional<Tokenizer>& tokenizer,
                              const safetensors::NamedTensors& extra_tensors) {
  const Generator& dropout = model.dropout_generator();
  nlohmann::json state = nlohmann::json::parse(trainer_json);
  TILLER_CHECK(state.contains("step"), "save_training_checkpoint: the trainer state has no step");
  state["optimizer_step"] = optimizer.step_count();
  state["dropout_generator"] = {{"seed", dropout.seed}, {"offset", dropout.offset}};
  TrainerState trainer;
  trainer.json = state.dump(2);
  // A collective under ZeRO-1 (the moments are gathered): every rank comes here, rank 0 writes.
  trainer.tensors = optimizer_tensors(kOptimizerPrefix, optimizer);
  if (optimizer.communicator() != nullptr && !optimizer.communicator()->is_leader()) return;
  trainer.tensors.insert(trainer.tensors.end(), extra_tensors.begin(), extra_tensors.end());
  save_checkpoint(dir, model.hf_tensors(), model.config().to_hf_json(), trainer);
  if (tokenizer) tokenizer->save_tokenizer_json((dir / "tokenizer.json").string());
}

std::string load_training_checkpoint(const std::filesystem::path& dir, Transformer& model,
                                     optim::AdamW& optimizer, Device device, const char* who,
                                     CheckpointTensors* extra) {
  Checkpoint checkpoint = load_checkpoint(dir, Device::cpu());
  TILLER_CHECK(checkpoint.has_trainer_state,
               "{}: {} is a model directory without trainer state; it cannot be resumed (load it "
               "with Transformer::from_pretrained to start a new run)",
               who, dir.string());
  ModelConfig saved = ModelConfig::from_hf_json(checkpoint.config_json);
  TILLER_CHECK(saved.to_hf_json() == model.config().to_hf_json(),
               "{}: {} holds a different model configuration:\n{}\nthan this run's:\n{}", who,
               dir.string(), saved.to_hf_json(), model.config().to_hf_json());
  // The JSON fields are read before anything is loaded: a missing one changes nothing.
  // load_checkpoint has checked that the text is a JSON object.
  int64_t optimizer_step = 0;
  Generator saved_dropout;
  try {
    nlohmann::json state = nlohmann::json::parse(checkpoint.trainer_json);
    optimizer_step = saved_integer<int64_t>(state, "optimizer_step");
    saved_dropout.seed = saved_integer<uint64_t>(state.at("dropout_generator"), "seed");
    saved_dropout.offset = saved_integer<uint64_t>(state.at("dropout_generator"), "offset");
  } catch (const nlohmann::json::exception& error) {
    fail("{}: {}: a field is missing or has the wrong type: {}", who,
         (dir / "trainer_state.json").string(), error.what());
  }

  model.load_hf_tensors(checkpoint.tensors.all(), "checkpoint " + dir.string());
  restore_optimizer(checkpoint.trainer_tensors, kOptimizerPrefix, optimizer_step, optimizer,
                    device);
  Generator& dropout = model.dropout_generator();
  dropout.seed = saved_dropout.seed;
  dropout.offset = saved_dropout.offset;
  if (extra) *extra = checkpoint.trainer_tensors;
  return checkpoint.trainer_json;
}

}  // namespace tiller::rl
