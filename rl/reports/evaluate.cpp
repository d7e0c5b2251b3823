// World evaluation: batched greedy chat generation + the exact scorer (see rl/evaluate.h).
//
// Responses are model output and may hold invalid UTF-8 (byte-level BPE can stop mid-character),
// so the JSONL writer replaces bad bytes instead of throwing; the scorer sees the raw bytes.
#include "rl/reports/evaluate.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>

#include "core/io/atomic_file.h"
#include "core/text/special_tokens.h"
#include "kernels/error.h"
#include "rl/generation/generate.h"

namespace tiller::rl {

namespace {

std::string example_json(const EvaluatedExample& example) {
  const world::Score& s = example.score;
  nlohmann::json line = {{"id", example.eval_id},
                         {"question", example.question},
                         {"expected", example.expected},
                         {"response", example.response},
                         {"response_tokens", example.response_tokens},
                         {"exact_match", s.exact_match},
                         {"format_ok", s.format_ok},
                         {"fact_correct", s.fact_correct},
                         {"ends_turn", s.ends_turn},
                         {"reward", s.reward}};
  if (example.extra_score) line["extra_score"] = *example.extra_score;
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

double rate(int64_t count, int64_t total) {
  return static_cast<double>(count) / static_cast<double>(total);
}

}  // namespace

std::string EvaluationReport::summary() const {
  std::string line = fmt::format(
      "exact {:.1f}%  format {:.1f}%  fact {:.1f}%  ends-turn {:.1f}%  reward {:.3f}  "
      "length {:.1f} tokens  ({} prompts)",
      100.0 * exact_match_rate, 100.0 * format_rate, 100.0 * fact_correct_rate,
      100.0 * ends_turn_rate, mean_reward, mean_response_tokens, prompts);
  if (mean_extra_score) line += fmt::format("  score {:.4f}", *mean_extra_score);
  return line;
}

EvaluationReport evaluate_world(Transformer& model, const Tokenizer& tokenizer,
                                const std::vector<world::EvalItem>& items,
                                const EvaluationConfig& config) {
  TILLER_CHECK(!items.empty(), "evaluate: no eval items given");
  TILLER_CHECK(config.batch_size > 0 && config.max_new_tokens > 0 && config.limit >= 0,
               "evaluate: batch_size {} and max_new_tokens {} must be positive, limit {} >= 0",
               config.batch_size, config.max_new_tokens, config.limit);
  const auto start = std::chrono::steady_clock::now();
  const auto count = config.limit > 0
                         ? std::min<int64_t>(config.limit, static_cast<int64_t>(items.size()))
                         : static_cast<int64_t>(items.size());
  const TokenId end_of_turn = tokenizer.token_id(special_tokens::kEndOfTurn);
  const int64_t max_seq_len = model.config().max_seq_len;

  EvaluationReport report;
  report.prompts = count;
  int64_t exact = 0, format = 0, fact = 0, ends = 0, response_tokens = 0;
  double reward = 0.0, extra = 0.0;
  for (int64_t first = 0; first < count; first += config.batch_size) {
    const int64_t last = std::min(count, first + config.batch_size);
    std::vector<std::vector<int32_t>> prompts;
    int64_t longest = 0;
    for (int64_t i = first; i < last; ++i) {
      prompts.push_back(config.render_prompt
                            ? config.render_prompt(items[i], i)
                            : render_generation_prompt(tokenizer, items[i].prompt));
      longest = std::max<int64_t>(longest, static_cast<int64_t>(prompts.back().size()));
    }
    TILLER_CHECK(longest < max_seq_len,
                 "evaluate: a prompt of {} tokens leaves no room to generate within the model's "
                 "max_seq_len {}",
                 longest, max_seq_len);
    GenerationConfig generation{
        .max_new_tokens = std::min(config.max_new_tokens, max_seq_len - longest),
        .sampling = {.temperature = 0.f, .top_k = 0, .top_p = 1.f},
        .stop_tokens =
            config.stop_tokens.empty() ? std::vector<TokenId>{end_of_turn} : config.stop_tokens,
        .seed = 0,
        .use_cache = true};
    GenerationResult generated = generate(model, prompts, generation);

    for (int64_t i = first; i < last; ++i) {
      const world::EvalItem& item = items[i];
      const auto& tokens = generated.tokens[i - first];
      EvaluatedExample example;
      example.eval_id = item.id;
      example.question = item.question.text;
      example.expected = item.question.expected.sentence();
      example.response = tokenizer.decode(tokens);
      example.response_tokens = static_cast<int64_t>(tokens.size());
      example.score = world::score(item, config.response_for_scoring
                                             ? config.response_for_scoring(example.response)
                                             : example.response);
      if (config.scorer) example.extra_score = config.scorer(item.prompt, example.response);

      exact += example.score.exact_match ? 1 : 0;
      format += example.score.format_ok ? 1 : 0;
      fact += example.score.fact_correct ? 1 : 0;
      ends += example.score.ends_turn ? 1 : 0;
      reward += example.score.reward;
      response_tokens += example.response_tokens;
      if (example.extra_score) extra += *example.extra_score;
      report.examples.push_back(std::move(example));
    }
  }
  report.exact_match_rate = rate(exact, count);
  report.format_rate = rate(format, count);
  report.fact_correct_rate = rate(fact, count);
  report.ends_turn_rate = rate(ends, count);
  report.mean_reward = reward / static_cast<double>(count);
  report.mean_response_tokens = rate(response_tokens, count);
  if (config.scorer) report.mean_extra_score = extra / static_cast<double>(count);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  if (!config.jsonl_path.empty()) {
    write_file_atomic(config.jsonl_path, [&](FileSink& out) {
      for (const auto& example : report.examples) out.write(example_json(example));
    });
  }
  return report;
}

}  // namespace tiller::rl
