// SFT: the loss mask token by token, packing equivalence, token-normalised gradient accumulation,
// JSONL error reporting, truncation, held-out splits, bit-exact trainer resume and replay of
// pretraining shards.
#include <catch2/catch.hpp>

#include <fstream>
#include <set>

#include "core/data/loader.h"
#include "core/data/shards.h"
#include "core/ops/ops.h"
#include "core/text/special_tokens.h"
#include "rl/data/world_data.h"
#include "rl/trainers/sft.h"
#include "rl/data/sft_data.h"
#include "support/gradcheck.h"
#include "support/temp_dir.h"

using namespace tiller;
using namespace tiller::rl;
using tiller::testing::TempDir;

namespace {

// Bytes plus the special tokens: 261 ids, no merges, so every content byte is one token.
Tokenizer byte_chat_tokenizer() {
  Tokenizer tokenizer;
  for (std::string_view token : special_tokens::kAll) tokenizer.add_special_token(token);
  return tokenizer;
}

const std::vector<ChatMessage> kMultiTurn = {
    {"system", "Be brief."}, {"user", "Hi"},      {"assistant", "Hello!"},
    {"user", "2+2?"},        {"assistant", "4."},
};

Transformer tiny_model(ModelFamily family, int64_t vocab_size, int64_t max_seq_len = 96) {
  ModelConfig config = family == ModelFamily::gpt2
                           ? ModelConfig::gpt2(vocab_size, 2, 2, 32, max_seq_len)
                           : ModelConfig::llama(vocab_size, 2, 4, 2, 32, 64, max_seq_len);
  return Transformer(config, 5);
}

std::vector<std::vector<ChatMessage>> short_chats() {
  return {{{"user", "a?"}, {"assistant", "Yes."}},
          {{"user", "What is it called?"}, {"assistant", "It is called Zorvik, I think."}},
          {{"system", "Terse."},
           {"user", "b"},
           {"assistant", "No"},
           {"user", "c"},
           {"assistant", "Maybe so."}},
          {{"user", "Say a long thing please"}, {"assistant", "A long thing."}}};
}

SftDataset dataset(const Tokenizer& tokenizer, const std::vector<std::vector<ChatMessage>>& chats,
                   int64_t max_length) {
  std::vector<std::string> sources;
  for (size_t i = 0; i < chats.size(); ++i) sources.push_back("chat " + std::to_string(i));
  return SftDataset::from_conversations(chats, sources, tokenizer, {.max_length = max_length});
}

// Every parameter gradient, concatenated into one tensor, then the gradients are dropped.
Tensor take_gradients(Transformer& model) {
  std::vector<Tensor> parts;
  for (const auto& p : model.parameters()) {
    Tensor g = p.tensor.grad();
    parts.push_back(g.defined() ? g.clone().flatten() : Tensor::zeros({p.tensor.numel()}));
  }
  model.zero_grad();
  return concat(parts, 0);
}

std::vector<float> all_weights(Transformer& model) {
  std::vector<float> values;
  for (const auto& p : model.parameters()) {
    auto v = p.tensor.to_vector();
    values.insert(values.end(), v.begin(), v.end());
  }
  return values;
}

void write_lines(const std::filesystem::path& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const auto& line : lines) out << line << "\n";
}

}  // namespace

