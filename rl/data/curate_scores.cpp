// Model-based curation signals: see curate_scores.h.
#include "rl/data/curate_scores.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <limits>

#include "core/tensor/autograd.h"
#include "core/text/chat.h"
#include "core/text/special_tokens.h"
#include "kernels/error.h"
#include "rl/reports/metrics.h"

namespace tiller::rl {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

class Progress {
 public:
  Progress(const char* what, size_t total, bool enabled)
      : what_(what), total_(total), enabled_(enabled), start_(std::chrono::steady_clock::now()) {}
  void update(size_t done) const {
    if (!enabled_ || total_ == 0) return;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double eta = done > 0 ? elapsed * static_cast<double>(total_ - done) / done : 0.0;
    std::cerr << fmt::format("\r[curate] {} {}/{} rows  eta {}   ", what_, done, total_,
                             format_duration(eta))
              << (done == total_ ? "\n" : "") << std::flush;
  }

 private:
  const char* what_;
  size_t total_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_;
};

std::vector<ChatMessage> chat_of(const data::Row& row) {
  std::vector<ChatMessage> messages;
  if (row.format == data::RowFormat::chat) {
    for (const data::Message& m : row.messages) messages.push_back({m.role, m.content});
  } else {
    messages = prompt_completion_messages(row.prompt, row.response);
  }
  return messages;
}

// <|endoftext|>, then each message's content and "\n"; the assistant lines are trainable.
RenderedChat render_plain(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages) {
  RenderedChat out;
  out.tokens.push_back(tokenizer.token_id(special_tokens::kEndOfText));
  out.trainable.push_back(0);
  for (const ChatMessage& m : messages) {
    const std::vector<int32_t> ids = tokenizer.encode(m.content + "\n");
    out.tokens.insert(out.tokens.end(), ids.begin(), ids.end());
    out.trainable.insert(out.trainable.end(), ids.size(), m.role == "assistant" ? 1 : 0);
  }
  return out;
}

// Keeps the last `max_length` tokens (and their mask).
void keep_tail(RenderedChat& chat, int64_t max_length) {
  const auto size = static_cast<int64_t>(chat.tokens.size());
  if (size <= max_length) return;
  chat.tokens.erase(chat.tokens.begin(), chat.tokens.end() - max_length);
  chat.trainable.erase(chat.trainable.begin(), chat.trainable.end() - max_length);
}

}  // namespace

std::vector<double> masked_mean_nll(Transformer& model,
                                    const std::vector<std::vector<int32_t>>& tokens,
                                    const std::vector<std::vector<uint8_t>>& trainable,
                                    int64_t batch_size) {
  TILLER_CHECK(tokens.size() == trainable.size(), "masked_mean_nll: {} rows but {} masks",
               tokens.size(), trainable.size());
  TILLER_CHECK(batch_size > 0, "masked_mean_nll: batch_size must be positive, got {}", batch_size);
  NoGradGuard no_grad;
  const int64_t vocab = model.config().vocab_size;
  std::vector<double> result(tokens.size(), kNaN);
  for (size_t begin = 0; begin < tokens.size(); begin += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(tokens.size(), begin + static_cast<size_t>(batch_size));
    size_t T = 0;
    for (size_t i = begin; i < end; ++i) {
      TILLER_CHECK(tokens[i].size() == trainable[i].size() && tokens[i].size() >= 2,
                   "masked_mean_nll: row {} has {} tokens and {} mask entries (need equal, >= 2)",
                   i, tokens[i].size(), trainable[i].size());
      T = std::max(T, tokens[i].size() - 1);
    }
    const size_t B = end - begin;
    std::vector<int32_t> ids(B * T, 0);  // right padding; causal attention never looks at it
    for (size_t b = 0; b < B; ++b)
      std::copy(tokens[begin + b].begin(), tokens[begin + b].end() - 1, ids.begin() + b * T);
    const std::vector<float> logits =  // (B, T, V)
        model
            .forward(Tensor::from_ints(ids, {static_cast<int64_t>(B), static_cast<int64_t>(T)},
                                       {.dtype = DType::i32, .device = model.device()}))
            .to_vector();
    for (size_t b = 0; b < B; ++b) {
      const auto& row = tokens[begin + b];
      const auto& mask = trainable[begin + b];
      double total = 0;
      int64_t count = 0;
      for (size_t t = 0; t + 1 < row.size(); ++t) {
        if (!mask[t + 1]) continue;
        const float* z = logits.data() + (b * T + t) * static_cast<size_t>(vocab);
        const float peak = *std::max_element(z, z + vocab);
        double sum = 0;
        for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(z[v]) - peak);
        total += peak + std::log(sum) - z[row[t + 1]];
        ++count;
      }
      if (count > 0) result[begin + b] = total / static_cast<double>(count);
    }
  }
  return result;
}

