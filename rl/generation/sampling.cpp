// Token sampling (see rl/sampling.h).
#include "rl/generation/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/random.h"

namespace tiller::rl {

SampledTokens sample_next(const Tensor& logits, const SamplingConfig& config, Generator& gen,
                          int64_t vocab_limit) {
  TILLER_CHECK(logits.defined() && logits.dim() == 2, "sample_next: logits must be (B, V), got {}",
               logits.defined() ? shape_str(logits.shape()) : "undefined");
  TILLER_CHECK(config.temperature >= 0.f, "sample_next: temperature must be >= 0, got {}",
               config.temperature);
  TILLER_CHECK(config.top_p > 0.f && config.top_p <= 1.f,
               "sample_next: top_p must be in (0, 1], got {}", config.top_p);
  TILLER_CHECK(config.top_k >= 0, "sample_next: top_k must be >= 0, got {}", config.top_k);
  int64_t B = logits.size(0), V_full = logits.size(1);
  int64_t V = vocab_limit > 0 ? std::min(vocab_limit, V_full) : V_full;
  std::vector<float> host = logits.to_vector();
  uint64_t offset = gen.take(static_cast<uint64_t>(B));
  bool greedy = config.temperature == 0.f;
  float inv_temperature = greedy ? 1.f : 1.f / config.temperature;

  SampledTokens out;
  out.tokens.resize(B);
  out.logprobs.resize(B);
  std::vector<float> scaled(V);
  std::vector<int32_t> order(V);
  for (int64_t b = 0; b < B; ++b) {
    const float* row = host.data() + b * V_full;
    float max_value = -INFINITY;
    for (int64_t v = 0; v < V; ++v) {
      scaled[v] = row[v] * inv_temperature;
      max_value = std::max(max_value, scaled[v]);
    }
    TILLER_CHECK(std::isfinite(max_value), "sample_next: row {} of the logits is not finite", b);
    double total = 0;
    for (int64_t v = 0; v < V; ++v) total += std::exp(scaled[v] - max_value);
    float log_normalizer = max_value + static_cast<float>(std::log(total));

    int32_t chosen = 0;
    if (greedy) {
      chosen = static_cast<int32_t>(std::max_element(scaled.begin(), scaled.end()) - scaled.begin());
    } else {
      // Candidates by descending probability, truncated by top-k then top-p.
      std::iota(order.begin(), order.end(), 0);
      int64_t keep = config.top_k > 0 ? std::min(config.top_k, V) : V;
      auto by_logit = [&](int32_t a, int32_t c) {
        return scaled[a] > scaled[c] || (scaled[a] == scaled[c] && a < c);
      };
      if (keep < V || config.top_p < 1.f) {
        std::partial_sort(order.begin(), order.begin() + keep, order.end(), by_logit);
      }
      std::vector<double> probs(keep);
      double cumulative = 0;
      int64_t kept = 0;
      for (; kept < keep; ++kept) {
        probs[kept] = std::exp(scaled[order[kept]] - log_normalizer);
        cumulative += probs[kept];
        if (config.top_p < 1.f && cumulative >= config.top_p) {
          ++kept;
          break;
        }
      }
      double mass = std::accumulate(probs.begin(), probs.begin() + kept, 0.0);
      double u = random::uniform(gen.seed, offset + b) * mass;
      chosen = order[kept - 1];
      for (int64_t i = 0; i < kept; ++i) {
        if (u < probs[i]) {
          chosen = order[i];
          break;
        }
        u -= probs[i];
      }
    }
    out.tokens[b] = chosen;
    out.logprobs[b] = scaled[chosen] - log_normalizer;
  }
  return out;
}

}  // namespace tiller::rl