TEST_CASE("exactly the assistant tokens carry loss, token by token, on a multi-turn chat",
          "[sft]") {
  Tokenizer tokenizer = byte_chat_tokenizer();
  SftDataset data = dataset(tokenizer, {kMultiTurn}, 256);
  REQUIRE(data.size() == 1);

  // The expected layout built independently: per message marker, "\n", content, <|end|>, "\n";
  // loss on assistant content and the <|end|> that closes an assistant turn.
  std::vector<TokenId> expected_tokens;
  std::vector<bool> expected_loss;
  auto push = [&](const std::vector<TokenId>& ids, bool loss) {
    expected_tokens.insert(expected_tokens.end(), ids.begin(), ids.end());
    expected_loss.insert(expected_loss.end(), ids.size(), loss);
  };
  for (const ChatMessage& m : kMultiTurn) {
    const bool assistant = m.role == "assistant";
    push({tokenizer.token_id("<|" + m.role + "|>")}, false);
    push(tokenizer.encode("\n"), false);
    push(tokenizer.encode(m.content), assistant);
    push({tokenizer.token_id(special_tokens::kEndOfTurn)}, assistant);
    push(tokenizer.encode("\n"), false);
  }
  REQUIRE(data[0].tokens == expected_tokens);

  const SftRow row = {0};
  SftBatch batch = collate(data, std::span<const SftRow>(&row, 1));
  const auto T = static_cast<int64_t>(expected_tokens.size()) - 1;
  REQUIRE(batch.inputs.shape() == Shape{1, T});
  std::vector<int32_t> inputs = batch.inputs.to_int_vector();
  std::vector<int32_t> targets = batch.targets.to_int_vector();
  int64_t trainable = 0;
  std::string trained_text;
  for (int64_t t = 0; t < T; ++t) {
    INFO("position " << t);
    REQUIRE(inputs[t] == expected_tokens[t]);
    if (expected_loss[t + 1]) {
      REQUIRE(targets[t] == expected_tokens[t + 1]);
      trained_text += tokenizer.token_bytes(targets[t]);
      ++trainable;
    } else {
      REQUIRE(targets[t] == -100);
    }
  }
  REQUIRE(trained_text == "Hello!<|end|>4.<|end|>");
  REQUIRE(batch.trainable_tokens == trainable);
  REQUIRE(data.report().trainable_tokens == trainable);
  // Only trainable positions contribute: the summed loss equals the sum over those positions.
  Transformer model = tiny_model(ModelFamily::gpt2, tokenizer.vocab_size());
  TokenLossSum losses = sft_token_losses(model, batch);
  Tensor per_token =
      cross_entropy(model.forward(batch.inputs), batch.targets, -100, Reduction::none);
  std::vector<float> per_token_values = per_token.to_vector();
  double masked_sum = 0.0;
  for (int64_t t = 0; t < T; ++t)
    if (targets[t] != -100) masked_sum += per_token_values[t];
  REQUIRE(losses.loss_sum.item() == Approx(masked_sum).epsilon(1e-5));
  REQUIRE(losses.tokens == trainable);
}

TEST_CASE("a packed batch gives each example the loss and gradient it gets alone", "[sft]") {
  Tokenizer tokenizer = byte_chat_tokenizer();
  const auto chats = short_chats();
  for (ModelFamily family : {ModelFamily::gpt2, ModelFamily::llama}) {
    INFO(family_name(family));
    SftDataset data = dataset(tokenizer, chats, 200);
    std::vector<SftRow> rows = plan_rows(data, /*pack=*/true, /*seed=*/3);
    REQUIRE(rows.size() == 1);  // 200 inputs hold all four chats
    REQUIRE(rows[0].size() == chats.size());
    Transformer model = tiny_model(family, tokenizer.vocab_size(), 200);

    // Packed: per-token losses, summed per example segment, and the gradient of their total.
    SftBatch packed = collate(data, rows);
    REQUIRE(packed.document_ids.defined());
    Tensor logits = model.forward(packed.inputs, {.positions = packed.positions,
                                                  .key_padding_mask = {},
                                                  .document_ids = packed.document_ids,
                                                  .training = false,
                                                  .cache = nullptr});
    Tensor per_token = cross_entropy(logits, packed.targets, -100, Reduction::none);
    sum(per_token).backward();
    Tensor packed_gradient = take_gradients(model);
    std::vector<float> token_losses = per_token.detach().to_vector();

    // Alone: one example per batch, gradients summed over the examples.
    std::vector<Tensor> alone_gradients;
    int64_t offset = 0;
    for (int64_t index : rows[0]) {
      const SftRow single = {index};
      SftBatch alone = collate(data, std::span<const SftRow>(&single, 1));
      TokenLossSum loss = sft_token_losses(model, alone);
      const int64_t length = alone.inputs.size(1);
      double packed_sum = 0.0;
      for (int64_t t = 0; t < length; ++t) packed_sum += token_losses[offset + t];
      offset += length;
      REQUIRE(loss.loss_sum.item() == Approx(packed_sum).epsilon(1e-4));
      loss.loss_sum.backward();
      alone_gradients.push_back(take_gradients(model));
    }
    Tensor summed = alone_gradients[0];
    for (size_t i = 1; i < alone_gradients.size(); ++i) summed = add(summed, alone_gradients[i]);
    REQUIRE_CLOSE(packed_gradient, summed, 1e-3f, 1e-5f);
  }
}