ModelScorer::ModelScorer(Transformer* model, const Tokenizer* tokenizer, RewardModel* reward_model,
                         CurateScoreOptions options)
    : model_(model), tokenizer_(tokenizer), reward_model_(reward_model), options_(options) {
  TILLER_CHECK(model_ != nullptr && tokenizer_ != nullptr,
               "curate scores: a model and a tokenizer "
               "are required");
  TILLER_CHECK(tokenizer_->vocab_size() <= model_->config().vocab_size,
               "curate scores: the tokenizer has {} ids but the model only {}",
               tokenizer_->vocab_size(), model_->config().vocab_size);
}

void ModelScorer::score(const std::vector<data::Row>& rows, const std::vector<int64_t>& indices,
                        data::RowScores& scores, const data::ScoreRequest& request) {
  const bool with_reward = request.reward && reward_model_ != nullptr;
  const int64_t max_length = model_->config().max_seq_len + 1;  // inputs + the last target
  const size_t chunk = static_cast<size_t>(options_.batch_size) * 8;
  Progress progress("scores", indices.size(), options_.progress);
  for (size_t begin = 0; begin < indices.size(); begin += chunk) {
    const size_t end = std::min(indices.size(), begin + chunk);
    std::vector<std::vector<int32_t>> cond_tokens, alone_tokens;
    std::vector<std::vector<uint8_t>> cond_mask, alone_mask;
    std::vector<size_t> alone_of;  // position in cond_* of each alone_* row
    std::vector<std::vector<int32_t>> reward_prompts, reward_responses;
    for (size_t k = begin; k < end; ++k) {
      const data::Row& row = rows[static_cast<size_t>(indices[k])];
      if (row.format == data::RowFormat::text) {
        std::vector<int32_t> ids = tokenizer_->encode(row.text);
        if (static_cast<int64_t>(ids.size()) > max_length)
          ids.resize(static_cast<size_t>(max_length));
        if (ids.size() < 2) ids.resize(2, ids.empty() ? 0 : ids[0]);
        cond_mask.emplace_back(ids.size(), 1);
        cond_tokens.push_back(std::move(ids));
        continue;
      }
      const std::vector<ChatMessage> messages = chat_of(row);
      RenderedChat conditioned = options_.plain_text ? render_plain(*tokenizer_, messages)
                                                     : render_chat(*tokenizer_, messages);
      keep_tail(conditioned, max_length);
      std::vector<ChatMessage> answers_only;
      if (request.ifd)
        for (const ChatMessage& m : messages)
          if (m.role == "assistant") answers_only.push_back(m);
      if (!answers_only.empty()) {
        RenderedChat alone = options_.plain_text ? render_plain(*tokenizer_, answers_only)
                                                 : render_chat(*tokenizer_, answers_only);
        keep_tail(alone, max_length);
        alone_of.push_back(cond_tokens.size());
        alone_tokens.push_back(std::move(alone.tokens));
        alone_mask.push_back(std::move(alone.trainable));
      }
      cond_tokens.push_back(std::move(conditioned.tokens));
      cond_mask.push_back(std::move(conditioned.trainable));
      if (with_reward) {
        std::vector<ChatMessage> context = messages;
        std::string answer;
        while (!context.empty() && context.back().role != "assistant") context.pop_back();
        if (!context.empty()) answer = context.back().content, context.pop_back();
        reward_prompts.push_back(render_generation_prompt(*tokenizer_, context));
        std::vector<int32_t> response = tokenizer_->encode(answer);
        response.push_back(tokenizer_->token_id(special_tokens::kEndOfTurn));
        reward_responses.push_back(std::move(response));
      }
    }
    const std::vector<double> cond =
        masked_mean_nll(*model_, cond_tokens, cond_mask, options_.batch_size);
    const std::vector<double> alone =
        masked_mean_nll(*model_, alone_tokens, alone_mask, options_.batch_size);
    std::vector<float> rewards;
    if (with_reward)
      rewards = reward_model_->score(reward_prompts, reward_responses, false, options_.batch_size);
    size_t reward_at = 0;
    for (size_t k = begin; k < end; ++k) {
      const auto row = static_cast<size_t>(indices[k]);
      scores.perplexity[row] = std::exp(cond[k - begin]);
      if (rows[row].format != data::RowFormat::text && with_reward)
        scores.reward[row] = rewards[reward_at++];
    }
    for (size_t a = 0; a < alone_of.size(); ++a) {
      const auto row = static_cast<size_t>(indices[begin + alone_of[a]]);
      scores.ifd[row] = cond[alone_of[a]] / alone[a];
    }
    progress.update(end);
  }
}

