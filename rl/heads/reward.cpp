// RewardModel: last-real-token pooling, the scalar head, scoring, save/load; and the preference
// loss (see rl/reward.h).
//
// Pooling and the likelihood term read only the hidden rows they need, gathered from the (N*T, C)
// view in one op (gather_rows), rather than multiplying all T rows by a one-hot mask: the head
// sees exactly N rows, the LM head only the rows that predict a response token, and a non-finite
// value in a padded row (which no loss should depend on) cannot leak in through 0 * x.
#include "rl/heads/reward.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/tensor/autograd.h"
#include "core/io/checkpoint.h"
#include "kernels/error.h"
#include "core/ops/ops.h"
#include "rl/data/reward_data.h"

namespace tiller::rl {

namespace {

constexpr const char* kHeadWeight = "score.weight";
constexpr const char* kHeadBias = "score.bias";
constexpr const char* kLikelihoodWeight = "score.likelihood_weight";
constexpr const char* kStatisticsKey = "tiller_reward";

// Per row: positions counting real tokens only (pads get the position of the previous real token,
// or 0), and the column of the last real token.
struct MaskLayout {
  std::vector<int32_t> positions;
  std::vector<int64_t> last_real;
};

MaskLayout mask_layout(const std::vector<int32_t>& mask, int64_t N, int64_t T) {
  MaskLayout layout{std::vector<int32_t>(static_cast<size_t>(N * T), 0),
                    std::vector<int64_t>(static_cast<size_t>(N), -1)};
  for (int64_t n = 0; n < N; ++n) {
    int32_t seen = 0;
    for (int64_t t = 0; t < T; ++t) {
      size_t i = static_cast<size_t>(n * T + t);
      if (mask[i] != 0) {
        layout.last_real[static_cast<size_t>(n)] = t;
        ++seen;
      }
      layout.positions[i] = seen > 0 ? seen - 1 : 0;
    }
    TILLER_CHECK(layout.last_real[static_cast<size_t>(n)] >= 0,
                 "RewardModel::forward: row {} of the attention mask has no real token", n);
  }
  return layout;
}

// Rows `rows` of hidden (R, C) -> (rows.size(), C): an embedding lookup with the hidden states as
// the table, whose backward scatters the gradient into exactly those rows.
Tensor gather_rows(const Tensor& hidden, const std::vector<int32_t>& rows) {
  return embedding(
      Tensor::from_ints(rows, {static_cast<int64_t>(rows.size())}).to(hidden.device()), hidden);
}

Tensor trainable(Tensor t) {
  t.requires_grad_();
  return t;
}

}  // namespace

RewardModel::RewardModel(Transformer backbone, uint64_t seed, RewardHeadOptions head)
    : backbone_(std::move(backbone)) {
  const int64_t C = backbone_.config().n_embd;
  Generator gen(seed);
  const float head_std = 1.f / std::sqrt(static_cast<float>(C + 1));
  head_weight_ = Tensor::randn({1, C}, gen, 0.f, head_std);
  head_bias_ = Tensor::zeros({1});
  const DType dtype = backbone_.parameters().front().tensor.dtype();
  head_weight_ = trainable(head_weight_.to(dtype).to(device()));
  head_bias_ = trainable(head_bias_.to(dtype).to(device()));
  if (head.likelihood) {
    TILLER_CHECK(std::isfinite(head.likelihood_init),
                 "RewardModel: the likelihood term's initial weight must be finite, got {}",
                 head.likelihood_init);
    likelihood_weight_ = trainable(
        Tensor::from_vector({head.likelihood_init}, {1}).to(dtype).to(device()));
  }
}

RewardModel RewardModel::from_backbone(const std::filesystem::path& dir, uint64_t seed,
                                       Device device, RewardHeadOptions head) {
  return RewardModel(Transformer::from_pretrained(dir, device), seed, head);
}

ParameterList RewardModel::parameters() const {
  ParameterList params = backbone_.parameters();
  params.push_back({kHeadWeight, head_weight_, /*decay=*/true});
  params.push_back({kHeadBias, head_bias_, /*decay=*/false});
  if (has_likelihood_term()) params.push_back({kLikelihoodWeight, likelihood_weight_, false});
  return params;
}

void RewardModel::set_statistics(const RewardStatistics& statistics) {
  TILLER_CHECK(
      std::isfinite(statistics.mean) && std::isfinite(statistics.std) && statistics.std > 0.f,
      "RewardModel: reward statistics need a finite mean and a positive std, got mean "
      "{} std {}",
      statistics.mean, statistics.std);
  statistics_ = statistics;
}

void RewardModel::to(Device device) {
  backbone_.to(device);
  head_weight_ = trainable(head_weight_.detach().to(device));
  head_bias_ = trainable(head_bias_.detach().to(device));
  if (has_likelihood_term()) likelihood_weight_ = trainable(likelihood_weight_.detach().to(device));
}

void RewardModel::to(DType dtype) {
  backbone_.to(dtype);
  NoGradGuard no_grad;
  head_weight_ = trainable(head_weight_.detach().to(dtype));
  head_bias_ = trainable(head_bias_.detach().to(dtype));
  if (has_likelihood_term()) likelihood_weight_ = trainable(likelihood_weight_.detach().to(dtype));
}

void RewardModel::zero_grad() {
  backbone_.zero_grad();
  head_weight_.zero_grad();
  head_bias_.zero_grad();
  if (has_likelihood_term()) likelihood_weight_.zero_grad();
}

Tensor RewardModel::forward(const Tensor& ids, const Tensor& attention_mask, bool training,
                            const Tensor& response_mask) {
  TILLER_CHECK(ids.defined() && ids.dtype() == DType::i32 && ids.dim() == 2,
               "RewardModel::forward: ids must be (N, T) i32, got {}",
               ids.defined() ? ids.str() : "undefined");
  TILLER_CHECK(attention_mask.defined() && attention_mask.dtype() == DType::i32 &&
                   attention_mask.shape() == ids.shape(),
               "RewardModel::forward: attention_mask must be i32 of the ids' shape {}, got {}",
               shape_str(ids.shape()),
               attention_mask.defined() ? attention_mask.str() : "undefined");
  const int64_t N = ids.size(0), T = ids.size(1), C = backbone_.config().n_embd;
  TILLER_CHECK(T <= backbone_.config().max_seq_len,
               "RewardModel::forward: {} tokens exceed the backbone's max_seq_len {}", T,
               backbone_.config().max_seq_len);
  const std::vector<int32_t> mask_host = attention_mask.to(Device::cpu()).to_int_vector();
  const MaskLayout layout = mask_layout(mask_host, N, T);
  if (has_likelihood_term())
    TILLER_CHECK(response_mask.defined() && response_mask.dtype() == DType::i32 &&
                     response_mask.shape() == ids.shape(),
                 "RewardModel::forward: this reward model has a likelihood term and needs a "
                 "response_mask, i32 of the ids' shape {}, got {}",
                 shape_str(ids.shape()),
                 response_mask.defined() ? response_mask.str() : "undefined");

  ForwardOptions options;
  options.positions = Tensor::from_ints(layout.positions, {N, T}).to(device());
  options.key_padding_mask =
      attention_mask.device() == device() ? attention_mask : attention_mask.to(device());
  options.training = training;
  Tensor hidden =
      backbone_.hidden_states(ids.device() == device() ? ids : ids.to(device()), options)
          .reshape({N * T, C});

  std::vector<int32_t> last_rows(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n)
    last_rows[static_cast<size_t>(n)] =
        static_cast<int32_t>(n * T + layout.last_real[static_cast<size_t>(n)]);
  Tensor pooled = gather_rows(hidden, last_rows);  // (N, C)
  Tensor rewards = linear(pooled, head_weight_, head_bias_).reshape({N});
  if (rewards.dtype() != DType::f32) rewards = rewards.to(DType::f32);
  if (!has_likelihood_term()) return rewards;
  return rewards + mean_response_logprob(hidden, ids, mask_host, response_mask) *
                       (likelihood_weight_.dtype() == DType::f32
                            ? likelihood_weight_
                            : likelihood_weight_.to(DType::f32));
}

// Only the rows that predict a response token go through the LM head (gather_rows); the per-row
// mean is a (N, M) averaging matrix times the M token log-probabilities.
Tensor RewardModel::mean_response_logprob(const Tensor& hidden, const Tensor& ids,
                                          const std::vector<int32_t>& attention_mask,
                                          const Tensor& response_mask) {
  const int64_t N = ids.size(0), T = ids.size(1);
  const std::vector<int32_t> response = response_mask.to(Device::cpu()).to_int_vector();
  const std::vector<int32_t> tokens = ids.to(Device::cpu()).to_int_vector();
  std::vector<int32_t> rows, targets;
  std::vector<int64_t> row_of;  // which sequence each gathered row belongs to
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t t = 0; t < T; ++t) {
      const auto i = static_cast<size_t>(n * T + t);
      if (response[i] == 0) continue;
      TILLER_CHECK(attention_mask[i] != 0,
                   "RewardModel::forward: response_mask marks column {} of row {}, a padding "
                   "position",
                   t, n);
      if (t == 0 || attention_mask[i - 1] == 0) continue;  // its row's first real token
      rows.push_back(static_cast<int32_t>(i - 1));
      targets.push_back(tokens[i]);
      row_of.push_back(n);
    }
  }
  const auto M = static_cast<int64_t>(rows.size());
  if (M == 0) return Tensor::zeros({N}, {.device = device()});
  std::vector<int64_t> count(static_cast<size_t>(N), 0);
  for (int64_t n : row_of) ++count[static_cast<size_t>(n)];
  std::vector<float> averaging(static_cast<size_t>(N * M), 0.f);
  for (int64_t m = 0; m < M; ++m) {
    const int64_t n = row_of[static_cast<size_t>(m)];
    averaging[static_cast<size_t>(n * M + m)] =
        1.f / static_cast<float>(count[static_cast<size_t>(n)]);
  }
  Tensor logprobs = token_logprobs(backbone_.logits(gather_rows(hidden, rows)),
                                   Tensor::from_ints(targets, {M}).to(device()));  // (M)
  Tensor means = matmul(Tensor::from_vector(averaging, {N, M}).to(device()),
                        logprobs.reshape({M, 1}));  // (N, 1)
  return means.reshape({N});
}

