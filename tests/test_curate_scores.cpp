// Model-based curation scores equal direct calls of the model: perplexity and IFD by hand from
// Transformer::loss, embeddings from hidden_states, rewards from RewardModel::score.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/tensor/autograd.h"
#include "core/text/chat.h"
#include "core/text/special_tokens.h"
#include "rl/data/curate_scores.h"

using namespace tiller;

namespace {

Tokenizer byte_chat_tokenizer() {
  Tokenizer tokenizer;
  for (std::string_view token : special_tokens::kAll) tokenizer.add_special_token(token);
  return tokenizer;
}

// Mean NLL of the trainable targets of one rendered chat, from Transformer::loss.
double direct_loss(Transformer& model, const RenderedChat& chat) {
  NoGradGuard no_grad;
  const auto T = static_cast<int64_t>(chat.tokens.size()) - 1;
  std::vector<int32_t> inputs(chat.tokens.begin(), chat.tokens.end() - 1), targets;
  for (int64_t t = 1; t <= T; ++t) targets.push_back(chat.trainable[t] ? chat.tokens[t] : -100);
  const TensorOptions ints{.dtype = DType::i32};
  return model
      .loss(Tensor::from_ints(inputs, {1, T}, ints), Tensor::from_ints(targets, {1, T}, ints))
      .to_vector()[0];
}

data::Row chat_row(const std::string& q, const std::string& a) {
  return data::parse_row(R"({"messages":[{"role":"user","content":")" + q +
                             R"("},{"role":"assistant","content":")" + a + R"("}]})",
                         "t.jsonl:1");
}

// The normalised mean of the model's final hidden states (C = 32) over every token of `tokens`.
std::vector<double> normalised_mean_hidden(Transformer& model, const std::vector<int32_t>& tokens) {
  NoGradGuard no_grad;
  const auto T = static_cast<int64_t>(tokens.size());
  const std::vector<float> hidden =
      model.hidden_states(Tensor::from_ints(tokens, {1, T}, {.dtype = DType::i32})).to_vector();
  std::vector<double> mean(32, 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int c = 0; c < 32; ++c) mean[c] += hidden[t * 32 + c] / T;
  double norm = 0;
  for (double v : mean) norm += v * v;
  for (double& v : mean) v /= std::sqrt(norm);
  return mean;
}

}  // namespace

TEST_CASE("perplexity and IFD equal loss(answer | question) and loss(answer) computed by hand",
          "[curate]") {
  Tokenizer tokenizer = byte_chat_tokenizer();
  Transformer model(ModelConfig::gpt2(tokenizer.vocab_size(), 2, 2, 32, 128), 11);
  const std::vector<data::Row> rows = {
      chat_row("What colour is the sky?", "Blue."),
      chat_row("Add 2 and 3, please, and explain it.", "2 plus 3 is 5."),
      data::parse_row(R"({"text":"A plain document."})", "d.jsonl:1")};
  data::RowScores scores{std::vector<double>(3, NAN), std::vector<double>(3, NAN),
                         std::vector<double>(3, NAN)};
  rl::ModelScorer scorer(&model, &tokenizer, nullptr, {.batch_size = 2, .progress = false});
  scorer.score(rows, {0, 1, 2}, scores, {});

  for (int i = 0; i < 2; ++i) {
    const auto& m = rows[static_cast<size_t>(i)].messages;
    const double conditioned = direct_loss(
        model, render_chat(tokenizer, {{"user", m[0].content}, {"assistant", m[1].content}}));
    const double alone = direct_loss(model, render_chat(tokenizer, {{"assistant", m[1].content}}));
    CHECK(scores.perplexity[static_cast<size_t>(i)] == Approx(std::exp(conditioned)).epsilon(1e-5));
    CHECK(scores.ifd[static_cast<size_t>(i)] == Approx(conditioned / alone).epsilon(1e-5));
  }
  RenderedChat document;
  document.tokens = tokenizer.encode("A plain document.");
  document.trainable.assign(document.tokens.size(), 1);
  CHECK(scores.perplexity[2] == Approx(std::exp(direct_loss(model, document))).epsilon(1e-5));
  CHECK(std::isnan(scores.ifd[2]));
  CHECK(std::isnan(scores.reward[0]));

  // Without IFD in the request: the same perplexities, no second pass, IFD left NaN.
  data::RowScores lean{std::vector<double>(3, NAN), std::vector<double>(3, NAN),
                       std::vector<double>(3, NAN)};
  scorer.score(rows, {0, 1, 2}, lean, {.ifd = false});
  for (size_t i = 0; i < 3; ++i) {
    CHECK(lean.perplexity[i] == scores.perplexity[i]);
    CHECK(std::isnan(lean.ifd[i]));
  }
}

