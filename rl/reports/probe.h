// The likelihood probe: does a model *know* a world fact, whatever format it answers in?
// lm-eval-harness-style multiple choice, so it measures a pretrained base (which has never seen a
// chat) and every aligned model alike.
//
// For each question the candidates are the canonical answer sentence with every admissible value
// of its task (World::admissible_values: the 12 colours, the towns, every age, ...). Each
// candidate is scored by its log-likelihood — Σ log p over the sentence's tokens — after a
// plain-text cue: the end-of-text token (a document start, as in the corpus) then the question and
// a newline, no chat tokens. The question counts as right when the canonical sentence scores
// strictly above every other candidate (a tie is wrong). Candidates of one question share the
// sentence's prefix ("Zorvik's colour is "), so the ranking is by log p(value + suffix | cue,
// prefix): unnormalised sums, lm-eval's `acc` (not `acc_norm`).
//
// Chance for a question is 1 / its number of candidates; a report's `chance` is the mean over its
// questions — what accuracy on facts no model could know (World::unseen_prompts) should be near.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/models/model.h"
#include "core/text/tokenizer.h"
#include "core/world/world.h"

namespace tiller::rl {

// Σ log p(candidate tokens | cue, earlier candidate tokens) for each candidate continuation of
// one cue, at temperature 1. The cue and the candidates' longest common token prefix run once
// (batch 1) into a KV cache; only the tails where candidates differ are batched, `batch_size`
// candidates per forward pass over a copy of that cache — for a question whose candidates share
// "Zorvik's colour is", each candidate costs its value and suffix tokens only. The cue must be
// non-empty and cue + every candidate must fit the model's max_seq_len; an empty candidate
// scores 0. Runs under NoGradGuard.
std::vector<double> candidate_loglikelihoods(Transformer& model, const std::vector<int32_t>& cue,
                                             const std::vector<std::vector<int32_t>>& candidates,
                                             int64_t batch_size = 64);

// The probe's cue for a question, as tokens: <|endoftext|> then encode(question + "\n").
std::vector<int32_t> probe_cue(const Tokenizer& tokenizer, const world::Question& question);

struct ProbeConfig {
  int64_t batch_size = 64;  // candidate rows per forward pass
  int64_t limit = 0;        // probe only the first `limit` items; 0 = all
};

struct ProbeExample {
  int id = 0;  // the item's id
  world::TaskType task = world::TaskType::kColour;
  std::string expected;  // the right value
  std::string best;      // the highest-scoring value (first one on a tie)
  int64_t candidates = 0;
  bool correct = false;
};

struct ProbeTaskResult {
  world::TaskType task = world::TaskType::kColour;
  int64_t questions = 0;
  int64_t correct = 0;
  double chance = 0.0;      // mean of 1 / candidates over this task's questions
  double accuracy() const;  // NaN without questions
};

struct ProbeReport {
  int64_t questions = 0;
  int64_t correct = 0;
  double accuracy = 0.0;
  double chance = 0.0;
  double creature_accuracy = 0.0;         // over the creature-attribute questions; NaN without any
  std::vector<ProbeTaskResult> per_task;  // one per task type, in declaration order
  std::vector<ProbeExample> examples;
  double seconds = 0.0;

  std::string summary() const;  // "probe 84.0% (creatures 86.4%, chance 7.1%): colour 23/25 ..."
};

// Probes the first `limit` items (all when 0) with `world`'s admissible values. Throws when
// `items` is empty or a row does not fit the model's max_seq_len.
ProbeReport probe_world(Transformer& model, const Tokenizer& tokenizer, const World& world,
                        const std::vector<world::EvalItem>& items, const ProbeConfig& config = {});

}  // namespace tiller::rl