std::vector<float> RewardModel::score(const std::vector<std::vector<int32_t>>& prompts,
                                      const std::vector<std::vector<int32_t>>& responses,
                                      bool normalise, int64_t batch_size, int64_t max_length) {
  TILLER_CHECK(prompts.size() == responses.size(),
               "RewardModel::score: {} prompts but {} responses", prompts.size(), responses.size());
  TILLER_CHECK(batch_size > 0, "RewardModel::score: batch_size must be positive, got {}",
               batch_size);
  if (max_length <= 0) max_length = backbone_.config().max_seq_len;
  NoGradGuard no_grad;
  std::vector<float> rewards;
  rewards.reserve(prompts.size());
  for (size_t begin = 0; begin < prompts.size(); begin += static_cast<size_t>(batch_size)) {
    size_t end = std::min(prompts.size(), begin + static_cast<size_t>(batch_size));
    std::vector<std::vector<int32_t>> rows;
    std::vector<int64_t> response_tokens;
    for (size_t i = begin; i < end; ++i) {
      TILLER_CHECK(!prompts[i].empty() || !responses[i].empty(),
                   "RewardModel::score: prompt and response {} are both empty", i);
      rows.push_back(join_truncated(prompts[i], responses[i], max_length));
      response_tokens.push_back(static_cast<int64_t>(responses[i].size()));
    }
    // On the host: forward reads the layout there and uploads what the device needs.
    PaddedSequences batch = pad_sequences(rows, PaddingSide::right, 0, Device::cpu());
    Tensor response_mask;
    if (has_likelihood_term())
      response_mask =
          right_padded_response_mask(rows, response_tokens, batch.ids.size(1), Device::cpu());
    for (float r : forward(batch.ids, batch.attention_mask, false, response_mask).to_vector())
      rewards.push_back(normalise ? (r - statistics_.mean) / statistics_.std : r);
  }
  return rewards;
}

