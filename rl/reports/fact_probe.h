// A multiple-choice likelihood probe of factual knowledge: does the model give the true sentence a
// higher likelihood than the same sentence with a wrong value?
//
// For each fact, the canonical sentence prefix + value + suffix ("Zorvik lives in Pelmora.") is
// scored against the same sentence with distractor values of the same kind, by the total
// log-probability of the sentence after <|endoftext|> (a document start, as in pretraining). The
// sentence is scored whole, not only the value's tokens, because BPE may merge the value with the
// space before it. A fact counts as known when the true sentence scores highest; accuracy over
// facts is compared with chance = 1 / choices. Scoring is rl/reports/probe.h's
// candidate_loglikelihoods (cue <|endoftext|>, the candidates' common prefix cached once); this
// file only builds the sampled-distractor questions and their summary, where probe_world ranks a
// world question's every admissible value.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/models/model.h"
#include "core/text/tokenizer.h"
#include "core/world/world.h"

namespace tiller::rl {

struct ChoiceQuestion {
  std::vector<std::string> sentences;  // candidates; sentences[correct] is the true one
  size_t correct = 0;
};

struct ChoiceProbeResult {
  int64_t questions = 0;
  double accuracy = 0.0;           // true sentence ranked first (ties count as wrong)
  double chance = 0.0;             // mean of 1 / candidates
  double mean_true_logprob = 0.0;  // log p of the true sentence, averaged over questions
  double mean_margin = 0.0;        // true minus best wrong log p, averaged
};

// `choices` candidates per fact: the true value and choices - 1 distinct wrong values drawn
// (seeded) from `values_of_task` (the values a fact of that task can take), the true one excluded.
std::vector<ChoiceQuestion> choice_questions(
    const std::vector<world::Expected>& facts,
    const std::function<std::vector<std::string>(world::TaskType)>& values_of_task, int choices,
    uint64_t seed);

ChoiceProbeResult run_choice_probe(Transformer& model, const Tokenizer& tokenizer,
                                   const std::vector<ChoiceQuestion>& questions,
                                   int64_t batch_size = 64);

}  // namespace tiller::rl
