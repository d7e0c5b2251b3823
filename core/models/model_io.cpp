// Transformer <-> Hugging Face directories (config.json + model.safetensors).
//
// Two layout differences are handled here and nowhere else:
//   - GPT-2's Conv1D weights (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj) are (in, out) in
//     Hugging Face files and (out, in) in tiller: transposed on the way in and out;
//   - vocabulary tables are padded to a multiple of 64 rows in tiller and unpadded in files.
// Loading is strict about the model's own tensors (every one must be present with the exact
// shape) and lenient only about what Hugging Face itself writes besides them: the "transformer."
// prefix of GPT2LMHeadModel state dicts, GPT-2's causal-mask buffers, and lm_head.weight when the
// embeddings are tied. Any other extra tensor is an error: it usually means the wrong family.

#include "core/tensor/autograd.h"
#include "core/io/checkpoint.h"
#include "core/models/model.h"
#include "core/ops/ops.h"

namespace tiller {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_conv1d_weight(const ModelConfig& c, const std::string& name) {
  return c.family == ModelFamily::gpt2 &&
         (ends_with(name, "attn.c_attn.weight") || ends_with(name, "attn.c_proj.weight") ||
          ends_with(name, "mlp.c_fc.weight") || ends_with(name, "mlp.c_proj.weight"));
}

bool is_vocab_table(const std::string& name) {
  return name == "wte.weight" || name == "model.embed_tokens.weight" || name == "lm_head.weight";
}

// Tensors Hugging Face files may hold that are not parameters of this model.
bool is_ignorable(const ModelConfig& c, const std::string& name) {
  if (name == "lm_head.weight") return c.tie_embeddings;
  return c.family == ModelFamily::gpt2 &&
         (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias"));
}

}  // namespace

std::vector<std::pair<std::string, Tensor>> Transformer::hf_tensors() const {
  NoGradGuard no_grad;
  std::vector<std::pair<std::string, Tensor>> out;
  out.reserve(params_.size());
  for (const NamedParameter& p : params_) {
    Tensor t = p.tensor.detach();
    if (is_conv1d_weight(config_, p.name)) {
      t = transpose(t, 0, 1);
    } else if (is_vocab_table(p.name) && t.size(0) != config_.vocab_size) {
      t = slice(t, 0, 0, config_.vocab_size);
    }
    out.emplace_back(p.name, t);
  }
  return out;
}

void Transformer::load_hf_tensors(const std::map<std::string, Tensor>& tensors,
                                  const std::string& source) {
  std::map<std::string, Tensor> by_name;
  const std::string prefix = "transformer.";
  for (const auto& [name, t] : tensors) {
    std::string key = name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
    if (is_ignorable(config_, key)) continue;
    by_name[key] = t;
  }
  NoGradGuard no_grad;
  size_t used = 0;
  for (NamedParameter& p : params_) {
    auto it = by_name.find(p.name);
    TILLER_CHECK(it != by_name.end(), "{}: no tensor named '{}' (a {} model with {} layers)",
                 source, p.name, family_name(config_.family), config_.n_layer);
    Shape expected = p.tensor.shape();
    bool conv1d = is_conv1d_weight(config_, p.name);
    bool padded = is_vocab_table(p.name) && expected[0] != config_.vocab_size;
    if (conv1d) std::swap(expected[0], expected[1]);
    if (padded) expected[0] = config_.vocab_size;
    const Tensor& src = it->second;
    TILLER_CHECK(src.shape() == expected, "{}: tensor '{}' is {} but the model expects {}{}",
                 source, p.name, shape_str(src.shape()), shape_str(expected),
                 conv1d ? " (Hugging Face Conv1D layout, (in, out))" : "");
    Tensor value = src.to(Device::cpu()).to(DType::f32);
    if (conv1d) value = transpose(value, 0, 1);
    if (padded) {
      Tensor zeros = Tensor::zeros({p.tensor.size(0) - config_.vocab_size, config_.n_embd});
      value = concat({value, zeros}, 0);
    }
    p.tensor.copy_(value);
    ++used;
  }
  if (used != by_name.size()) {
    for (const auto& [name, t] : by_name) {
      bool known = false;
      for (const NamedParameter& p : params_) known = known || p.name == name;
      TILLER_CHECK(known,
                   "{}: unexpected tensor '{}' {} for a {} model; is this checkpoint of "
                   "another family or size?",
                   source, name, shape_str(t.shape()), family_name(config_.family));
    }
  }
}

void Transformer::save_pretrained(const std::filesystem::path& dir) const {
  save_checkpoint(dir, hf_tensors(), config_.to_hf_json());
}

Transformer Transformer::from_pretrained(const std::filesystem::path& dir, Device device) {
  Checkpoint checkpoint = load_checkpoint(dir, Device::cpu());
  ModelConfig config = ModelConfig::from_hf_json(checkpoint.config_json);
  Transformer model(config, 0, /*initialise=*/false);
  model.load_hf_tensors(checkpoint.tensors.all(), "checkpoint " + dir.string());
  if (!device.is_cpu()) model.to(device);
  return model;
}

}  // namespace tiller
