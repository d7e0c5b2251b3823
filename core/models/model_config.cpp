// ModelConfig validation, parameter counting and Hugging Face config.json conversion.
//
// The JSON field names are Hugging Face's (GPT-2: n_embd, n_layer, n_positions, n_inner,
// layer_norm_epsilon; Llama: hidden_size, num_hidden_layers, num_key_value_heads, rms_norm_eps,
// rope_theta), so a directory saved here opens with transformers' from_pretrained and back.
#include "core/models/model_config.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include <type_traits>

#include "kernels/error.h"

namespace tiller {

const char* family_name(ModelFamily family) {
  return family == ModelFamily::gpt2 ? "gpt2" : "llama";
}

ModelConfig ModelConfig::gpt2(int64_t vocab_size, int64_t n_layer, int64_t n_head, int64_t n_embd,
                              int64_t max_seq_len) {
  ModelConfig c;
  c.family = ModelFamily::gpt2;
  c.vocab_size = vocab_size;
  c.n_layer = n_layer;
  c.n_head = n_head;
  c.n_kv_head = n_head;
  c.n_embd = n_embd;
  c.intermediate_size = 4 * n_embd;
  c.max_seq_len = max_seq_len;
  c.norm_eps = 1e-5f;
  c.tie_embeddings = true;
  return c;
}

ModelConfig ModelConfig::llama(int64_t vocab_size, int64_t n_layer, int64_t n_head,
                               int64_t n_kv_head, int64_t n_embd, int64_t intermediate_size,
                               int64_t max_seq_len) {
  ModelConfig c;
  c.family = ModelFamily::llama;
  c.vocab_size = vocab_size;
  c.n_layer = n_layer;
  c.n_head = n_head;
  c.n_kv_head = n_kv_head;
  c.n_embd = n_embd;
  c.intermediate_size = intermediate_size;
  c.max_seq_len = max_seq_len;
  c.norm_eps = 1e-6f;
  c.rope_theta = 10000.f;
  c.tie_embeddings = false;
  return c;
}

int64_t ModelConfig::padded_vocab_size() const {
  return (vocab_size + kVocabMultiple - 1) / kVocabMultiple * kVocabMultiple;
}

void ModelConfig::validate() const {
  const char* f = family_name(family);
  TILLER_CHECK(vocab_size > 0 && n_layer > 0 && n_head > 0 && n_kv_head > 0 && n_embd > 0 &&
                   intermediate_size > 0 && max_seq_len > 0,
               "ModelConfig ({}): sizes must be positive: vocab_size {} n_layer {} n_head {} "
               "n_kv_head {} n_embd {} intermediate_size {} max_seq_len {}",
               f, vocab_size, n_layer, n_head, n_kv_head, n_embd, intermediate_size, max_seq_len);
  for (auto [name, size] : {std::pair{"vocab_size", vocab_size},
                            {"n_layer", n_layer},
                            {"n_head", n_head},
                            {"n_embd", n_embd},
                            {"intermediate_size", intermediate_size},
                            {"max_seq_len", max_seq_len}}) {
    TILLER_CHECK(size <= kMaxSize, "ModelConfig ({}): {} {} is larger than {}", f, name, size,
                 kMaxSize);
  }
  // Each size fits 31 bits, so this count cannot overflow 128 bits; num_parameters() (int64) and
  // every table's byte size stay exact below the bound.
  const __int128 C = n_embd, I = intermediate_size, V = vocab_size, L = n_layer;
  const __int128 parameters = L * (4 * C * C + 3 * C * I + 8 * C + 2 * I) + 2 * V * C +
                              static_cast<__int128>(max_seq_len) * C + 2 * C;
  TILLER_CHECK(parameters <= kMaxParameters,
               "ModelConfig ({}): about {:.3g} parameters (n_layer {} n_embd {} intermediate_size "
               "{} vocab_size {}) is more than tiller can address",
               f, static_cast<double>(parameters), n_layer, n_embd, intermediate_size, vocab_size);
  TILLER_CHECK(n_embd % n_head == 0, "ModelConfig ({}): n_embd {} is not divisible by n_head {}", f,
               n_embd, n_head);
  TILLER_CHECK(n_head % n_kv_head == 0,
               "ModelConfig ({}): n_head {} is not a multiple of n_kv_head {}", f, n_head,
               n_kv_head);
  TILLER_CHECK(family != ModelFamily::gpt2 || n_kv_head == n_head,
               "ModelConfig (gpt2): GPT-2 has no grouped-query attention; n_kv_head {} must equal "
               "n_head {}",
               n_kv_head, n_head);
  TILLER_CHECK(family != ModelFamily::llama || head_dim() % 2 == 0,
               "ModelConfig (llama): rotary embeddings need an even head_dim, got {}", head_dim());
  // Finite too: a config.json value such as 1e205 becomes inf as a float, which would be written
  // back as null.
  TILLER_CHECK(std::isfinite(norm_eps) && norm_eps > 0.f,
               "ModelConfig ({}): norm_eps must be positive and finite, got {}", f, norm_eps);
  TILLER_CHECK(dropout >= 0.f && dropout < 1.f,
               "ModelConfig ({}): dropout must be in [0, 1), got {}", f, dropout);
  TILLER_CHECK(std::isfinite(rope_theta) && rope_theta > 0.f,
               "ModelConfig ({}): rope_theta must be positive, got {}", f, rope_theta);
}

int64_t ModelConfig::num_parameters() const {
  const int64_t C = n_embd, I = intermediate_size, V = vocab_size;
  const int64_t kv_width = n_kv_head * head_dim();
  int64_t per_layer = 0;
  int64_t outside = V * C;  // token embedding
  if (family == ModelFamily::gpt2) {
    per_layer = 2 * 2 * C                // ln_1, ln_2 (weight + bias)
                + 3 * C * C + 3 * C      // c_attn
                + C * C + C              // attn.c_proj
                + C * I + I              // mlp.c_fc
                + I * C + C;             // mlp.c_proj
    outside += max_seq_len * C + 2 * C;  // wpe, ln_f
  } else {
    per_layer = 2 * C                               // input / post-attention RMSNorm
                + C * C + 2 * C * kv_width + C * C  // q, k, v, o projections
                + 3 * C * I;                        // gate, up, down
    outside += C;                                   // final norm
  }
  if (!tie_embeddings) outside += V * C;  // lm_head
  return n_layer * per_layer + outside;
}

std::string architecture_differences(const ModelConfig& a, const ModelConfig& b) {
  std::string out;
  auto compare = [&](const char* name, const auto& x, const auto& y) {
    if (x == y) return;
    out += fmt::format("{}{} {} vs {}", out.empty() ? "" : ", ", name, x, y);
  };
  compare("family", std::string(family_name(a.family)), std::string(family_name(b.family)));
  compare("vocab_size", a.vocab_size, b.vocab_size);
  compare("n_layer", a.n_layer, b.n_layer);
  compare("n_head", a.n_head, b.n_head);
  compare("n_kv_head", a.n_kv_head, b.n_kv_head);
  compare("n_embd", a.n_embd, b.n_embd);
  compare("intermediate_size", a.intermediate_size, b.intermediate_size);
  compare("max_seq_len", a.max_seq_len, b.max_seq_len);
  compare("norm_eps", a.norm_eps, b.norm_eps);
  if (a.family == ModelFamily::llama) compare("rope_theta", a.rope_theta, b.rope_theta);
  compare("tie_embeddings", a.tie_embeddings, b.tie_embeddings);
  return out;
}

std::string ModelConfig::to_hf_json() const {
  nlohmann::ordered_json j;
  if (family == ModelFamily::gpt2) {
    j["architectures"] = {"GPT2LMHeadModel"};
    j["model_type"] = "gpt2";
    j["vocab_size"] = vocab_size;
    j["n_positions"] = max_seq_len;
    j["n_ctx"] = max_seq_len;
    j["n_embd"] = n_embd;
    j["n_layer"] = n_layer;
    j["n_head"] = n_head;
    j["n_inner"] = intermediate_size;
    j["activation_function"] = "gelu_new";
    j["layer_norm_epsilon"] = norm_eps;
    j["resid_pdrop"] = dropout;
    j["embd_pdrop"] = dropout;
    j["attn_pdrop"] = 0.0;  // tiller's fused attention has no probability dropout
  } else {
    j["architectures"] = {"LlamaForCausalLM"};
    j["model_type"] = "llama";
    j["vocab_size"] = vocab_size;
    j["hidden_size"] = n_embd;
    j["intermediate_size"] = intermediate_size;
    j["num_hidden_layers"] = n_layer;
    j["num_attention_heads"] = n_head;
    j["num_key_value_heads"] = n_kv_head;
    j["max_position_embeddings"] = max_seq_len;
    j["rms_norm_eps"] = norm_eps;
    j["rope_theta"] = rope_theta;
    j["hidden_act"] = "silu";
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
    j["attention_dropout"] = 0.0;
    j["tiller_dropout"] = dropout;  // not a Hugging Face field; ignored by transformers
  }
  j["tie_word_embeddings"] = tie_embeddings;
  j["torch_dtype"] = "float32";
  return j.dump(2);
}

namespace {

// An integer field takes only a JSON integer: nlohmann would convert 1e30 to an integer with
// undefined behaviour (and 2.5 silently to 2).
template <typename T>
T value_of(const nlohmann::json& value, const char* name) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    TILLER_CHECK(value.is_number_integer(), "config.json: '{}' is {}, expected an integer", name,
                 value.dump());
  }
  return value.get<T>();
}