TEST_CASE("k micro-batches accumulate the gradient of one batch, normalised over all tokens",
          "[sft]") {
  Tokenizer tokenizer = byte_chat_tokenizer();
  SftDataset data = dataset(tokenizer, short_chats(), 200);
  std::vector<SftRow> rows = plan_rows(data, /*pack=*/false);
  Transformer model = tiny_model(ModelFamily::llama, tokenizer.vocab_size(), 200);

  SftBatch whole = collate(data, rows);
  AccumulatedLoss one = accumulate_sft_gradients(model, std::span<const SftBatch>(&whole, 1));
  Tensor one_gradient = take_gradients(model);

  // Uneven micro-batches (1 row, then 3) with very different token counts.
  std::vector<SftBatch> micro = {collate(data, std::span<const SftRow>(rows).subspan(0, 1)),
                                 collate(data, std::span<const SftRow>(rows).subspan(1, 3))};
  REQUIRE(micro[0].trainable_tokens != micro[1].trainable_tokens);
  AccumulatedLoss accumulated = accumulate_sft_gradients(model, micro);
  Tensor accumulated_gradient = take_gradients(model);

  REQUIRE(accumulated.trainable_tokens == one.trainable_tokens);
  REQUIRE(accumulated.loss == Approx(one.loss).epsilon(1e-5));
  REQUIRE(accumulated.accuracy == Approx(one.accuracy));
  REQUIRE_CLOSE(accumulated_gradient, one_gradient, 1e-3f, 1e-6f);

  // The mean of micro-batch means is a different objective: its gradient differs measurably.
  for (const SftBatch& batch : micro) {
    TokenLossSum part = sft_token_losses(model, batch);
    scale(part.loss_sum, 0.5f / static_cast<float>(part.tokens)).backward();
  }
  Tensor mean_of_means = take_gradients(model);
  REQUIRE_FALSE(testing::compare(mean_of_means, one_gradient, 1e-2f, 1e-5f).empty());
}

TEST_CASE("malformed JSONL lines are reported with file and line number", "[sft]") {
  Tokenizer tokenizer = byte_chat_tokenizer();
  TempDir dir;
  const auto path = dir / "chats.jsonl";
  write_lines(
      path,
      {
          R"({"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Hello."}]})",
          "",
          R"({"messages":[{"role":"user","content":"hi"})",                 // line 3: cut JSON
          R"({"prompt":"2+2?"})",                                           // line 4: no completion
          R"({"messages":[{"role":"user","content":"only a question"}]})",  // line 5
          R"({"prompt":"2+3?","completion":"5."})",
          R"({"messages":[{"role":"robot","content":"beep"}]})",  // line 7: role
      });

  SECTION("stop: the first bad line ends the read, naming it") {
    REQUIRE_THROWS_WITH(SftDataset::from_jsonl(path, tokenizer),
                        Catch::Contains("chats.jsonl line 3") && Catch::Contains("not valid JSON"));
  }
  SECTION("skip: bad lines are counted and each is named") {
    SftDataset data = SftDataset::from_jsonl(
        path, tokenizer, {.max_length = 256, .on_malformed = MalformedLinePolicy::skip});
    const SftDataReport& report = data.report();
    REQUIRE(data.size() == 2);
    REQUIRE(report.malformed_lines == 3);
    REQUIRE(report.without_targets == 1);
    REQUIRE(report.problems.size() == 4);
    REQUIRE_THAT(report.problems[0], Catch::Contains("chats.jsonl line 3"));
    REQUIRE_THAT(report.problems[1],
                 Catch::Contains("chats.jsonl line 4") && Catch::Contains("completion"));
    REQUIRE_THAT(report.problems[2],
                 Catch::Contains("chats.jsonl line 5") && Catch::Contains("no assistant turn"));
    REQUIRE_THAT(report.problems[3],
                 Catch::Contains("chats.jsonl line 7") && Catch::Contains("robot"));
    REQUIRE(data[1].source == "chats.jsonl line 6");
    // {"prompt","completion"} is one user turn plus one assistant turn.
    REQUIRE(data[1].tokens ==
            render_chat(tokenizer, prompt_completion_messages("2+3?", "5.")).tokens);
  }
}

