// Resumable training checkpoints (see rl/train_checkpoint.h).
#include "rl/train_checkpoint.h"

#include <nlohmann/json.hpp>

#include "core/checkpoint.h"

namespace tiller::rl {

namespace {
constexpr const char* kOptimizerPrefix = "optimizer.";
}  // namespace

void save_training_checkpoint(const std::filesystem::path& dir, Transformer& model,
                              const optim::AdamW& optimizer, const std::string& trainer_json,
                              const std::optional<Tokenizer>& tokenizer) {
  optim::AdamWState optimizer_state = optimizer.state();
  const Generator& dropout = model.dropout_generator();
  nlohmann::json state = nlohmann::json::parse(trainer_json);
  state["optimizer_step"] = optimizer_state.step;
  state["dropout_generator"] = {{"seed", dropout.seed}, {"offset", dropout.offset}};
  TrainerState trainer;
  trainer.json = state.dump(2);
  for (auto& [name, tensor] : optimizer_state.tensors)
    trainer.tensors.emplace_back(kOptimizerPrefix + name, tensor);
  save_checkpoint(dir, model.hf_tensors(), model.config().to_hf_json(), trainer);
  if (tokenizer) tokenizer->save_tokenizer_json((dir / "tokenizer.json").string());
}

std::string load_training_checkpoint(const std::filesystem::path& dir, Transformer& model,
                                     optim::AdamW& optimizer, Device device, const char* who) {
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
  optim::AdamWState optimizer_state;
  Generator saved_dropout;
  try {
    nlohmann::json state = nlohmann::json::parse(checkpoint.trainer_json);
    optimizer_state.step = state.at("optimizer_step").get<int64_t>();
    saved_dropout.seed = state.at("dropout_generator").at("seed").get<uint64_t>();
    saved_dropout.offset = state.at("dropout_generator").at("offset").get<uint64_t>();
  } catch (const nlohmann::json::exception& error) {
    fail("{}: {}: a field is missing or has the wrong type: {}", who,
         (dir / "trainer_state.json").string(), error.what());
  }

  model.load_hf_tensors(checkpoint.tensors.all(), "checkpoint " + dir.string());
  const std::string prefix = kOptimizerPrefix;
  for (const auto& [name, tensor] : checkpoint.trainer_tensors.all()) {
    if (name.rfind(prefix, 0) == 0)
      optimizer_state.tensors[name.substr(prefix.size())] = tensor.to(device);
  }
  optimizer.load_state(optimizer_state);
  Generator& dropout = model.dropout_generator();
  dropout.seed = saved_dropout.seed;
  dropout.offset = saved_dropout.offset;
  return checkpoint.trainer_json;
}

}  // namespace tiller::rl
