// Transformer construction, initialisation and the forward pass (GPT-2 and Llama families).
//
// params_ is the single source of truth; Layer structs and the top-level handles are rebound
// from it by name (bind()) after construction and after every to(), so there is one place that
// decides which tensor is which. Loading and saving Hugging Face directories is in model_io.cpp.
//
// Shapes in the forward pass: B batch, T new tokens, C n_embd, H query heads, Hkv kv heads,
// D head_dim, I intermediate size, Vp padded vocab.
#include "core/models/model.h"

#include <cmath>
#include <cstring>

#include "core/tensor/autograd.h"
#include "core/ops/ops.h"

namespace tiller {

namespace {

constexpr float kInitStd = 0.02f;                    // GPT-2 / Llama initializer_range
constexpr uint64_t kDropoutSeedSalt = 0x5eedd40b0u;  // keeps dropout draws off the init stream

bool is_llama(const ModelConfig& c) {
  return c.family == ModelFamily::llama;
}

// Positions start..start+T-1 on `device`. The last tensor made is kept (per thread) and handed
// out again for the same request: a training step asks for the same positions every time, and on
// CUDA each new one would be a blocking upload (a host synchronisation). Nothing writes to it.
Tensor default_positions(int64_t start, int64_t T, Device device) {
  struct Cached {
    int64_t start = -1, T = -1;
    Device device = Device::cpu();
    Tensor positions;
  };
  thread_local Cached cached;
  if (cached.positions.defined() && cached.start == start && cached.T == T &&
      cached.device == device)
    return cached.positions;
  std::vector<int32_t> positions(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t)
    positions[static_cast<size_t>(t)] = static_cast<int32_t>(start + t);
  cached = {start, T, device, Tensor::from_ints(positions, {T}).to(device)};
  return cached.positions;
}

}  // namespace

int64_t KVCache::length() const {
  if (layers.empty() || !layers.front().k.defined()) return 0;
  return layers.front().k.size(2);
}

Transformer::Transformer(const ModelConfig& config, uint64_t seed)
    : Transformer(config, seed, /*initialise=*/true) {}

Transformer::Transformer(const ModelConfig& config, uint64_t seed, bool initialise)
    : config_(config), dropout_generator_(seed ^ kDropoutSeedSalt) {
  config_.validate();
  Generator gen(seed);
  const int64_t Vp = config_.padded_vocab_size(), C = config_.n_embd, I = config_.intermediate_size;
  const int64_t kv_width = config_.n_kv_head * config_.head_dim();
  const float residual_std = kInitStd / std::sqrt(2.f * static_cast<float>(config_.n_layer));
  auto matrix = [&](const std::string& name, Shape shape, float std) {
    add_parameter(name, std::move(shape), /*decay=*/true, std, 0.f, gen, initialise);
  };
  auto vector = [&](const std::string& name, int64_t n, float value) {
    add_parameter(name, {n}, /*decay=*/false, 0.f, value, gen, initialise);
  };
  auto table = [&](const std::string& name, int64_t rows) {
    add_parameter(name, {rows, C}, /*decay=*/false, kInitStd, 0.f, gen, initialise);
  };

  if (!is_llama(config_)) {
    table("wte.weight", Vp);
    table("wpe.weight", config_.max_seq_len);
    for (int64_t i = 0; i < config_.n_layer; ++i) {
      std::string p = fmt::format("h.{}.", i);
      vector(p + "ln_1.weight", C, 1.f);
      vector(p + "ln_1.bias", C, 0.f);
      matrix(p + "attn.c_attn.weight", {3 * C, C}, kInitStd);
      vector(p + "attn.c_attn.bias", 3 * C, 0.f);
      matrix(p + "attn.c_proj.weight", {C, C}, residual_std);
      vector(p + "attn.c_proj.bias", C, 0.f);
      vector(p + "ln_2.weight", C, 1.f);
      vector(p + "ln_2.bias", C, 0.f);
      matrix(p + "mlp.c_fc.weight", {I, C}, kInitStd);
      vector(p + "mlp.c_fc.bias", I, 0.f);
      matrix(p + "mlp.c_proj.weight", {C, I}, residual_std);
      vector(p + "mlp.c_proj.bias", C, 0.f);
    }
    vector("ln_f.weight", C, 1.f);
    vector("ln_f.bias", C, 0.f);
  } else {
    table("model.embed_tokens.weight", Vp);
    for (int64_t i = 0; i < config_.n_layer; ++i) {
      std::string p = fmt::format("model.layers.{}.", i);
      vector(p + "input_layernorm.weight", C, 1.f);
      matrix(p + "self_attn.q_proj.weight", {C, C}, kInitStd);
      matrix(p + "self_attn.k_proj.weight", {kv_width, C}, kInitStd);
      matrix(p + "self_attn.v_proj.weight", {kv_width, C}, kInitStd);
      matrix(p + "self_attn.o_proj.weight", {C, C}, residual_std);
      vector(p + "post_attention_layernorm.weight", C, 1.f);
      matrix(p + "mlp.gate_proj.weight", {I, C}, kInitStd);
      matrix(p + "mlp.up_proj.weight", {I, C}, kInitStd);
      matrix(p + "mlp.down_proj.weight", {C, I}, residual_std);
    }
    vector("model.norm.weight", C, 1.f);
  }
  if (!config_.tie_embeddings) matrix("lm_head.weight", {Vp, C}, kInitStd);

  // Padding rows start (and, receiving no gradient, stay) at zero.
  const int64_t V = config_.vocab_size;
  for (NamedParameter& p : params_) {
    if (p.tensor.dim() == 2 && p.tensor.size(0) == Vp && Vp > V &&
        (p.name == "wte.weight" || p.name == "model.embed_tokens.weight" ||
         p.name == "lm_head.weight"))
      std::memset(p.tensor.data<float>() + V * C, 0, static_cast<size_t>((Vp - V) * C) * 4);
  }
  bind();
}

void Transformer::add_parameter(const std::string& name, Shape shape, bool decay, float init_std,
                                float fill_value, Generator& gen, bool initialise) {
  Tensor t;
  if (!initialise)
    t = Tensor::zeros(shape);
  else if (init_std > 0.f)
    t = Tensor::randn(shape, gen, 0.f, init_std);
  else
    t = Tensor::full(shape, fill_value);
  t.requires_grad_();
  params_.push_back({name, t, decay});
}

const Tensor& Transformer::parameter(const std::string& name) const {
  for (const NamedParameter& p : params_)
    if (p.name == name) return p.tensor;
  fail("Transformer: no parameter named '{}' in this {} model", name, family_name(config_.family));
}

void Transformer::bind() {
  auto get = [&](const std::string& name) { return parameter(name); };
  layers_.assign(static_cast<size_t>(config_.n_layer), Layer{});
  for (int64_t i = 0; i < config_.n_layer; ++i) {
    Layer& l = layers_[static_cast<size_t>(i)];
    if (!is_llama(config_)) {
      std::string p = fmt::format("h.{}.", i);
      l.norm1_weight = get(p + "ln_1.weight");
      l.norm1_bias = get(p + "ln_1.bias");
      l.qkv_weight = get(p + "attn.c_attn.weight");
      l.qkv_bias = get(p + "attn.c_attn.bias");
      l.out_weight = get(p + "attn.c_proj.weight");
      l.out_bias = get(p + "attn.c_proj.bias");
      l.norm2_weight = get(p + "ln_2.weight");
      l.norm2_bias = get(p + "ln_2.bias");
      l.fc_weight = get(p + "mlp.c_fc.weight");
      l.fc_bias = get(p + "mlp.c_fc.bias");
      l.down_weight = get(p + "mlp.c_proj.weight");
      l.down_bias = get(p + "mlp.c_proj.bias");
    } else {
      std::string p = fmt::format("model.layers.{}.", i);
      l.norm1_weight = get(p + "input_layernorm.weight");
      l.q_weight = get(p + "self_attn.q_proj.weight");
      l.k_weight = get(p + "self_attn.k_proj.weight");
      l.v_weight = get(p + "self_attn.v_proj.weight");
      l.out_weight = get(p + "self_attn.o_proj.weight");
      l.norm2_weight = get(p + "post_attention_layernorm.weight");
      l.gate_weight = get(p + "mlp.gate_proj.weight");
      l.up_weight = get(p + "mlp.up_proj.weight");
      l.down_weight = get(p + "mlp.down_proj.weight");
    }
  }
  if (!is_llama(config_)) {
    token_embedding_ = get("wte.weight");
    position_embedding_ = get("wpe.weight");
    final_norm_weight_ = get("ln_f.weight");
    final_norm_bias_ = get("ln_f.bias");
  } else {
    token_embedding_ = get("model.embed_tokens.weight");
    final_norm_weight_ = get("model.norm.weight");
  }
  lm_head_ = config_.tie_embeddings ? token_embedding_ : get("lm_head.weight");
}

int64_t Transformer::num_parameters() const {
  int64_t total = 0;
  for (const NamedParameter& p : params_) total += p.tensor.numel();
  int64_t padding_rows = config_.padded_vocab_size() - config_.vocab_size;
  int64_t padded_tables = config_.tie_embeddings ? 1 : 2;
  return total - padded_tables * padding_rows * config_.n_embd;
}

Device Transformer::device() const {
  return params_.front().tensor.device();
}

void Transformer::to(Device device) {
  for (NamedParameter& p : params_) {
    if (p.tensor.device() == device) continue;
    p.tensor = p.tensor.detach().to(device);
    p.tensor.requires_grad_();
  }
  bind();
}

void Transformer::to(DType dtype) {
  TILLER_CHECK(dtype != DType::i32, "Transformer::to: parameters must stay floating point");
  NoGradGuard no_grad;
  for (NamedParameter& p : params_) {
    if (p.tensor.dtype() == dtype) continue;
    p.tensor = p.tensor.detach().to(dtype);
    p.tensor.requires_grad_();
  }
  bind();
}

void Transformer::zero_grad() {
  for (NamedParameter& p : params_) p.tensor.zero_grad();
}

KVCache Transformer::make_cache() const {
  KVCache cache;
  cache.layers.resize(static_cast<size_t>(config_.n_layer));
  return cache;
}

// ---- forward
// -------------------------------------------------------------------------------------

Tensor Transformer::norm(const Tensor& x, const Tensor& weight, const Tensor& bias) const {
  return is_llama(config_) ? rmsnorm(x, weight, config_.norm_eps)
                           : layernorm(x, weight, bias, config_.norm_eps);
}

Tensor Transformer::residual_dropout(const Tensor& x, bool training) {
  if (!training || config_.dropout == 0.f) return x;
  return dropout(x, config_.dropout, dropout_generator_, true);
}

Tensor Transformer::attention_block(const Tensor& x, const Layer& layer, size_t index,
                                    const Tensor& positions, const ForwardOptions& options) {
  const int64_t B = x.size(0), T = x.size(1), C = config_.n_embd;
  const int64_t H = config_.n_head, Hkv = config_.n_kv_head, D = config_.head_dim();
  Tensor q, k, v;  // (B, H or Hkv, T, D)
  if (!is_llama(config_)) {
    Tensor qkv = linear(x, layer.qkv_weight, layer.qkv_bias).reshape({B, T, 3, H, D});
    qkv = permute(qkv, {2, 0, 3, 1, 4});  // (3, B, H, T, D)
    q = slice(qkv, 0, 0, 1).reshape({B, H, T, D});
    k = slice(qkv, 0, 1, 2).reshape({B, H, T, D});
    v = slice(qkv, 0, 2, 3).reshape({B, H, T, D});
  } else {
    q = transpose(linear(x, layer.q_weight).reshape({B, T, H, D}), 1, 2);
    k = transpose(linear(x, layer.k_weight).reshape({B, T, Hkv, D}), 1, 2);
    v = transpose(linear(x, layer.v_weight).reshape({B, T, Hkv, D}), 1, 2);
    q = rope(q, positions, config_.rope_theta);
    k = rope(k, positions, config_.rope_theta);
  }
  if (options.cache) {
    LayerKVCache& entry = options.cache->layers[index];
    if (entry.k.defined()) {
      k = concat({entry.k, k}, 2);
      v = concat({entry.v, v}, 2);
    }
    entry.k = k;
    entry.v = v;
  }
  AttentionOptions attention_options{.causal = true,
                                     .key_padding_mask = options.key_padding_mask,
                                     .document_ids = options.document_ids,
                                     .scale = 0.f};
  Tensor y = attention(q, k, v, attention_options);  // (B, H, T, D)
  y = transpose(y, 1, 2).reshape({B, T, C});
  return linear(y, layer.out_weight, layer.out_bias);
}

Tensor Transformer::mlp_block(const Tensor& x, const Layer& layer) const {
  if (!is_llama(config_))
    return linear(gelu(linear(x, layer.fc_weight, layer.fc_bias)), layer.down_weight,
                  layer.down_bias);
  return linear(swiglu(linear(x, layer.gate_weight), linear(x, layer.up_weight)),
                layer.down_weight);
}

Tensor Transformer::hidden_states(const Tensor& ids, const ForwardOptions& options) {
  TILLER_CHECK(ids.defined() && ids.dtype() == DType::i32 && ids.dim() == 2,
               "Transformer::forward: ids must be (B, T) i32, got {}",
               ids.defined() ? ids.str() : "undefined");
  TILLER_CHECK(ids.device() == device(),
               "Transformer::forward: ids are on {} but the model is on {}", ids.device().str(),
               device().str());
  const int64_t T = ids.size(1);
  const int64_t past = options.cache ? options.cache->length() : 0;
  if (options.cache)
    TILLER_CHECK(options.cache->layers.size() == static_cast<size_t>(config_.n_layer),
                 "Transformer::forward: the KV cache has {} layers but the model has {}; create "
                 "it with make_cache()",
                 options.cache->layers.size(), config_.n_layer);
  Tensor positions = options.positions;
  if (!positions.defined()) {
    TILLER_CHECK(past + T <= config_.max_seq_len,
                 "Transformer::forward: {} cached + {} new tokens exceed max_seq_len {}", past, T,
                 config_.max_seq_len);
    positions = default_positions(past, T, device());
  }

  Tensor x = embedding(ids, token_embedding_);  // (B, T, C)
  if (!is_llama(config_)) x = x + embedding(positions, position_embedding_);
  x = residual_dropout(x, options.training);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = layers_[i];
    Tensor h = norm(x, layer.norm1_weight, layer.norm1_bias);
    x = x + residual_dropout(attention_block(h, layer, i, positions, options), options.training);
    h = norm(x, layer.norm2_weight, layer.norm2_bias);
    x = x + residual_dropout(mlp_block(h, layer), options.training);
  }
  return norm(x, final_norm_weight_, final_norm_bias_);
}

