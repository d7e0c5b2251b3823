// Transformer: a decoder-only language model of the GPT-2 or Llama family (core/model_config.h),
// built from the differentiable ops in core/ops.h.
//
// Parameters are leaves named as in Hugging Face checkpoints and stored in tiller's layouts:
//   gpt2   wte.weight, wpe.weight, h.{i}.ln_1.{weight,bias}, h.{i}.attn.c_attn.{weight,bias},
//          h.{i}.attn.c_proj.{weight,bias}, h.{i}.ln_2.{weight,bias}, h.{i}.mlp.c_fc.{weight,bias},
//          h.{i}.mlp.c_proj.{weight,bias}, ln_f.{weight,bias}
//   llama  model.embed_tokens.weight, model.layers.{i}.input_layernorm.weight,
//          model.layers.{i}.self_attn.{q,k,v,o}_proj.weight,
//          model.layers.{i}.post_attention_layernorm.weight,
//          model.layers.{i}.mlp.{gate,up,down}_proj.weight, model.norm.weight, lm_head.weight
// Every linear weight is (out, in) — PyTorch's nn.Linear layout. Hugging Face GPT-2 stores its
// Conv1D weights as (in, out); save_pretrained / from_pretrained transpose them
// (core/model_io.cpp). With tied embeddings there is no lm_head.weight: wte / embed_tokens is used
// twice and receives the sum of both gradients.
//
// Padded vocabulary: embedding tables have config.padded_vocab_size() rows (a multiple of 64).
// The LM head runs over all padded rows, then the logits are SLICED to vocab_size, so the
// returned logits are exactly (B, T, vocab_size) and the padding rows get zero gradient and can
// never carry probability. Checkpoints store the unpadded vocab_size rows.
//
// Dropout (config.dropout, when ForwardOptions::training) applies to the embedding output and to
// each residual branch, as GPT-2 does; attention probabilities are not dropped (the fused
// attention kernel never materialises them).
//
// KV cache: pass a KVCache to forward and each layer appends this call's keys and values
// (post-rotary) to its entry, and the queries attend to everything cached so far — the building
// block for incremental generation (rl/). Positions then default to cache.length() + t.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/models/model_config.h"
#include "core/tensor/parameter.h"
#include "core/tensor/tensor.h"

namespace tiller {

// Keys and values of one layer, (B, n_kv_head, T_cached, head_dim).
struct LayerKVCache {
  Tensor k = {};
  Tensor v = {};
};

struct KVCache {
  std::vector<LayerKVCache> layers;
  int64_t length() const;  // cached time steps (0 when empty)
};

struct ForwardOptions {
  // (B, T) or (T) i32. Default: cache length + [0, T). Packed documents pass positions that
  // restart at 0 in each document.
  Tensor positions = {};
  // (B, T_cached + T) i32, nonzero = real token; optional.
  Tensor key_padding_mask = {};
  // (B, T_cached + T) i32; a token attends only within its document (packing); optional.
  Tensor document_ids = {};
  bool training = false;     // enables dropout
  KVCache* cache = nullptr;  // when set, k/v of this call are appended to it
};

class Transformer {
 public:
  // Initialises the weights from `seed` per family convention: N(0, 0.02) everywhere, residual
  // output projections (attn.c_proj / o_proj, mlp.c_proj / down_proj) N(0, 0.02 / sqrt(2 L)),
  // norm gains 1, biases and padding rows 0. Parameters live on the CPU in f32.
  explicit Transformer(const ModelConfig& config, uint64_t seed = 0);

  // Reads config.json + model.safetensors written by save_pretrained or Hugging Face.
  static Transformer from_pretrained(const std::filesystem::path& dir,
                                     Device device = Device::cpu());
  // Writes a Hugging Face-compatible directory (atomic, see core/checkpoint.h).
  void save_pretrained(const std::filesystem::path& dir) const;
  // Copies Hugging Face-named tensors (GPT-2 Conv1D layouts, unpadded vocab; an optional
  // "transformer." prefix and GPT-2's attention-mask buffers are accepted) into the parameters.
  void load_hf_tensors(const std::map<std::string, Tensor>& tensors, const std::string& source);
  // The parameters as Hugging Face names and layouts them (what save_pretrained writes).
  std::vector<std::pair<std::string, Tensor>> hf_tensors() const;

  // ids (B, T) i32 -> logits (B, T, vocab_size) f32; forward = lm_head(hidden_states).
  Tensor forward(const Tensor& ids, const ForwardOptions& options = {});
  // ids (B, T) i32 -> the final-norm output (B, T, n_embd) in the parameters' dtype, before the
  // LM head: what a scalar head (rl/reward.h) or a value head reads. Same options as forward; a
  // cache is appended to exactly as forward would.
  Tensor hidden_states(const Tensor& ids, const ForwardOptions& options = {});
  // hidden (..., n_embd), rows of hidden_states -> logits (..., vocab_size) f32 through the LM
  // head: forward(ids) == logits(hidden_states(ids)). Lets a caller score only the rows it needs.
  Tensor logits(const Tensor& hidden) const;
  // Mean next-token cross entropy of forward(ids) against targets (B, T) over non-ignored tokens.
  Tensor loss(const Tensor& ids, const Tensor& targets, int32_t ignore_index = -100,
              const ForwardOptions& options = {});

  const ModelConfig& config() const { return config_; }
  const ParameterList& parameters() const { return params_; }
  const Tensor& parameter(const std::string& name) const;  // throws on an unknown name
  // Parameter count as Hugging Face reports it (padding rows excluded); equals
  // config().num_parameters().
  int64_t num_parameters() const;
  Device device() const;

  // Move or convert every parameter (they stay leaves that require grad). Build the optimizer
  // after these calls: it holds the tensors it was given.
  void to(Device device);
  void to(DType dtype);
  void zero_grad();

  KVCache make_cache() const;  // one empty entry per layer
  Generator& dropout_generator() { return dropout_generator_; }

 private:
  struct Layer {  // handles into params_, rebound after to(); undefined where a family has none
    Tensor norm1_weight, norm1_bias;
    Tensor qkv_weight, qkv_bias;          // gpt2: fused c_attn (3C, C)
    Tensor q_weight, k_weight, v_weight;  // llama
    Tensor out_weight, out_bias;
    Tensor norm2_weight, norm2_bias;
    Tensor fc_weight, fc_bias;      // gpt2 c_fc (I, C)
    Tensor gate_weight, up_weight;  // llama
    Tensor down_weight, down_bias;  // gpt2 mlp.c_proj / llama down_proj, (C, I)
  };

  Transformer(const ModelConfig& config, uint64_t seed, bool initialise);
  void add_parameter(const std::string& name, Shape shape, bool decay, float init_std,
                     float fill_value, Generator& gen, bool initialise);
  void bind();
  Tensor norm(const Tensor& x, const Tensor& weight, const Tensor& bias) const;
  Tensor attention_block(const Tensor& x, const Layer& layer, size_t index, const Tensor& positions,
                         const ForwardOptions& options);
  Tensor mlp_block(const Tensor& x, const Layer& layer) const;
  Tensor residual_dropout(const Tensor& x, bool training);

  ModelConfig config_;
  ParameterList params_;
  std::vector<Layer> layers_;
  Tensor token_embedding_, position_embedding_, final_norm_weight_, final_norm_bias_, lm_head_;
  Generator dropout_generator_;
};

}  // namespace tiller