TEST_CASE("plain-text scores read a chat as lines after <|endoftext|>, without chat tokens",
          "[curate]") {
  Tokenizer tokenizer = byte_chat_tokenizer();
  Transformer model(ModelConfig::gpt2(tokenizer.vocab_size(), 2, 2, 32, 128), 12);
  const std::vector<data::Row> rows = {chat_row("What colour is Zorvik?", "Zorvik is green.")};
  data::RowScores plain{{NAN}, {NAN}, {NAN}}, chat{{NAN}, {NAN}, {NAN}};
  rl::ModelScorer(&model, &tokenizer, nullptr, {.progress = false, .plain_text = true})
      .score(rows, {0}, plain, {});
  rl::ModelScorer(&model, &tokenizer, nullptr, {.progress = false}).score(rows, {0}, chat, {});

  // By hand: <|endoftext|> "What colour is Zorvik?\n" (not scored) "Zorvik is green.\n" (scored).
  const int32_t eot = tokenizer.token_id(special_tokens::kEndOfText);
  auto lines = [&](const std::vector<std::string>& text, const std::vector<uint8_t>& scored) {
    RenderedChat out{{eot}, {0}};
    for (size_t i = 0; i < text.size(); ++i) {
      const std::vector<int32_t> ids = tokenizer.encode(text[i] + "\n");
      out.tokens.insert(out.tokens.end(), ids.begin(), ids.end());
      out.trainable.insert(out.trainable.end(), ids.size(), scored[i]);
    }
    return out;
  };
  const double conditioned =
      direct_loss(model, lines({"What colour is Zorvik?", "Zorvik is green."}, {0, 1}));
  const double alone = direct_loss(model, lines({"Zorvik is green."}, {1}));
  CHECK(plain.perplexity[0] == Approx(std::exp(conditioned)).epsilon(1e-5));
  CHECK(plain.ifd[0] == Approx(conditioned / alone).epsilon(1e-5));
  // The chat template's tokens change what is measured.
  CHECK(std::abs(std::log(plain.perplexity[0]) - std::log(chat.perplexity[0])) > 1e-3);
}

TEST_CASE("embeddings are the normalised mean of hidden states; rewards are the model's scores",
          "[curate]") {
  Tokenizer tokenizer = byte_chat_tokenizer();
  Transformer model(ModelConfig::gpt2(tokenizer.vocab_size(), 2, 2, 32, 128), 12);
  rl::RewardModel reward(Transformer(ModelConfig::gpt2(tokenizer.vocab_size(), 1, 2, 32, 128), 13),
                         14);
  const std::vector<data::Row> rows = {chat_row("Hi?", "Hello."),
                                       chat_row("A longer question here?", "A longer answer.")};
  rl::ModelScorer scorer(&model, &tokenizer, &reward, {.batch_size = 2, .progress = false});
  const data::Embeddings embeddings = scorer.embed(rows, {1, 0});
  REQUIRE(embeddings.dim == 32);

  const std::vector<double> expected = normalised_mean_hidden(
      model, render_chat(tokenizer, {{"user", "Hi?"}, {"assistant", "Hello."}}).tokens);
  for (int c = 0; c < 32; ++c) CHECK(embeddings.row(1)[c] == Approx(expected[c]).margin(1e-5));

  data::RowScores scores{std::vector<double>(2, NAN), std::vector<double>(2, NAN),
                         std::vector<double>(2, NAN)};
  scorer.score(rows, {0, 1}, scores, {});
  std::vector<int32_t> response = tokenizer.encode("Hello.");
  response.push_back(tokenizer.token_id(special_tokens::kEndOfTurn));
  const std::vector<float> direct =
      reward.score({render_generation_prompt(tokenizer, {{"user", "Hi?"}})}, {response});
  CHECK(scores.reward[0] == Approx(direct[0]).epsilon(1e-5));
  data::RowScores no_reward{std::vector<double>(2, NAN), std::vector<double>(2, NAN),
                            std::vector<double>(2, NAN)};
  scorer.score(rows, {0, 1}, no_reward, {.reward = false});
  CHECK(std::isnan(no_reward.reward[0]));
  CHECK(no_reward.perplexity[0] == scores.perplexity[0]);
}

TEST_CASE("instruction embeddings read the system and user turns only", "[curate]") {
  Tokenizer tokenizer = byte_chat_tokenizer();
  Transformer model(ModelConfig::gpt2(tokenizer.vocab_size(), 2, 2, 32, 128), 21);
  // Same question, different answers; then a different question with the first answer.
  const std::vector<data::Row> rows = {chat_row("Spell Zorvik?", "Z-O-R-V-I-K."),
                                       chat_row("Spell Zorvik?", "Zorvik is spelled Z-O-R."),
                                       chat_row("Zorvik in capitals?", "Z-O-R-V-I-K.")};
  rl::ModelScorer whole(&model, &tokenizer, nullptr, {.batch_size = 3, .progress = false});
  rl::ModelScorer asks(&model, &tokenizer, nullptr,
                       {.batch_size = 3, .progress = false, .embed_instructions = true});
  const data::Embeddings by_chat = whole.embed(rows, {0, 1, 2});
  const data::Embeddings by_instruction = asks.embed(rows, {0, 1, 2});
  auto same = [](const float* a, const float* b) {
    for (int c = 0; c < 32; ++c)
      if (a[c] != b[c]) return false;
    return true;
  };
  REQUIRE(same(by_instruction.row(0), by_instruction.row(1)));  // the answers are not read
  REQUIRE_FALSE(same(by_instruction.row(0), by_instruction.row(2)));
  REQUIRE_FALSE(same(by_chat.row(0), by_chat.row(1)));

  // Row 0's instruction embedding is the normalised mean over the rendered user turn.
  const std::vector<double> expected =
      normalised_mean_hidden(model, render_chat(tokenizer, {{"user", "Spell Zorvik?"}}).tokens);
  for (int c = 0; c < 32; ++c)
    CHECK(by_instruction.row(0)[c] == Approx(expected[c]).margin(1e-5));
}
