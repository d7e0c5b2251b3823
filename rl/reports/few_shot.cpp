// Few-shot prompt selection and rendering (see rl/reports/few_shot.h).
#include "rl/reports/few_shot.h"

#include <algorithm>
#include <set>

#include "core/text/special_tokens.h"
#include "kernels/error.h"
#include "kernels/random.h"

namespace tiller::rl {

namespace {

template <typename Enum, size_t N>
Enum parse_choice(std::string_view name, const std::pair<std::string_view, Enum> (&choices)[N],
                  const char* flag) {
  std::string listed;
  for (const auto& [text, value] : choices) {
    if (name == text) return value;
    listed += (listed.empty() ? "" : ", ") + std::string(text);
  }
  fail("few-shot: {} '{}' is not one of {}", flag, name, listed);
}

constexpr std::pair<std::string_view, ShotFormat> kFormats[] = {{"chat", ShotFormat::chat},
                                                                {"plain", ShotFormat::plain}};
constexpr std::pair<std::string_view, ShotOrder> kOrders[] = {
    {"random", ShotOrder::random},
    {"same-task-first", ShotOrder::same_task_first},
    {"same-task-last", ShotOrder::same_task_last}};
constexpr std::pair<std::string_view, ShotMix> kMixes[] = {{"same-task", ShotMix::same_task},
                                                           {"mixed-tasks", ShotMix::mixed_tasks}};

template <typename Enum, size_t N>
std::string_view name_of(Enum value, const std::pair<std::string_view, Enum> (&choices)[N]) {
  for (const auto& [text, choice] : choices)
    if (choice == value) return text;
  return "?";
}

// `count` distinct indices of `candidates`, drawn without replacement.
std::vector<size_t> draw(const std::vector<size_t>& candidates, size_t count,
                         random::Stream& stream) {
  std::vector<size_t> chosen = candidates;
  random::shuffle(chosen, stream);
  chosen.resize(std::min(count, chosen.size()));
  return chosen;
}

}  // namespace

ShotFormat parse_shot_format(std::string_view name) {
  return parse_choice(name, kFormats, "--shot-format");
}
ShotOrder parse_shot_order(std::string_view name) {
  return parse_choice(name, kOrders, "--shot-order");
}
ShotMix parse_shot_mix(std::string_view name) {
  return parse_choice(name, kMixes, "--shot-mix");
}
std::string_view shot_format_name(ShotFormat format) {
  return name_of(format, kFormats);
}
std::string_view shot_order_name(ShotOrder order) {
  return name_of(order, kOrders);
}
std::string_view shot_mix_name(ShotMix mix) {
  return name_of(mix, kMixes);
}

std::vector<FewShotExample> select_shots(const std::vector<FewShotExample>& pool,
                                         std::string_view task, std::string_view key,
                                         const FewShotOptions& options, uint64_t query_index) {
  TILLER_CHECK(options.shots >= 0, "few-shot: shots must be >= 0, got {}", options.shots);
  if (options.shots == 0) return {};
  std::vector<size_t> same, other;
  for (size_t i = 0; i < pool.size(); ++i) {
    if (pool[i].key == key) continue;  // an eval fact never answers itself
    (pool[i].task == task ? same : other).push_back(i);
  }
  random::Stream stream(random::derive(options.seed, query_index));
  const auto k = static_cast<size_t>(options.shots);
  const size_t same_count = options.mix == ShotMix::same_task ? k : k / 2;
  std::vector<size_t> same_chosen = draw(same, same_count, stream);
  std::vector<size_t> other_chosen = draw(other, k - same_chosen.size(), stream);

  std::vector<size_t> order;
  switch (options.order) {
    case ShotOrder::random:
      order = same_chosen;
      order.insert(order.end(), other_chosen.begin(), other_chosen.end());
      random::shuffle(order, stream);
      break;
    case ShotOrder::same_task_first:
      order = same_chosen;
      order.insert(order.end(), other_chosen.begin(), other_chosen.end());
      break;
    case ShotOrder::same_task_last:
      order = other_chosen;
      order.insert(order.end(), same_chosen.begin(), same_chosen.end());
      break;
  }
  std::vector<FewShotExample> shots;
  for (size_t i : order) shots.push_back(pool[i]);
  return shots;
}

std::vector<ChatMessage> few_shot_messages(const std::vector<FewShotExample>& shots,
                                           const std::string& question) {
  std::vector<ChatMessage> messages;
  for (const FewShotExample& shot : shots) {
    messages.push_back({"user", shot.question});
    messages.push_back({"assistant", shot.answer});
  }
  messages.push_back({"user", question});
  return messages;
}

std::string few_shot_plain_text(const std::vector<FewShotExample>& shots,
                                const std::string& question) {
  std::string text;
  for (const FewShotExample& shot : shots)
    text += "Q: " + shot.question + "\nA: " + shot.answer + "\n";
  return text + "Q: " + question + "\nA:";
}

FewShotPrompt render_few_shot_prompt(const Tokenizer& tokenizer,
                                     const std::vector<FewShotExample>& shots,
                                     const std::string& question, ShotFormat format,
                                     int64_t max_tokens) {
  auto render = [&](size_t first) {
    std::vector<FewShotExample> kept(shots.begin() + static_cast<std::ptrdiff_t>(first),
                                     shots.end());
    if (format == ShotFormat::chat)
      return render_generation_prompt(tokenizer, few_shot_messages(kept, question));
    std::vector<TokenId> tokens = {tokenizer.token_id(special_tokens::kEndOfText)};
    auto body = tokenizer.encode(few_shot_plain_text(kept, question));
    tokens.insert(tokens.end(), body.begin(), body.end());
    return tokens;
  };
  FewShotPrompt prompt;
  for (size_t first = 0; first <= shots.size(); ++first) {
    prompt.tokens = render(first);
    if (static_cast<int64_t>(prompt.tokens.size()) <= max_tokens) {
      prompt.shots_used = static_cast<int64_t>(shots.size() - first);
      prompt.shots_dropped = static_cast<int64_t>(first);
      return prompt;
    }
  }
  fail(
      "few-shot: the question alone is {} tokens, more than the {} the context leaves for the "
      "prompt: {:.80}",
      prompt.tokens.size(), max_tokens, question);
}

std::vector<TokenId> few_shot_stop_tokens(const Tokenizer& tokenizer, ShotFormat format) {
  if (format == ShotFormat::chat) return {tokenizer.token_id(special_tokens::kEndOfTurn)};
  std::vector<TokenId> stops;
  for (TokenId id = 0; id < tokenizer.vocab_size(); ++id) {
    const std::string& bytes = tokenizer.token_bytes(id);
    if (bytes.find('\n') != std::string::npos || bytes == special_tokens::kEndOfText)
      stops.push_back(id);
  }
  return stops;
}

std::string few_shot_response_for_scoring(std::string_view completion, ShotFormat format) {
  if (format == ShotFormat::chat) return std::string(completion);
  const size_t newline = completion.find('\n');
  std::string_view line = completion.substr(0, newline);
  if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  std::string response(line);
  if (newline != std::string_view::npos) response += special_tokens::kEndOfTurn;
  return response;
}

std::vector<FewShotExample> world_shot_pool(const World& world) {
  std::vector<FewShotExample> pool;
  std::set<std::string> keys;
  for (const world::SftExample& example : world.sft_examples()) {
    for (const world::Question& question : example.questions) {
      const world::Expected& expected = question.expected;
      if (!keys.insert(expected.key).second) continue;
      pool.push_back({std::string(world::task_name(expected.task)), expected.key, question.text,
                      expected.sentence()});
    }
  }
  return pool;
}

EvaluationConfig few_shot_evaluation(EvaluationConfig base, const Tokenizer& tokenizer,
                                     std::vector<FewShotExample> pool, FewShotOptions options,
                                     int64_t max_seq_len, std::shared_ptr<FewShotStats> stats) {
  const int64_t room = max_seq_len - base.max_new_tokens;
  TILLER_CHECK(room > 0, "few-shot: max_new_tokens {} leaves no room for a prompt in {} positions",
               base.max_new_tokens, max_seq_len);
  if (!stats) stats = std::make_shared<FewShotStats>();
  auto shared_pool = std::make_shared<const std::vector<FewShotExample>>(std::move(pool));
  base.render_prompt = [&tokenizer, shared_pool, options, room, stats](const world::EvalItem& item,
                                                                       int64_t index) {
    const world::Expected& expected = item.question.expected;
    auto shots = select_shots(*shared_pool, world::task_name(expected.task), expected.key, options,
                              static_cast<uint64_t>(index));
    FewShotPrompt prompt =
        render_few_shot_prompt(tokenizer, shots, item.question.text, options.format, room);
    ++stats->prompts;
    stats->shots_used += prompt.shots_used;
    stats->shots_dropped += prompt.shots_dropped;
    stats->prompts_truncated += prompt.shots_dropped > 0 ? 1 : 0;
    return prompt.tokens;
  };
  base.stop_tokens = few_shot_stop_tokens(tokenizer, options.format);
  base.response_for_scoring = [format = options.format](std::string_view completion) {
    return few_shot_response_for_scoring(completion, format);
  };
  return base;
}

}  // namespace tiller::rl