std::vector<float> RewardModel::score(const Tokenizer& tokenizer,
                                      const std::vector<std::string>& prompts,
                                      const std::vector<std::string>& responses, bool normalise,
                                      int64_t batch_size, int64_t max_length) {
  std::vector<std::vector<int32_t>> prompt_ids, response_ids;
  for (const std::string& p : prompts) prompt_ids.push_back(tokenizer.encode(p, true));
  for (const std::string& r : responses) response_ids.push_back(tokenizer.encode(r, true));
  return score(prompt_ids, response_ids, normalise, batch_size, max_length);
}

void RewardModel::save(const std::filesystem::path& dir) const {
  safetensors::NamedTensors tensors = backbone_.hf_tensors();
  tensors.emplace_back(kHeadWeight, head_weight_.detach());
  tensors.emplace_back(kHeadBias, head_bias_.detach());
  if (has_likelihood_term()) tensors.emplace_back(kLikelihoodWeight, likelihood_weight_.detach());
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(backbone_.config().to_hf_json());
  config["num_labels"] = 1;
  config[kStatisticsKey] = {{"mean", statistics_.mean}, {"std", statistics_.std}};
  if (has_likelihood_term()) config[kStatisticsKey]["likelihood"] = true;
  save_checkpoint(dir, tensors, config.dump(2));
}