template <typename T>
T field(const nlohmann::json& j, const char* name, T fallback) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return fallback;
  return value_of<T>(*it, name);
}

template <typename T>
T required(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  TILLER_CHECK(it != j.end() && !it->is_null(), "config.json: missing required field '{}'", name);
  return value_of<T>(*it, name);
}

}  // namespace

ModelConfig ModelConfig::from_hf_json(const std::string& json_text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    fail("config.json: not valid JSON: {}", e.what());
  }
  TILLER_CHECK(j.is_object(), "config.json: expected a JSON object");
  std::string type;
  ModelConfig c;
  try {
    type = field<std::string>(j, "model_type", "");
    if (type == "gpt2") {
      // n_embd enters 4 * n_embd below, before validate() bounds it.
      const auto n_embd = required<int64_t>(j, "n_embd");
      TILLER_CHECK(n_embd > 0 && n_embd <= kMaxSize, "config.json: n_embd {} is not in [1, {}]",
                   n_embd, kMaxSize);
      c = gpt2(required<int64_t>(j, "vocab_size"), required<int64_t>(j, "n_layer"),
               required<int64_t>(j, "n_head"), n_embd, field<int64_t>(j, "n_positions", 1024));
      c.intermediate_size = field<int64_t>(j, "n_inner", 4 * c.n_embd);
      c.norm_eps = field<float>(j, "layer_norm_epsilon", 1e-5f);
      c.dropout = field<float>(j, "resid_pdrop", 0.f);
      c.tie_embeddings = field<bool>(j, "tie_word_embeddings", true);
      TILLER_CHECK(!field<bool>(j, "scale_attn_by_inverse_layer_idx", false) &&
                       !field<bool>(j, "reorder_and_upcast_attn", false) &&
                       field<bool>(j, "scale_attn_weights", true),
                   "config.json: gpt2 attention variants (scale_attn_by_inverse_layer_idx, "
                   "reorder_and_upcast_attn, scale_attn_weights false) are not supported");
      std::string act = field<std::string>(j, "activation_function", "gelu_new");
      TILLER_CHECK(act == "gelu_new" || act == "gelu_pytorch_tanh",
                   "config.json: gpt2 activation_function '{}' is not supported (tiller's GPT-2 "
                   "uses the tanh GELU, 'gelu_new')",
                   act);
    } else if (type == "llama") {
      int64_t n_head = required<int64_t>(j, "num_attention_heads");
      c = llama(required<int64_t>(j, "vocab_size"), required<int64_t>(j, "num_hidden_layers"),
                n_head, field<int64_t>(j, "num_key_value_heads", n_head),
                required<int64_t>(j, "hidden_size"), required<int64_t>(j, "intermediate_size"),
                field<int64_t>(j, "max_position_embeddings", 2048));
      c.norm_eps = field<float>(j, "rms_norm_eps", 1e-6f);
      // transformers >= 5 writes rope_parameters {"rope_type", "rope_theta"}; older versions
      // a top-level rope_theta (and rope_scaling, refused below).
      c.rope_theta = field<float>(j, "rope_theta", 10000.f);
      if (auto rope = j.find("rope_parameters"); rope != j.end() && !rope->is_null()) {
        TILLER_CHECK(rope->is_object(), "config.json: rope_parameters is {}, expected an object",
                     rope->dump());
        std::string rope_type = field<std::string>(*rope, "rope_type", "default");
        TILLER_CHECK(rope_type == "default",
                     "config.json: llama rope_parameters.rope_type '{}' is not supported (tiller "
                     "implements the default rotary embedding only)",
                     rope_type);
        c.rope_theta = field<float>(*rope, "rope_theta", c.rope_theta);
      }
      // Bounded before the division (validate() runs later; a zero would divide by zero here).
      TILLER_CHECK(c.n_head > 0 && c.n_head <= kMaxSize && c.n_embd > 0 && c.n_embd <= kMaxSize,
                   "config.json: llama num_attention_heads {} and hidden_size {} must be in "
                   "[1, {}]",
                   c.n_head, c.n_embd, kMaxSize);
      const int64_t head_dim = field<int64_t>(j, "head_dim", c.n_embd / c.n_head);
      TILLER_CHECK(c.n_embd % c.n_head == 0 && head_dim == c.n_embd / c.n_head,
                   "config.json: llama head_dim {} with {} heads does not make hidden_size {} "
                   "(tiller requires head_dim == hidden_size / num_attention_heads)",
                   head_dim, c.n_head, c.n_embd);
      c.dropout = field<float>(j, "tiller_dropout", 0.f);
      c.tie_embeddings = field<bool>(j, "tie_word_embeddings", false);
      TILLER_CHECK(!field<bool>(j, "attention_bias", false) && !field<bool>(j, "mlp_bias", false),
                   "config.json: llama with attention_bias or mlp_bias is not supported");
      TILLER_CHECK(j.find("rope_scaling") == j.end() || j["rope_scaling"].is_null(),
                   "config.json: llama rope_scaling is not supported");
      TILLER_CHECK(field<std::string>(j, "hidden_act", "silu") == "silu",
                   "config.json: llama hidden_act '{}' is not supported (expected silu)",
                   field<std::string>(j, "hidden_act", ""));
    } else {
      fail("config.json: model_type '{}' is not supported (expected gpt2 or llama)", type);
    }
  } catch (const nlohmann::json::exception& e) {
    fail("config.json: wrong field type: {}", e.what());
  }
  c.validate();
  return c;
}

}  // namespace tiller
