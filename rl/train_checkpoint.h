// Resumable training checkpoints shared by the trainers (pretraining, SFT).
//
// A training checkpoint is a Hugging Face model directory (Transformer::save_pretrained's
// tensors and config.json) plus trainer_state.{json,safetensors}: the AdamW moments as
// "optimizer.<name>" tensors, and a JSON object holding the optimizer step, the model's dropout
// generator (seed, offset) and whatever the trainer adds (its step, data position, shape checks).
// Everything is written through tiller::save_checkpoint (temporary directory, fsync, atomic swap),
// and tokenizer.json is written beside the model when one is given, so the directory also loads
// as a plain model repository.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "core/model.h"
#include "core/tokenizer.h"
#include "optim/adamw.h"

namespace tiller::rl {

// Upper bound on the step, epoch and token counters a trainer reads back from trainer_state.json:
// far beyond any real run, and far enough below INT64_MAX that counting on cannot overflow.
inline constexpr int64_t kMaxSavedCount = int64_t{1} << 53;

// `trainer_json` is a JSON object of the trainer's own fields; the optimizer step and dropout
// generator are added to it here.
void save_training_checkpoint(const std::filesystem::path& dir, Transformer& model,
                              const optim::AdamW& optimizer, const std::string& trainer_json,
                              const std::optional<Tokenizer>& tokenizer);

// Checks that `dir` holds trainer state for the same model configuration, loads the weights into
// `model`, the AdamW state into `optimizer` (on `device`) and the dropout generator, and returns
// the trainer's JSON object (as text) for the caller's own fields. Errors start with `who`.
std::string load_training_checkpoint(const std::filesystem::path& dir, Transformer& model,
                                     optim::AdamW& optimizer, Device device, const char* who);

}  // namespace tiller::rl
