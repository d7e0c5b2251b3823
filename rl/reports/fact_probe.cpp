// The multiple-choice likelihood probe (see rl/reports/fact_probe.h).
#include "rl/reports/fact_probe.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/text/special_tokens.h"
#include "kernels/error.h"
#include "kernels/random.h"
#include "rl/reports/probe.h"

namespace tiller::rl {

std::vector<ChoiceQuestion> choice_questions(
    const std::vector<world::Expected>& facts,
    const std::function<std::vector<std::string>(world::TaskType)>& values_of_task, int choices,
    uint64_t seed) {
  TILLER_CHECK(choices >= 2, "choice probe: choices must be >= 2, got {}", choices);
  random::Stream stream(seed);
  std::vector<ChoiceQuestion> questions;
  for (const world::Expected& fact : facts) {
    std::vector<std::string> wrong;
    for (std::string& value : values_of_task(fact.task))
      if (value != fact.value && std::find(wrong.begin(), wrong.end(), value) == wrong.end())
        wrong.push_back(std::move(value));
    TILLER_CHECK(static_cast<int>(wrong.size()) >= choices - 1,
                 "choice probe: {} has {} wrong values to choose from, fewer than {}", fact.key,
                 wrong.size(), choices - 1);
    random::shuffle(wrong, stream);
    ChoiceQuestion question;
    question.correct = stream.below(static_cast<uint64_t>(choices));
    for (int i = 0, w = 0; i < choices; ++i) {
      const std::string& value =
          static_cast<size_t>(i) == question.correct ? fact.value : wrong[w++];
      question.sentences.push_back(fact.prefix + value + fact.suffix);
    }
    questions.push_back(std::move(question));
  }
  return questions;
}

ChoiceProbeResult run_choice_probe(Transformer& model, const Tokenizer& tokenizer,
                                   const std::vector<ChoiceQuestion>& questions,
                                   int64_t batch_size) {
  TILLER_CHECK(!questions.empty() && batch_size > 0,
               "choice probe: {} questions, batch_size {}: need questions and a positive batch",
               questions.size(), batch_size);
  // Each question's sentences are scored after <|endoftext|> by the probe's shared scorer
  // (rl/reports/probe.h): the cue and the sentences' common token prefix run once.
  const std::vector<int32_t> cue = {tokenizer.token_id(special_tokens::kEndOfText)};
  std::vector<double> logprobs;
  for (const ChoiceQuestion& question : questions) {
    std::vector<std::vector<int32_t>> candidates;
    for (const std::string& sentence : question.sentences) {
      candidates.push_back(tokenizer.encode(sentence));
      TILLER_CHECK(static_cast<int64_t>(candidates.back().size()) + 1 <=
                       model.config().max_seq_len,
                   "choice probe: '{}' is {} tokens, longer than max_seq_len {} - 1", sentence,
                   candidates.back().size(), model.config().max_seq_len);
    }
    const std::vector<double> scores =
        candidate_loglikelihoods(model, cue, candidates, batch_size);
    logprobs.insert(logprobs.end(), scores.begin(), scores.end());
  }
  ChoiceProbeResult result;
  result.questions = static_cast<int64_t>(questions.size());
  size_t at = 0;
  int64_t known = 0;
  for (const ChoiceQuestion& question : questions) {
    const double truth = logprobs[at + question.correct];
    double best_wrong = -std::numeric_limits<double>::infinity();
    for (size_t c = 0; c < question.sentences.size(); ++c)
      if (c != question.correct) best_wrong = std::max(best_wrong, logprobs[at + c]);
    known += truth > best_wrong ? 1 : 0;
    result.mean_true_logprob += truth;
    result.mean_margin += truth - best_wrong;
    result.chance += 1.0 / static_cast<double>(question.sentences.size());
    at += question.sentences.size();
  }
  const auto n = static_cast<double>(questions.size());
  result.accuracy = static_cast<double>(known) / n;
  result.chance /= n;
  result.mean_true_logprob /= n;
  result.mean_margin /= n;
  return result;
}

}  // namespace tiller::rl