TEST_CASE("an SFT dataset with no usable example is an error", "[sft]") {
  Tokenizer tokenizer = byte_chat_tokenizer();
  TempDir dir;
  write_lines(dir / "empty.jsonl", {"", "  "});
  REQUIRE_THROWS_WITH(SftDataset::from_jsonl(dir / "empty.jsonl", tokenizer),
                      Catch::Contains("empty.jsonl holds no usable example"));
  write_lines(dir / "questions.jsonl", {R"({"messages":[{"role":"user","content":"q"}]})"});
  REQUIRE_THROWS_WITH(SftDataset::from_jsonl(dir / "questions.jsonl", tokenizer),
                      Catch::Contains("1 without a trainable target"));
  REQUIRE_THROWS_WITH(SftDataset::from_jsonl(dir / "missing.jsonl", tokenizer),
                      Catch::Contains("cannot open") && Catch::Contains("missing.jsonl"));
}

TEST_CASE("long examples are cut to max_length + 1 tokens and counted", "[sft]") {
  Tokenizer tokenizer = byte_chat_tokenizer();
  // "<|user|>\nq<|end|>\n<|assistant|>\n" is 7 tokens; the answer follows.
  std::vector<std::vector<ChatMessage>> chats = {
      {{"user", "q"}, {"assistant", "A long answer."}},           // 7 + 14 + 2 = 23 tokens
      {{"user", "q"}, {"assistant", "Ok"}},                       // 7 + 2 + 2 = 11 tokens
      {{"user", "a much longer question"}, {"assistant", "x"}}};  // cut inside the question
  SftDataset data = dataset(tokenizer, chats, 12);
  REQUIRE(data.size() == 2);
  REQUIRE(data.report().truncated == 1);
  REQUIRE(data.report().truncated_tokens == 23 - 13);
  REQUIRE(data.report().without_targets == 1);
  REQUIRE_THAT(data.report().problems[0],
               Catch::Contains("chat 2") && Catch::Contains("after truncation to 13 tokens"));
  REQUIRE(data[0].tokens.size() == 13);
  REQUIRE(data[0].trainable_targets() == 13 - 7);
  REQUIRE(data[1].tokens.size() == 11);
}

TEST_CASE("world SFT examples become a dataset, and a held-out split partitions it", "[sft]") {
  Tokenizer tokenizer = byte_chat_tokenizer();
  World world(WorldConfig{.seed = 2,
                          .num_entities = 24,
                          .num_towns = 4,
                          .mentions_per_fact = 1,
                          .num_sft_examples = 40,
                          .sft_multi_turn_fraction = 0.2,
                          .num_eval_prompts = 16,
                          .num_preference_pairs = 16,
                          .preference_heldout_fraction = 0.1});
  SftDataset data = world_sft_dataset(world.sft_examples(), tokenizer, {.max_length = 400});
  REQUIRE(data.size() == 40);
  REQUIRE(data[0].tokens == render_chat(tokenizer, world.sft_examples()[0].messages).tokens);
  REQUIRE(data[7].source == "world example 7");

  auto [train, held_out] = data.split(0.1, 9);
  REQUIRE(held_out.size() == 4);
  REQUIRE(train.size() == 36);
  std::set<std::string> sources;
  for (const auto& e : train.examples()) sources.insert(e.source);
  for (const auto& e : held_out.examples()) REQUIRE(sources.insert(e.source).second);
  REQUIRE(train.report().trainable_tokens + held_out.report().trainable_tokens ==
          data.report().trainable_tokens);
  REQUIRE_THROWS_WITH(data.split(1.0, 0), Catch::Contains("held-out fraction"));
}

