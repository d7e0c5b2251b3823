// Reward model: a Transformer backbone plus a scalar head, trained on preference pairs with the
// Bradley-Terry loss — stage 3 of the pipeline (rl/reward_trainer.h trains it, PPO calls score()).
//
// Pooling: the head (Linear n_embd -> 1, "score.weight" (1, C) and "score.bias" (1)) reads the
// backbone's final hidden state at the LAST REAL token of each row, found from the attention mask
// — never at column T-1 — and positions count real tokens only, so a sequence scores the same
// unpadded, left-padded or right-padded. Head init: N(0, 1/(C+1)) (std 1/sqrt(C+1), as in Ziegler
// et al. 2019 and the TRL/OpenAI reward-model recipes), bias 0: initial rewards are O(1).
//
// Likelihood term (optional, RewardHeadOptions::likelihood): the reward also reads the backbone's
// own language-model head,
//   r = head(h_last) + a * mean over response tokens t of log p(token_t | tokens before t),
// with a learned scalar a ("score.likelihood_weight" (1), initialised to likelihood_init, not
// decayed). A scalar head on the last hidden state sees a wrong fact only if fine-tuning teaches
// the backbone to carry "this contradicts what I know" into that one state, which a few thousand
// pairs do not (the pipeline's reward model stayed near chance on wrong-fact pairs), while the
// SFT model's token probabilities already rank a right fact above a wrong one. The mean (not the
// sum) keeps a length-free scale: a response that stops early is not rewarded for having fewer
// tokens. It needs to know which tokens are the response: forward takes a response mask, score()
// builds it from the prompt / response split.
//
// Loss (preference_loss), per pair with rewards r_c, r_r and margin m, averaged over pairs:
//   -log sigmoid(r_c - r_r - m)  +  λ (r_c + r_r)^2
// The first term is Bradley-Terry (m = 0) or its margin variant (Llama 2); the second is TRL's
// center_rewards_coefficient term, which pins the reward's free offset near zero.
//
// Saved directory (save / load), written atomically through core/checkpoint.h:
//   config.json        the backbone's Hugging Face config, plus "num_labels": 1 and
//                      "tiller_reward": {"mean", "std"} — the reward statistics PPO normalises by
//   model.safetensors  the backbone's Hugging Face tensors plus score.weight and score.bias
//                      (and score.likelihood_weight with the likelihood term; "tiller_reward"
//                      then also says "likelihood": true)
// The backbone alone is recovered with RewardModel::load(dir).backbone() (Transformer::
// from_pretrained rejects the extra head tensors on purpose: the dir is not a language model).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/models/model.h"
#include "core/tensor/parameter.h"
#include "core/tensor/tensor.h"
#include "core/text/tokenizer.h"

namespace tiller::rl {

// Mean and standard deviation of the model's rewards on its training responses; score() can
// normalise with them so PPO sees rewards of unit scale.
struct RewardStatistics {
  float mean = 0.f;
  float std = 1.f;
};

struct RewardHeadOptions {
  bool likelihood = false;       // add a * mean response-token log-likelihood (see above)
  float likelihood_init = 1.f;   // a's initial value
};

class RewardModel {
 public:
  // A fresh head (drawn from `seed`) on `backbone`, on the backbone's device and dtype.
  explicit RewardModel(Transformer backbone, uint64_t seed = 0, RewardHeadOptions head = {});
  // A fresh head on a pretrained or SFT checkpoint directory (Transformer::from_pretrained).
  static RewardModel from_backbone(const std::filesystem::path& dir, uint64_t seed = 0,
                                   Device device = Device::cpu(), RewardHeadOptions head = {});
  // A reward model written by save(): backbone, head and statistics.
  static RewardModel load(const std::filesystem::path& dir, Device device = Device::cpu());
  void save(const std::filesystem::path& dir) const;

  // ids (N, T) i32, attention_mask (N, T) i32 (nonzero = real token; every row needs one) ->
  // rewards (N) f32, recorded by autograd. `training` enables the backbone's dropout.
  // response_mask (N, T) i32, nonzero at the response's tokens (real tokens only), is required
  // with the likelihood term and ignored without it; a response token that is its row's first
  // real token has nothing before it and does not count, and a row with no counted token adds 0.
  // The ids and masks may be on the host or on the model's device: forward reads the padding
  // layout (and the likelihood term's targets) on the host, so host inputs are only uploaded,
  // while device inputs are also copied back each call.
  Tensor forward(const Tensor& ids, const Tensor& attention_mask, bool training = false,
                 const Tensor& response_mask = Tensor());

  // Rewards of prompt[i] + response[i] (token ids), without autograd, in batches of batch_size,
  // truncated from the start to max_length tokens (0: the backbone's max_seq_len). With
  // `normalise`, (r - mean) / std from statistics().
  std::vector<float> score(const std::vector<std::vector<int32_t>>& prompts,
                           const std::vector<std::vector<int32_t>>& responses,
                           bool normalise = false, int64_t batch_size = 16, int64_t max_length = 0);
  // The same for text: prompts and responses are encoded with special tokens allowed (the text
  // form of rl/reward_data.h: rendered prompt text, raw completions carrying <|end|>).
  std::vector<float> score(const Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                           const std::vector<std::string>& responses, bool normalise = false,
                           int64_t batch_size = 16, int64_t max_length = 0);

  // Backbone parameters (Hugging Face names) followed by score.weight (decays), score.bias and
  // score.likelihood_weight when there is one.
  ParameterList parameters() const;
  Transformer& backbone() { return backbone_; }
  const Transformer& backbone() const { return backbone_; }
  const Tensor& head_weight() const { return head_weight_; }  // (1, C)
  const Tensor& head_bias() const { return head_bias_; }      // (1)
  bool has_likelihood_term() const { return likelihood_weight_.defined(); }
  const Tensor& likelihood_weight() const { return likelihood_weight_; }  // (1); undefined if off
  const RewardStatistics& statistics() const { return statistics_; }
  void set_statistics(const RewardStatistics& statistics);  // std must be > 0 and finite
  Device device() const { return backbone_.device(); }

  // Build the optimizer after these (it holds the tensors it was given), as for Transformer.
  void to(Device device);
  void to(DType dtype);
  void zero_grad();

 private:
  Tensor mean_response_logprob(const Tensor& hidden, const Tensor& ids,
                               const std::vector<int32_t>& attention_mask,
                               const Tensor& response_mask);

  Transformer backbone_;
  Tensor head_weight_, head_bias_;
  Tensor likelihood_weight_;  // undefined without the likelihood term
  RewardStatistics statistics_;
};

// The pieces of the preference loss, each a scalar f32 tensor recorded by autograd.
struct PreferenceLoss {
  Tensor total;          // bradley_terry + center_coefficient * centering
  Tensor bradley_terry;  // mean over pairs of -log sigmoid(r_c - r_r - margin)
  Tensor centering;      // mean over pairs of (r_c + r_r)^2
};
// chosen / rejected (B) f32; margins (B) f32 or undefined (no margin).
PreferenceLoss preference_loss(const Tensor& chosen_rewards, const Tensor& rejected_rewards,
                               const Tensor& margins = Tensor(), float center_coefficient = 0.f);

}  // namespace tiller::rl
