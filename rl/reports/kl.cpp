// KL of a policy to a reference on the policy's own samples (see rl/reports/kl.h).
//
// Per-token log-probs come from rl/trainers/completion_batch (the layout DPO and GRPO score with),
// copied to the host once per batch; the estimators are accumulated there in double, so a report
// over thousands of tokens does not lose the small differences between two close models.
#include "rl/reports/kl.h"

#include <algorithm>
#include <cmath>

#include "core/tensor/autograd.h"
#include "core/text/special_tokens.h"
#include "kernels/error.h"
#include "rl/generation/generate.h"
#include "rl/trainers/completion_batch.h"

namespace tiller::rl {

KlEstimate sequence_kl(Transformer& policy, Transformer& reference,
                       const std::vector<std::vector<int32_t>>& prompts,
                       const std::vector<std::vector<int32_t>>& completions, int64_t batch_size) {
  TILLER_CHECK(!prompts.empty() && prompts.size() == completions.size(),
               "sequence_kl: {} prompts for {} completions (need as many, at least one)",
               prompts.size(), completions.size());
  TILLER_CHECK(batch_size > 0, "sequence_kl: batch_size must be positive, got {}", batch_size);
  TILLER_CHECK(policy.config().vocab_size == reference.config().vocab_size,
               "sequence_kl: the policy's vocabulary ({}) differs from the reference's ({}); both "
               "models must share a tokenizer",
               policy.config().vocab_size, reference.config().vocab_size);
  NoGradGuard no_grad;
  const auto n = static_cast<int64_t>(prompts.size());
  double k1 = 0.0, k3 = 0.0;
  int64_t tokens = 0;
  for (int64_t first = 0; first < n; first += batch_size) {
    const int64_t last = std::min(n, first + batch_size);
    std::vector<std::vector<int32_t>> batch_prompts(prompts.begin() + first,
                                                    prompts.begin() + last);
    std::vector<std::vector<int32_t>> batch_completions(completions.begin() + first,
                                                        completions.begin() + last);
    CompletionBatch batch = make_completion_batch(batch_prompts, batch_completions,
                                                  PaddingSide::right, policy.device());
    const std::vector<float> logp = completion_token_logps(policy, batch).to_vector();
    const std::vector<float> ref_logp = completion_token_logps(reference, batch).to_vector();
    const std::vector<float> mask = batch.mask.to_vector();
    for (size_t i = 0; i < mask.size(); ++i) {
      if (mask[i] == 0.f) continue;
      const double r = static_cast<double>(logp[i]) - static_cast<double>(ref_logp[i]);
      k1 += r;
      k3 += std::expm1(-r) + r;
      ++tokens;
    }
  }
  KlEstimate estimate;
  estimate.tokens = tokens;
  estimate.responses = n;
  if (tokens > 0) {
    estimate.k1 = k1 / static_cast<double>(tokens);
    estimate.k3 = k3 / static_cast<double>(tokens);
  }
  estimate.k1_sequence = k1 / static_cast<double>(n);
  return estimate;
}

KlEstimate kl_on_own_samples(Transformer& policy, Transformer& reference,
                             const Tokenizer& tokenizer, const std::vector<world::EvalItem>& items,
                             const KlSamplingConfig& config) {
  TILLER_CHECK(!items.empty(), "kl_on_own_samples: no prompts given");
  TILLER_CHECK(config.batch_size > 0 && config.max_new_tokens > 0 && config.limit >= 0,
               "kl_on_own_samples: batch_size {} and max_new_tokens {} must be positive, limit {} "
               ">= 0",
               config.batch_size, config.max_new_tokens, config.limit);
  const auto count = config.limit > 0
                         ? std::min<int64_t>(config.limit, static_cast<int64_t>(items.size()))
                         : static_cast<int64_t>(items.size());
  const TokenId end_of_turn = tokenizer.token_id(special_tokens::kEndOfTurn);
  const int64_t max_seq_len = policy.config().max_seq_len;
  std::vector<std::vector<int32_t>> prompts, completions;
  for (int64_t first = 0; first < count; first += config.batch_size) {
    const int64_t last = std::min(count, first + config.batch_size);
    std::vector<std::vector<int32_t>> batch;
    int64_t longest = 0;
    for (int64_t i = first; i < last; ++i) {
      batch.push_back(render_generation_prompt(tokenizer, items[i].prompt));
      longest = std::max<int64_t>(longest, static_cast<int64_t>(batch.back().size()));
    }
    TILLER_CHECK(longest < max_seq_len,
                 "kl_on_own_samples: a prompt of {} tokens leaves no room to generate within the "
                 "model's max_seq_len {}",
                 longest, max_seq_len);
    GenerationConfig generation{
        .max_new_tokens = std::min(config.max_new_tokens, max_seq_len - longest),
        .sampling = {.temperature = 1.f, .top_k = 0, .top_p = 1.f},
        .stop_tokens = {end_of_turn},
        .seed = config.seed + static_cast<uint64_t>(first),
        .use_cache = true};
    GenerationResult generated = generate(policy, batch, generation);
    for (size_t i = 0; i < batch.size(); ++i) {
      prompts.push_back(std::move(batch[i]));
      completions.push_back(std::move(generated.tokens[i]));
    }
  }
  return sequence_kl(policy, reference, prompts, completions, config.batch_size);
}

}  // namespace tiller::rl