TEST_CASE("an SFT run resumed from its checkpoint repeats the uninterrupted run exactly", "[sft]") {
  Tokenizer tokenizer = byte_chat_tokenizer();
  // Sixteen distinct chats: a resume that restored the wrong data cursor would train on other
  // rows and show it in the losses (repeated chats could hide that).
  std::vector<std::vector<ChatMessage>> chats;
  for (int i = 0; i < 4; ++i)
    for (auto chat : short_chats()) {
      chat.back().content += " #" + std::to_string(i);
      chats.push_back(chat);
    }
  SftDataset data = dataset(tokenizer, chats, 96);
  SftConfig config;
  config.epochs = 2;
  config.batch_size = 3;
  config.grad_accumulation = 2;
  config.pack = true;
  config.optimizer.schedule = {.kind = optim::LrSchedule::Kind::cosine,
                     .peak_lr = 3e-3f,
                     .min_lr = 3e-4f,
                     .warmup_steps = 1,
                     .total_steps = 0,
                     .decay_steps = 0};
  config.log_every = 0;
  config.seed = 4;

  SftTrainer straight(config, tiny_model(ModelFamily::gpt2, tokenizer.vocab_size()), data);
  const int64_t total = straight.total_steps();
  REQUIRE(total >= 3);
  REQUIRE(total == 2 * straight.steps_per_epoch());
  std::vector<float> straight_losses;
  for (int64_t s = 0; s < total; ++s) straight_losses.push_back(straight.train_step().loss);
  REQUIRE(straight_losses.back() < straight_losses.front());

  TempDir dir;
  SftTrainer first(config, tiny_model(ModelFamily::gpt2, tokenizer.vocab_size()), data);
  for (int64_t s = 0; s < 2; ++s) REQUIRE(first.train_step().loss == straight_losses[s]);
  first.save_checkpoint(dir / "ckpt");
  SftTrainer resumed(config, tiny_model(ModelFamily::gpt2, tokenizer.vocab_size(), 96), data);
  resumed.resume(dir / "ckpt");
  REQUIRE(resumed.step() == 2);
  for (int64_t s = 2; s < total; ++s) REQUIRE(resumed.train_step().loss == straight_losses[s]);
  REQUIRE(all_weights(resumed.model()) == all_weights(straight.model()));

  SftConfig other = config;
  other.batch_size = 2;
  SftTrainer mismatched(other, tiny_model(ModelFamily::gpt2, tokenizer.vocab_size()), data);
  REQUIRE_THROWS_WITH(mismatched.resume(dir / "ckpt"), Catch::Contains("batch 3 x 2"));
}

TEST_CASE("SftTrainer::train writes metrics, eval records and a final checkpoint", "[sft]") {
  Tokenizer tokenizer = byte_chat_tokenizer();
  std::vector<std::vector<ChatMessage>> chats;
  for (int i = 0; i < 3; ++i)
    for (const auto& chat : short_chats()) chats.push_back(chat);
  auto [train, held_out] = dataset(tokenizer, chats, 96).split(0.25, 1);
  TempDir dir;
  SftConfig config;
  config.epochs = 2;
  config.batch_size = 3;
  config.log_every = 0;
  config.optimizer.schedule.peak_lr = 3e-3f;
  config.optimizer.schedule.warmup_steps = 1;
  config.output_dir = (dir / "run").string();
  SftTrainer trainer(config, tiny_model(ModelFamily::llama, tokenizer.vocab_size()), train,
                     held_out, tokenizer);
  SftSummary summary = trainer.train();
  REQUIRE(summary.steps == trainer.total_steps());
  REQUIRE(summary.final_eval.tokens == summary.initial_eval.tokens);
  REQUIRE(summary.final_eval.loss < summary.initial_eval.loss);

  std::ifstream metrics(dir / "run" / "metrics.jsonl");
  std::string line;
  int train_records = 0, eval_records = 0;
  while (std::getline(metrics, line)) {
    if (line.find("\"eval_loss\"") != std::string::npos) ++eval_records;
    if (line.find("\"accuracy\"") != std::string::npos) ++train_records;
  }
  REQUIRE(train_records == trainer.total_steps());
  REQUIRE(eval_records == 2);
  Transformer reloaded = Transformer::from_pretrained(dir / "run" / "model");
  REQUIRE(all_weights(reloaded) == all_weights(trainer.model()));
  REQUIRE(Tokenizer::load((dir / "run" / "model").string()).vocab_size() == tokenizer.vocab_size());
}