RewardModel RewardModel::load(const std::filesystem::path& dir, Device device) {
  const std::string source = "reward model " + dir.string();
  Checkpoint checkpoint = load_checkpoint(dir, Device::cpu());
  nlohmann::json config = nlohmann::json::parse(checkpoint.config_json);
  TILLER_CHECK(config.contains(kStatisticsKey) && config[kStatisticsKey].is_object() &&
                   checkpoint.tensors.contains(kHeadWeight),
               "{}: no reward head (score.weight and config.json \"{}\"); this looks like a "
               "language-model checkpoint: start a reward model from it with "
               "RewardModel::from_backbone",
               source, kStatisticsKey);
  std::map<std::string, Tensor> backbone_tensors = checkpoint.tensors.all();
  backbone_tensors.erase(kHeadWeight);
  backbone_tensors.erase(kHeadBias);
  const bool likelihood = checkpoint.tensors.contains(kLikelihoodWeight);
  const nlohmann::json& saved = config[kStatisticsKey];
  const bool config_likelihood = saved.contains("likelihood") && saved["likelihood"] == true;
  TILLER_CHECK(likelihood == config_likelihood,
               "{}: config.json says the likelihood term is {} but model.safetensors {} {}",
               source, config_likelihood ? "on" : "off", likelihood ? "holds" : "lacks",
               kLikelihoodWeight);
  backbone_tensors.erase(kLikelihoodWeight);
  Transformer backbone(ModelConfig::from_hf_json(checkpoint.config_json));
  backbone.load_hf_tensors(backbone_tensors, source);

  RewardModel model(std::move(backbone), 0, {.likelihood = likelihood});
  const int64_t C = model.backbone_.config().n_embd;
  NoGradGuard no_grad;
  model.head_weight_.copy_(checkpoint.tensors.get(kHeadWeight, {1, C}));
  model.head_bias_.copy_(checkpoint.tensors.get(kHeadBias, {1}));
  if (likelihood) model.likelihood_weight_.copy_(checkpoint.tensors.get(kLikelihoodWeight, {1}));
  const nlohmann::json& stats = config[kStatisticsKey];
  try {
    model.set_statistics({stats.at("mean").get<float>(), stats.at("std").get<float>()});
  } catch (const nlohmann::json::exception& e) {
    fail("{}: config.json \"{}\" needs numbers \"mean\" and \"std\": {}", source, kStatisticsKey,
         e.what());
  }
  if (!device.is_cpu()) model.to(device);
  return model;
}

PreferenceLoss preference_loss(const Tensor& chosen_rewards, const Tensor& rejected_rewards,
                               const Tensor& margins, float center_coefficient) {
  TILLER_CHECK(chosen_rewards.defined() && chosen_rewards.dim() == 1 &&
                   chosen_rewards.dtype() == DType::f32 && chosen_rewards.numel() > 0,
               "preference_loss: chosen rewards must be (B) f32 with B > 0, got {}",
               chosen_rewards.defined() ? chosen_rewards.str() : "undefined");
  TILLER_CHECK(rejected_rewards.defined() && rejected_rewards.shape() == chosen_rewards.shape(),
               "preference_loss: rejected rewards {} must match chosen rewards {}",
               rejected_rewards.defined() ? rejected_rewards.str() : "undefined",
               chosen_rewards.str());
  TILLER_CHECK(!margins.defined() || margins.shape() == chosen_rewards.shape(),
               "preference_loss: margins {} must match the rewards {}",
               margins.defined() ? margins.str() : "", chosen_rewards.str());
  TILLER_CHECK(center_coefficient >= 0.f && std::isfinite(center_coefficient),
               "preference_loss: center_coefficient must be >= 0, got {}", center_coefficient);
  Tensor gap = chosen_rewards - rejected_rewards;
  if (margins.defined()) gap = gap - margins;
  PreferenceLoss loss;
  loss.bradley_terry = mean(neg(logsigmoid(gap)));
  loss.centering = mean(square(chosen_rewards + rejected_rewards));
  loss.total = center_coefficient > 0.f ? loss.bradley_terry + loss.centering * center_coefficient
                                        : loss.bradley_terry;
  return loss;
}

}  // namespace tiller::rl