Tensor Transformer::forward(const Tensor& ids, const ForwardOptions& options) {
  return logits(hidden_states(ids, options));
}

Tensor Transformer::logits(const Tensor& hidden) const {
  TILLER_CHECK(hidden.defined() && hidden.dim() >= 1 && hidden.size(-1) == config_.n_embd,
               "Transformer::logits: hidden must be (..., n_embd = {}), got {}", config_.n_embd,
               hidden.defined() ? hidden.str() : "undefined");
  Tensor logits = linear(hidden, lm_head_);  // (..., Vp)
  if (config_.padded_vocab_size() != config_.vocab_size)
    logits = slice(logits, logits.dim() - 1, 0, config_.vocab_size);
  if (logits.dtype() != DType::f32) logits = logits.to(DType::f32);
  return logits;
}

Tensor Transformer::loss(const Tensor& ids, const Tensor& targets, int32_t ignore_index,
                         const ForwardOptions& options) {
  TILLER_CHECK(targets.defined() && targets.shape() == ids.shape(),
               "Transformer::loss: targets {} must have the shape of ids {}",
               targets.defined() ? shape_str(targets.shape()) : "undefined",
               shape_str(ids.shape()));
  return cross_entropy(forward(ids, options), targets, ignore_index);
}

}  // namespace tiller