namespace {

// A pretraining shard of `count` byte tokens for replay tests.
std::filesystem::path replay_shard(const std::filesystem::path& dir, int64_t count) {
  std::vector<TokenId> tokens;
  for (int64_t i = 0; i < count; ++i) tokens.push_back(static_cast<TokenId>(32 + (i * 7) % 90));
  const auto path = dir / "replay.bin";
  write_token_shard(path, tokens, 2);
  return path;
}

SftConfig replay_test_config(const std::filesystem::path& shard) {
  SftConfig config;
  config.epochs = 2;
  config.batch_size = 2;
  config.log_every = 0;
  config.seed = 3;
  config.optimizer.schedule.peak_lr = 3e-3f;
  config.optimizer.schedule.warmup_steps = 1;
  config.replay_shards = {shard.string()};
  config.replay_rows = 2;
  config.replay_seq_len = 16;
  return config;
}

}  // namespace

TEST_CASE("replay adds replay_coef times the mean LM loss of the next pretraining windows",
          "[sft]") {
  Tokenizer tokenizer = byte_chat_tokenizer();
  SftDataset data = dataset(tokenizer, short_chats(), 96);
  TempDir dir;
  const auto shard = replay_shard(dir.path(), 400);
  SftConfig config = replay_test_config(shard);

  // The replay loss of step 1 is the model's mean cross entropy on the windows that a loader with
  // seed + 1 gives first, computed before the update.
  Transformer reference = tiny_model(ModelFamily::gpt2, tokenizer.vocab_size());
  TokenLoader loader({shard.string()}, {.batch_size = 2, .seq_len = 16, .seed = config.seed + 1});
  TokenBatch first = loader.next();
  Tensor logits = reference.forward(first.inputs);
  const float expected =
      cross_entropy(logits.reshape({-1, logits.shape().back()}), first.targets.reshape({-1}), -100,
                    Reduction::mean)
          .item();
  SftTrainer trainer(config, tiny_model(ModelFamily::gpt2, tokenizer.vocab_size()), data);
  SftStepReport step = trainer.train_step();
  REQUIRE(step.replay_loss.defined());
  REQUIRE(step.replay_loss.item() == Approx(expected).epsilon(1e-6));

  // replay_coef 0 leaves the SFT update as it is without replay; any other weight changes it.
  SftConfig plain = config;
  plain.replay_rows = 0;
  plain.replay_shards.clear();
  SftConfig zero = config;
  zero.replay_coef = 0.f;
  SftTrainer without(plain, tiny_model(ModelFamily::gpt2, tokenizer.vocab_size()), data);
  SftTrainer weightless(zero, tiny_model(ModelFamily::gpt2, tokenizer.vocab_size()), data);
  const SftStepReport a = without.train_step(), b = weightless.train_step();
  REQUIRE_FALSE(a.replay_loss.defined());
  REQUIRE(a.loss == b.loss);
  REQUIRE(all_weights(without.model()) == all_weights(weightless.model()));
  REQUIRE(all_weights(trainer.model()) != all_weights(without.model()));
}

