// Model-based curation signals from tiller models: the ScoreProvider that core/data/curate.h's
// "scores" and "select" stages call.
//
//   perplexity  exp(mean NLL of the response tokens given the prompt) under `model`: the tokens
//               the chat template marks trainable (assistant content + <|end|>, core/chat.h); a
//               text row: every token after the first
//   IFD         Instruction-Following Difficulty (Li et al. 2024, "From Quantity to Quality",
//               Cherry; Superfiltering): loss(response | prompt) / loss(response alone), the
//               second from the same chat rendered with only its assistant turns. IFD > 1 means
//               the prompt makes the answer less likely: Cherry flags those rows (max_ifd = 1).
//               Text rows have no IFD (NaN).
//   reward      `reward_model`'s score of (generation prompt of the turns before the last
//               answer, last answer + <|end|>), unnormalised
//   embedding   the model's final hidden states (Transformer::hidden_states) mean-pooled over the
//               row's real tokens, L2-normalised; with embed_instructions, of the row's
//               instructions alone (its system and user turns through the chat template)
// Rows longer than the model's context keep their LAST max_seq_len tokens (the answer end).
// Batches are right-padded; causal attention means no real token sees the padding, so a row
// scores the same alone or in a batch. A progress line with ETA goes to stderr when asked.
#pragma once

#include <cstdint>
#include <vector>

#include "core/data/curate.h"
#include "core/models/model.h"
#include "core/text/tokenizer.h"
#include "rl/heads/reward.h"

namespace tiller::rl {

struct CurateScoreOptions {
  int64_t batch_size = 16;
  bool progress = true;  // "\r[curate] scores 120/5000 eta 1m12s" on stderr
  // Score chats as plain text, as a pretrained base read its corpus: <|endoftext|>, then each
  // turn's content on its own line, no chat tokens (the answers' lines are the scored tokens; the
  // likelihood probe's layout, rl/reports/probe.h). Through the chat template a base model that
  // never saw it mostly measures the template (median answer perplexity 161 in the pipeline's
  // pool); in plain text its perplexity says whether an answer agrees with what it learned.
  // Perplexity and IFD only: the reward model and the embeddings keep the chat template.
  bool plain_text = false;
  // Embed only what the row asks (its system and user turns), not its answers: diversity
  // selection then spreads the budget over kinds of instruction, as CaR (Ge et al. 2024,
  // "Clustering and Ranking") clusters instructions. Whole-chat embeddings are dominated by the
  // answers: in the pipeline's pool every spelling answer ("Shoubitri is spelled S-H-O-U-...")
  // looks alike whatever the question's wording, and the CaR selection kept 2 of the 74
  // "Spell the name X letter by letter." rows that reached it. Text rows embed their text.
  bool embed_instructions = false;
};

// Mean NLL per row over the targets t >= 1 with trainable[t] != 0 (NaN for a row without any),
// computed from model.forward in batches. tokens[i] and trainable[i] have the same length >= 2.
std::vector<double> masked_mean_nll(Transformer& model,
                                    const std::vector<std::vector<int32_t>>& tokens,
                                    const std::vector<std::vector<uint8_t>>& trainable,
                                    int64_t batch_size = 16);

class ModelScorer : public data::ScoreProvider {
 public:
  // `reward_model` may be null. The pointers must outlive the scorer.
  ModelScorer(Transformer* model, const Tokenizer* tokenizer, RewardModel* reward_model = nullptr,
              CurateScoreOptions options = {});
  // Perplexity always; IFD and the reward only when requested (and a reward model is given).
  void score(const std::vector<data::Row>& rows, const std::vector<int64_t>& indices,
             data::RowScores& scores, const data::ScoreRequest& request) override;
  data::Embeddings embed(const std::vector<data::Row>& rows,
                         const std::vector<int64_t>& indices) override;
  bool has_reward() const override { return reward_model_ != nullptr; }

 private:
  Transformer* model_;
  const Tokenizer* tokenizer_;
  RewardModel* reward_model_;
  CurateScoreOptions options_;
};

}  // namespace tiller::rl