data::Embeddings ModelScorer::embed(const std::vector<data::Row>& rows,
                                    const std::vector<int64_t>& indices) {
  NoGradGuard no_grad;
  const int64_t max_length = model_->config().max_seq_len;
  const int64_t C = model_->config().n_embd;
  data::Embeddings out;
  out.dim = C;
  out.values.assign(indices.size() * static_cast<size_t>(C), 0.f);
  Progress progress("embeddings", indices.size(), options_.progress);
  const auto batch = static_cast<size_t>(options_.batch_size);
  for (size_t begin = 0; begin < indices.size(); begin += batch) {
    const size_t end = std::min(indices.size(), begin + batch);
    std::vector<std::vector<int32_t>> ids;
    size_t T = 1;
    for (size_t k = begin; k < end; ++k) {
      const data::Row& row = rows[static_cast<size_t>(indices[k])];
      RenderedChat chat;
      if (row.format == data::RowFormat::text) {
        chat.tokens = tokenizer_->encode(row.text);
      } else {
        std::vector<ChatMessage> messages = chat_of(row);
        if (options_.embed_instructions)
          std::erase_if(messages, [](const ChatMessage& m) { return m.role == "assistant"; });
        chat = render_chat(*tokenizer_, messages);
      }
      if (chat.tokens.empty()) chat.tokens.push_back(0);
      if (static_cast<int64_t>(chat.tokens.size()) > max_length)
        chat.tokens.resize(static_cast<size_t>(max_length));
      T = std::max(T, chat.tokens.size());
      ids.push_back(std::move(chat.tokens));
    }
    const size_t B = end - begin;
    std::vector<int32_t> flat(B * T, 0);
    for (size_t b = 0; b < B; ++b) std::copy(ids[b].begin(), ids[b].end(), flat.begin() + b * T);
    const std::vector<float> hidden =  // (B, T, C)
        model_
            ->hidden_states(Tensor::from_ints(flat,
                                              {static_cast<int64_t>(B), static_cast<int64_t>(T)},
                                              {.dtype = DType::i32, .device = model_->device()}))
            .to_vector();
    for (size_t b = 0; b < B; ++b) {
      float* target = out.values.data() + (begin + b) * static_cast<size_t>(C);
      for (size_t t = 0; t < ids[b].size(); ++t)
        for (int64_t c = 0; c < C; ++c) target[c] += hidden[(b * T + t) * C + c];
      double norm = 0;
      for (int64_t c = 0; c < C; ++c) norm += static_cast<double>(target[c]) * target[c];
      if (norm > 0)
        for (int64_t c = 0; c < C; ++c) target[c] = static_cast<float>(target[c] / std::sqrt(norm));
    }
    progress.update(end);
  }
  return out;
}

}  // namespace tiller::rl