TEST_CASE("replay keeps pretraining loss down while SFT trains hard", "[sft]") {
  Tokenizer tokenizer = byte_chat_tokenizer();
  std::vector<std::vector<ChatMessage>> chats;
  for (int i = 0; i < 4; ++i)
    for (auto chat : short_chats()) chats.push_back(chat);
  SftDataset data = dataset(tokenizer, chats, 96);
  TempDir dir;
  const auto shard = replay_shard(dir.path(), 2000);
  // The LM loss on the shard's windows after SFT, with and without replay.
  auto lm_loss_after = [&](int64_t replay_rows) {
    SftConfig config = replay_test_config(shard);
    config.epochs = 6;
    config.optimizer.schedule.peak_lr = 1e-2f;
    config.replay_rows = replay_rows;
    if (replay_rows == 0) config.replay_shards.clear();
    SftTrainer trainer(config, tiny_model(ModelFamily::gpt2, tokenizer.vocab_size()), data);
    for (int64_t s = 0; s < trainer.total_steps(); ++s) trainer.train_step();
    TokenLoader loader({shard.string()}, {.batch_size = 8, .seq_len = 16, .seed = 99});
    NoGradGuard no_grad;
    double total = 0;
    for (int i = 0; i < 4; ++i) {
      TokenBatch batch = loader.next();
      Tensor logits = trainer.model().forward(batch.inputs);
      total += cross_entropy(logits.reshape({-1, logits.shape().back()}),
                             batch.targets.reshape({-1}), -100, Reduction::mean)
                   .item();
    }
    return total / 4;
  };
  const double without = lm_loss_after(0), with = lm_loss_after(4);
  INFO("LM loss on the replay text after SFT: without replay " << without << ", with " << with);
  REQUIRE(with < 0.8 * without);
}

TEST_CASE("an SFT run with replay resumes exactly, and mismatched replay is an error", "[sft]") {
  Tokenizer tokenizer = byte_chat_tokenizer();
  std::vector<std::vector<ChatMessage>> chats;
  for (int i = 0; i < 3; ++i)
    for (auto chat : short_chats()) {
      chat.back().content += " #" + std::to_string(i);
      chats.push_back(chat);
    }
  SftDataset data = dataset(tokenizer, chats, 96);
  TempDir dir;
  // Few windows: the replay loader wraps into its second epoch during the run.
  const auto shard = replay_shard(dir.path(), 100);
  SftConfig config = replay_test_config(shard);
  SftTrainer straight(config, tiny_model(ModelFamily::gpt2, tokenizer.vocab_size()), data);
  const int64_t total = straight.total_steps();
  REQUIRE(total >= 6);
  std::vector<float> replay_losses;
  for (int64_t s = 0; s < total; ++s) replay_losses.push_back(straight.train_step().replay_loss.item());

  SftTrainer first(config, tiny_model(ModelFamily::gpt2, tokenizer.vocab_size()), data);
  for (int64_t s = 0; s < 4; ++s) first.train_step();
  first.save_checkpoint(dir / "ckpt");
  SftTrainer resumed(config, tiny_model(ModelFamily::gpt2, tokenizer.vocab_size()), data);
  resumed.resume(dir / "ckpt");
  for (int64_t s = 4; s < total; ++s)
    REQUIRE(resumed.train_step().replay_loss.item() == replay_losses[static_cast<size_t>(s)]);
  REQUIRE(all_weights(resumed.model()) == all_weights(straight.model()));

  // A checkpoint without replay state cannot continue a replaying run.
  SftConfig plain = config;
  plain.replay_rows = 0;
  plain.replay_shards.clear();
  SftTrainer no_replay(plain, tiny_model(ModelFamily::gpt2, tokenizer.vocab_size()), data);
  no_replay.train_step();
  no_replay.save_checkpoint(dir / "plain");
  SftTrainer wants_replay(config, tiny_model(ModelFamily::gpt2, tokenizer.vocab_size()), data);
  REQUIRE_THROWS_WITH(wants_replay.resume(dir / "plain"),
                      Catch::Contains("was trained without replay"));

  // Bad settings name what is wrong.
  SftConfig no_shards = config;
  no_shards.replay_shards.clear();
  REQUIRE_THROWS_WITH(
      SftTrainer(no_shards, tiny_model(ModelFamily::gpt2, tokenizer.vocab_size()), data),
      Catch::Contains("needs replay shards"));
  SftConfig too_long = config;
  too_long.replay_seq_len = 97;
  REQUIRE_THROWS_WITH(
      SftTrainer(too_long, tiny_model(ModelFamily::gpt2, tokenizer.vocab_size()), data),
      Catch::Contains("exceeds the model's max_seq_len 96"));
}
