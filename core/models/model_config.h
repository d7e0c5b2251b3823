// ModelConfig: the shape and flavour of a decoder-only transformer, for the two families tiller
// builds — GPT-2 and Llama — plus conversion to and from Hugging Face config.json.
//
// The family decides the architectural details; the numeric fields decide the sizes:
//   gpt2   learned position embeddings, LayerNorm with bias, GELU (tanh) MLP, biases on every
//          linear, fused qkv projection, n_kv_head == n_head, embeddings tied to the LM head;
//   llama  rotary positions (rope_theta), RMSNorm, SwiGLU MLP, no biases, grouped-query attention
//          (n_kv_head divides n_head), untied lm_head unless tie_embeddings says otherwise.
// head_dim is n_embd / n_head for both.
//
// Vocabulary padding: the embedding (and lm_head) tables hold padded_vocab_size() rows, the
// vocabulary rounded up to a multiple of 64 so the LM-head GEMM has tile-friendly N. The extra
// rows are zero, are never looked up, and never appear in the logits (see core/model.h).
#pragma once

#include <cstdint>
#include <string>

namespace tiller {

enum class ModelFamily { gpt2, llama };

const char* family_name(ModelFamily family);

struct ModelConfig {
  ModelFamily family = ModelFamily::gpt2;
  int64_t vocab_size = 50257;
  int64_t n_layer = 12;
  int64_t n_head = 12;
  int64_t n_kv_head = 12;
  int64_t n_embd = 768;
  int64_t intermediate_size = 3072;  // MLP hidden width (GPT-2: 4 * n_embd)
  int64_t max_seq_len = 1024;
  float norm_eps = 1e-5f;
  float rope_theta = 10000.f;  // llama only
  float dropout = 0.f;         // embeddings and residual branches, when training
  bool tie_embeddings = true;

  static constexpr int64_t kVocabMultiple = 64;
  // validate() bounds every size by kMaxSize and the parameter count by kMaxParameters (bytes of
  // f32 parameters and AdamW moments fit int64), so size arithmetic never overflows.
  static constexpr int64_t kMaxSize = int64_t{1} << 31;
  static constexpr int64_t kMaxParameters = int64_t{1} << 56;

  // GPT-2 with intermediate_size 4 * n_embd; the Hugging Face "gpt2" checkpoint is gpt2().
  static ModelConfig gpt2(int64_t vocab_size = 50257, int64_t n_layer = 12, int64_t n_head = 12,
                          int64_t n_embd = 768, int64_t max_seq_len = 1024);
  static ModelConfig llama(int64_t vocab_size, int64_t n_layer, int64_t n_head, int64_t n_kv_head,
                           int64_t n_embd, int64_t intermediate_size, int64_t max_seq_len);

  int64_t head_dim() const { return n_embd / n_head; }
  int64_t padded_vocab_size() const;
  bool has_bias() const { return family == ModelFamily::gpt2; }

  // Throws tiller::Error naming the first inconsistent field.
  void validate() const;

  // Trainable parameters as Hugging Face counts them: unpadded vocabulary, tied tables once.
  int64_t num_parameters() const;

  // Hugging Face config.json text (GPT2LMHeadModel / LlamaForCausalLM) and back. from_hf_json
  // reads model_type to pick the family and validates the result.
  std::string to_hf_json() const;
  static ModelConfig from_hf_json(const std::string& json_text);
};

// The architecture fields (everything but dropout) in which `a` and `b` differ, as
// "n_layer 4 vs 2, n_embd 128 vs 32"; empty when the same weights fit both.
std::string architecture_differences(const ModelConfig& a, const ModelConfig& b);

}  // namespace tiller
