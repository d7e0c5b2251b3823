// Reward model: last-real-token pooling under padding, the preference loss against hand-computed
// values and finite differences, preference data parsing, learning a separable preference, and
// save/load.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "core/ops/ops.h"
#include "core/text/special_tokens.h"
#include "core/world/world.h"
#include "rl/data/world_data.h"
#include "rl/heads/reward.h"
#include "rl/data/reward_data.h"
#include "rl/trainers/reward_trainer.h"
#include "support/gradcheck.h"
#include "support/temp_dir.h"

using namespace tiller;
using namespace tiller::rl;
using tiller::testing::TempDir;

namespace {

constexpr int64_t kVocab = 40;
constexpr int32_t kMarker = 1;  // the token chosen responses contain in the learning test

ModelConfig tiny_config(ModelFamily family) {
  return family == ModelFamily::gpt2 ? ModelConfig::gpt2(kVocab, 2, 2, 32, 64)
                                     : ModelConfig::llama(kVocab, 2, 4, 2, 32, 64, 64);
}

std::vector<int32_t> random_tokens(Generator& gen, int64_t n, int32_t low) {
  std::vector<float> u = Tensor::rand({n}, gen).to_vector();
  std::vector<int32_t> out;
  for (float x : u)
    out.push_back(low +
                  std::min<int32_t>(kVocab - 1 - low,
                                    static_cast<int32_t>(x * static_cast<float>(kVocab - low))));
  return out;
}

// Chosen responses carry kMarker at a random place; rejected ones never contain it.
std::vector<PreferenceExample> marker_pairs(int64_t count, uint64_t seed) {
  Generator gen(seed);
  std::vector<PreferenceExample> pairs;
  for (int64_t i = 0; i < count; ++i) {
    PreferenceExample e;
    e.prompt = random_tokens(gen, 3 + i % 4, 2);
    e.rejected = random_tokens(gen, 4 + i % 3, 2);
    e.chosen = random_tokens(gen, 4 + (i + 1) % 3, 2);
    size_t at = static_cast<size_t>(Tensor::rand({1}, gen).item() * e.chosen.size());
    e.chosen[std::min(at, e.chosen.size() - 1)] = kMarker;
    pairs.push_back(e);
  }
  return pairs;
}

// The learning tests' recipe: 3 epochs of 16 pairs, cosine from 3e-3 to 3e-4, quiet.
RewardConfig marker_learning_config() {
  RewardConfig config;
  config.epochs = 3;
  config.batch_size = 16;
  config.optimizer.schedule = {.kind = optim::LrSchedule::Kind::cosine,
                               .peak_lr = 3e-3f,
                               .min_lr = 3e-4f,
                               .warmup_steps = 5};
  config.log_every = 0;
  return config;
}

Tokenizer chat_tokenizer() {
  Tokenizer tokenizer;  // the 256 byte tokens
  for (std::string_view token : special_tokens::kAll) tokenizer.add_special_token(token);
  return tokenizer;
}

std::vector<int32_t> concat_ids(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void write_lines(const std::filesystem::path& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const std::string& line : lines) out << line << "\n";
}

}  // namespace

TEST_CASE("reward is read at the last real token: left, right and no padding agree", "[reward]") {
  for (ModelFamily family : {ModelFamily::gpt2, ModelFamily::llama}) {
    INFO(family_name(family));
    RewardModel model(Transformer(tiny_config(family), 3), 4);
    Generator gen(11);
    std::vector<std::vector<int32_t>> sequences = {
        random_tokens(gen, 9, 0), random_tokens(gen, 3, 0), random_tokens(gen, 6, 0)};
    std::vector<float> alone;
    for (const auto& s : sequences) {
      PaddedSequences one = pad_sequences({s});
      alone.push_back(model.forward(one.ids, one.attention_mask).item());
    }
    for (PaddingSide side : {PaddingSide::left, PaddingSide::right}) {
      INFO((side == PaddingSide::left ? "left" : "right"));
      // A pad id that is a real vocabulary token: only the mask may hide it.
      PaddedSequences batch = pad_sequences(sequences, side, /*pad_id=*/7);
      REQUIRE(batch.ids.shape() == Shape{3, 9});
      std::vector<float> rewards = model.forward(batch.ids, batch.attention_mask).to_vector();
      for (size_t i = 0; i < sequences.size(); ++i)
        REQUIRE(rewards[i] == Approx(alone[i]).margin(1e-5));
    }
    // The reward depends on the sequence: the three distinct inputs give distinct rewards.
    REQUIRE(alone[0] != Approx(alone[1]).margin(1e-6));
    REQUIRE(alone[1] != Approx(alone[2]).margin(1e-6));
  }
}

TEST_CASE("reward pooling rejects a row without real tokens and mismatched masks", "[reward]") {
  RewardModel model(Transformer(tiny_config(ModelFamily::gpt2), 1));
  Tensor ids = Tensor::from_ints({1, 2, 3, 4}, {2, 2});
  REQUIRE_THROWS_WITH(model.forward(ids, Tensor::from_ints({1, 1, 0, 0}, {2, 2})),
                      Catch::Contains("row 1 of the attention mask has no real token"));
  REQUIRE_THROWS_WITH(model.forward(ids, Tensor::from_ints({1, 1}, {1, 2})),
                      Catch::Contains("RewardModel::forward: attention_mask must be i32"));
}

TEST_CASE("reward head starts at N(0, 1/(C+1)) with a zero bias", "[reward]") {
  ModelConfig config = ModelConfig::gpt2(kVocab, 1, 4, 256, 16);
  RewardModel model(Transformer(config, 0), 9);
  std::vector<float> w = model.head_weight().to_vector();
  REQUIRE(model.head_weight().shape() == Shape{1, 256});
  double squares = 0;
  for (float x : w) squares += static_cast<double>(x) * x;
  const double expected_variance = 1.0 / 257.0;
  // 256 draws: the sample variance is within ~30% of the true one with overwhelming probability.
  REQUIRE(squares / 256.0 == Approx(expected_variance).epsilon(0.3));
  REQUIRE(model.head_bias().to_vector() == std::vector<float>{0.f});
  REQUIRE(model.parameters().back().name == "score.bias");
}

TEST_CASE("Bradley-Terry, margin and centering terms match hand-computed values", "[reward]") {
  Tensor chosen = Tensor::from_vector({1.0f, -0.5f, 2.0f}, {3});
  Tensor rejected = Tensor::from_vector({0.0f, 0.5f, 2.5f}, {3});
  // gaps 1, -1, -0.5: mean of log(1 + e^-gap) = (0.3132617 + 1.3132617 + 0.9740770) / 3.
  PreferenceLoss plain = preference_loss(chosen, rejected);
  REQUIRE(plain.bradley_terry.item() == Approx(0.8668668).epsilon(1e-6));
  REQUIRE(plain.total.item() == Approx(0.8668668).epsilon(1e-6));
  // (r_c + r_r)^2 = 1, 0, 20.25.
  REQUIRE(plain.centering.item() == Approx(7.0833333).epsilon(1e-6));

  // margins 0.5, 0, 1 turn the gaps into 0.5, -1, -1.5.
  Tensor margins = Tensor::from_vector({0.5f, 0.f, 1.f}, {3});
  PreferenceLoss with_margin = preference_loss(chosen, rejected, margins, 0.1f);
  REQUIRE(with_margin.bradley_terry.item() == Approx(1.1629173).epsilon(1e-6));
  REQUIRE(with_margin.total.item() == Approx(1.1629173 + 0.1 * 7.0833333).epsilon(1e-6));

  // Large gaps stay finite (logsigmoid, not log(sigmoid)).
  PreferenceLoss extreme =
      preference_loss(Tensor::from_vector({-200.f}, {1}), Tensor::from_vector({200.f}, {1}));
  REQUIRE(extreme.bradley_terry.item() == Approx(400.f));

  REQUIRE_THROWS_WITH(preference_loss(chosen, Tensor::from_vector({1.f}, {1})),
                      Catch::Contains("preference_loss: rejected rewards"));
  REQUIRE_THROWS_WITH(preference_loss(chosen, rejected, Tensor(), -1.f),
                      Catch::Contains("center_coefficient must be >= 0"));
}

TEST_CASE("preference loss gradients match finite differences", "[reward]") {
  Tensor margins = Tensor::from_vector({0.3f, 0.f, -0.2f, 1.f}, {4});
  REQUIRE_GRADCHECK(
      [&](const std::vector<Tensor>& x) {
        return preference_loss(x[0], x[1], margins, 0.05f).total;
      },
      {testing::random_input({4}, 1), testing::random_input({4}, 2)});

  // Through the reward head of a real model: the gradient reaching score.weight and score.bias.
  RewardModel model(Transformer(tiny_config(ModelFamily::gpt2), 5), 6);
  std::vector<PreferenceExample> pairs = marker_pairs(3, 21);
  pairs[1].margin = 0.5f;
  PreferenceBatch batch = make_preference_batch(pairs, {0, 1, 2}, 0);
  auto loss_of_head = [&](const std::vector<Tensor>&) {
    Tensor r = model.forward(batch.sequences.ids, batch.sequences.attention_mask);
    return preference_loss(slice(r, 0, 0, 3), slice(r, 0, 3, 6), batch.margins, 0.1f).total;
  };
  REQUIRE_GRADCHECK(loss_of_head, {model.head_weight(), model.head_bias()});
}

TEST_CASE("preference JSONL: text and chat forms, world pairs, errors with file:line", "[reward]") {
  Tokenizer tokenizer = chat_tokenizer();
  const int32_t end = tokenizer.token_id(special_tokens::kEndOfTurn);
  TempDir dir;

  SECTION("text form: special tokens in the text are the real tokens") {
    PreferenceExample e = parse_preference_record(
        tokenizer,
        R"({"prompt": "<|user|>\nHi<|end|>\n<|assistant|>\n", "chosen": "Yo.<|end|>",)"
        R"( "rejected": "Yo.", "margin": 0.75})",
        "x.jsonl:1");
    REQUIRE(e.prompt == render_generation_prompt(tokenizer, {{"user", "Hi"}}));
    REQUIRE(e.chosen == concat_ids(tokenizer.encode("Yo."), {end}));
    REQUIRE(e.rejected == tokenizer.encode("Yo."));
    REQUIRE(e.margin == 0.75f);
  }

  SECTION("chat form: rendered prompt, assistant content + <|end|>, typed markers stay text") {
    PreferenceExample e = parse_preference_record(
        tokenizer,
        R"({"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],)"
        R"( "chosen": "Yo.", "rejected": [{"role": "assistant", "content": "a<|end|>"}]})",
        "x.jsonl:1");
    REQUIRE(e.prompt ==
            render_generation_prompt(tokenizer, {{"system", "Be brief."}, {"user", "Hi"}}));
    REQUIRE(e.chosen == concat_ids(tokenizer.encode("Yo."), {end}));
    REQUIRE(e.rejected == concat_ids(tokenizer.encode("a<|end|>", false), {end}));
    REQUIRE(e.margin == 0.f);
  }

  SECTION("world pairs equal the text-form file the world writes") {
    world::WorldConfig config;
    config.num_entities = 40;
    config.num_sft_examples = 16;
    config.num_eval_prompts = 16;
    config.num_preference_pairs = 24;
    world::World w(config);
    std::vector<world::PreferencePair> pairs = w.all_preference_pairs();
    world::write_preferences_jsonl((dir / "prefs.jsonl").string(), pairs);
    std::vector<PreferenceExample> direct = preference_examples(tokenizer, pairs);
    std::vector<PreferenceExample> from_file =
        load_preferences_jsonl(tokenizer, (dir / "prefs.jsonl").string());
    REQUIRE(from_file.size() == pairs.size());
    for (size_t i = 0; i < pairs.size(); ++i) {
      REQUIRE(from_file[i].prompt == direct[i].prompt);
      REQUIRE(from_file[i].chosen == direct[i].chosen);
      REQUIRE(from_file[i].rejected == direct[i].rejected);
    }
    // The world's chosen answers end their turn.
    REQUIRE(direct[0].chosen.back() == end);
  }

  SECTION("malformed lines are reported with file and line") {
    const std::string path = (dir / "bad.jsonl").string();
    write_lines(path, {R"({"prompt": "a", "chosen": "b", "rejected": "c"})", "",
                       R"({"prompt": "a", "chosen": "b"})"});
    REQUIRE_THROWS_WITH(load_preferences_jsonl(tokenizer, path),
                        Catch::Contains(path + ":3: missing \"rejected\""));
    write_lines(path, {R"({"prompt": "a", "chosen": "b", "rejected": "c")"});
    REQUIRE_THROWS_WITH(load_preferences_jsonl(tokenizer, path),
                        Catch::Contains(path + ":1: not valid JSON"));
    write_lines(path, {R"({"prompt": "a", "chosen": 3, "rejected": "c"})"});
    REQUIRE_THROWS_WITH(load_preferences_jsonl(tokenizer, path),
                        Catch::Contains(path + ":1: \"chosen\" must be a string"));
    write_lines(path, {R"({"prompt": [{"role": "user"}], "chosen": "b", "rejected": "c"})"});
    REQUIRE_THROWS_WITH(load_preferences_jsonl(tokenizer, path),
                        Catch::Contains(path + ":1: prompt message 0 needs string"));
    write_lines(path, {""});
    REQUIRE_THROWS_WITH(load_preferences_jsonl(tokenizer, path),
                        Catch::Contains("holds no records"));
    REQUIRE_THROWS_WITH(load_preferences_jsonl(tokenizer, (dir / "missing.jsonl").string()),
                        Catch::Contains("cannot open"));
  }
}

TEST_CASE("preference batches keep the end of long sequences and count truncations", "[reward]") {
  std::vector<PreferenceExample> pairs = {{{1, 2, 3, 4}, {5, 6}, {7}, 0.f}};
  PreferenceBatch batch = make_preference_batch(pairs, {0}, /*max_length=*/4);
  // chosen 1 2 3 4 5 6 -> 3 4 5 6; rejected 1 2 3 4 7 -> 2 3 4 7 (both cut).
  REQUIRE(batch.sequences.ids.to_int_vector() == std::vector<int32_t>{3, 4, 5, 6, 2, 3, 4, 7});
  REQUIRE(batch.truncated == 2);
  REQUIRE(batch.pairs == 1);
  PreferenceBatch roomy = make_preference_batch(pairs, {0}, 0);
  REQUIRE(roomy.truncated == 0);
  REQUIRE(roomy.sequences.attention_mask.to_int_vector() ==
          std::vector<int32_t>{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0});
}

TEST_CASE("a reward model on a tiny backbone learns a separable preference", "[reward]") {
  TempDir dir;
  RewardModel model(Transformer(tiny_config(ModelFamily::gpt2), 12), 13);
  RewardConfig config = marker_learning_config();
  config.center_coefficient = 0.01f;
  config.output_dir = dir.path().string();
  RewardTrainer trainer(model, config, marker_pairs(128, 1), marker_pairs(128, 2));
  RewardTrainSummary summary = trainer.train();

  REQUIRE(summary.steps == 24);
  REQUIRE(summary.initial_heldout.pairs == 128);
  REQUIRE(summary.initial_heldout.accuracy < 0.8);
  REQUIRE(summary.final_heldout.accuracy >= 0.95);
  REQUIRE(summary.final_heldout.margin > 0.0);
  REQUIRE(summary.final_heldout.loss < summary.initial_heldout.loss);
  REQUIRE(summary.statistics.std > 0.f);
  REQUIRE(model.statistics().mean == summary.statistics.mean);

  // Metrics: train records with the TRL names and held-out records prefixed eval/.
  std::ifstream metrics(dir / "metrics.jsonl");
  std::string text((std::istreambuf_iterator<char>(metrics)), std::istreambuf_iterator<char>());
  REQUIRE(text.find("\"eval/accuracy\"") != std::string::npos);
  REQUIRE(text.find("\"statistics/std\"") != std::string::npos);

  // The saved model scores exactly as the trained one, normalised with the trained statistics.
  RewardModel loaded = RewardModel::load(summary.saved_model);
  std::vector<PreferenceExample> probe = marker_pairs(4, 3);
  std::vector<std::vector<int32_t>> prompts, responses;
  for (const auto& e : probe) {
    prompts.push_back(e.prompt);
    responses.push_back(e.chosen);
  }
  std::vector<float> raw = model.score(prompts, responses);
  REQUIRE(loaded.score(prompts, responses) == raw);
  std::vector<float> normalised = loaded.score(prompts, responses, /*normalise=*/true);
  for (size_t i = 0; i < raw.size(); ++i)
    REQUIRE(normalised[i] ==
            Approx((raw[i] - summary.statistics.mean) / summary.statistics.std).margin(1e-5));
}

TEST_CASE("reward model save/load round trip gives identical scores", "[reward]") {
  TempDir dir;
  for (ModelFamily family : {ModelFamily::gpt2, ModelFamily::llama}) {
    INFO(family_name(family));
    RewardModel model(Transformer(tiny_config(family), 31), 32);
    model.set_statistics({0.25f, 2.5f});
    model.save(dir / "rm");
    RewardModel loaded = RewardModel::load(dir / "rm");
    REQUIRE(loaded.statistics().mean == 0.25f);
    REQUIRE(loaded.statistics().std == 2.5f);
    REQUIRE(loaded.head_weight().to_vector() == model.head_weight().to_vector());

    std::vector<PreferenceExample> probe = marker_pairs(5, 8);
    std::vector<std::vector<int32_t>> prompts, responses;
    for (const auto& e : probe) {
      prompts.push_back(e.prompt);
      responses.push_back(e.rejected);
    }
    REQUIRE(loaded.score(prompts, responses, false, 2) ==
            model.score(prompts, responses, false, 2));
    std::vector<float> batched = model.score(prompts, responses, false, 5);
    std::vector<float> one_by_one = model.score(prompts, responses, false, 1);
    for (size_t i = 0; i < batched.size(); ++i)
      REQUIRE(batched[i] == Approx(one_by_one[i]).margin(1e-5));
  }

  // A language-model directory is not a reward model, and says how to start one from it.
  Transformer backbone(tiny_config(ModelFamily::gpt2), 1);
  backbone.save_pretrained(dir / "lm");
  REQUIRE_THROWS_WITH(RewardModel::load(dir / "lm"), Catch::Contains("RewardModel::from_backbone"));
  RewardModel fresh = RewardModel::from_backbone(dir / "lm", 2);
  REQUIRE(fresh.statistics().mean == 0.f);
  REQUIRE_THROWS_WITH(fresh.set_statistics({0.f, 0.f}), Catch::Contains("positive std"));
}

TEST_CASE("a reward run killed after k steps and resumed repeats the uninterrupted run exactly",
          "[reward]") {
  for (bool likelihood : {false, true}) {
  INFO("likelihood term " << likelihood);
  TempDir dir;
  RewardConfig config;
  config.epochs = 2;
  config.batch_size = 16;  // 48 pairs: 3 steps per epoch, 6 in all; the resume crosses an epoch
  config.optimizer.schedule = {.kind = optim::LrSchedule::Kind::cosine,
                               .peak_lr = 3e-3f,
                               .min_lr = 3e-4f,
                               .warmup_steps = 2};
  config.log_every = 0;
  config.seed = 5;
  const auto pairs = marker_pairs(48, 1);
  auto parameters_of = [](const RewardModel& model) {
    std::vector<std::vector<float>> values;
    for (const auto& p : model.parameters()) values.push_back(p.tensor.to_vector());
    return values;
  };

  const RewardHeadOptions head{.likelihood = likelihood, .likelihood_init = 0.5f};
  RewardModel straight_model(Transformer(tiny_config(ModelFamily::gpt2), 12), 13, head);
  RewardTrainer straight(straight_model, config, pairs);
  std::vector<float> straight_losses;
  for (int i = 0; i < 6; ++i) straight_losses.push_back(straight.train_step().loss);

  {
    RewardModel first_model(Transformer(tiny_config(ModelFamily::gpt2), 12), 13, head);
    RewardTrainer first(first_model, config, pairs);
    for (int i = 0; i < 4; ++i) REQUIRE(first.train_step().loss == straight_losses[i]);
    first.save_checkpoint(dir / "step_4");
  }  // the first process ends here
  // A different initialisation: everything must come from the checkpoint.
  RewardModel resumed_model(Transformer(tiny_config(ModelFamily::gpt2), 99), 98,
                            {.likelihood = likelihood, .likelihood_init = -2.f});
  RewardTrainer resumed(resumed_model, config, pairs);
  resumed.resume(dir / "step_4");
  REQUIRE(resumed.step() == 4);
  for (int i = 4; i < 6; ++i) REQUIRE(resumed.train_step().loss == straight_losses[i]);
  REQUIRE(parameters_of(resumed_model) == parameters_of(straight_model));

  RewardConfig other = config;
  other.batch_size = 8;
  RewardModel mismatched_model(Transformer(tiny_config(ModelFamily::gpt2), 12), 13, head);
  RewardTrainer mismatched(mismatched_model, other, pairs);
  REQUIRE_THROWS_WITH(mismatched.resume(dir / "step_4"), Catch::Contains("batch 16"));
}
}

namespace {

// The mean log-likelihood of each row's response tokens (columns >= first[n], up to length[n]),
// computed from the backbone's full logits on the host: the reference for the likelihood term.
std::vector<double> reference_mean_logprob(Transformer& backbone, const PaddedSequences& batch,
                                           const std::vector<int64_t>& first,
                                           const std::vector<int64_t>& length) {
  NoGradGuard no_grad;
  const int64_t N = batch.ids.size(0), T = batch.ids.size(1);
  Tensor logits = backbone.forward(batch.ids, {.key_padding_mask = batch.attention_mask});
  const std::vector<float> lp = log_softmax(logits).to_vector();
  const std::vector<int32_t> ids = batch.ids.to_int_vector();
  std::vector<double> means;
  for (int64_t n = 0; n < N; ++n) {
    double sum = 0;
    int64_t count = 0;
    for (int64_t t = std::max<int64_t>(first[n], 1); t < length[n]; ++t, ++count)
      sum += lp[static_cast<size_t>(((n * T) + t - 1) * kVocab + ids[n * T + t])];
    means.push_back(count > 0 ? sum / static_cast<double>(count) : 0.0);
  }
  return means;
}

}  // namespace

TEST_CASE("the likelihood term adds a times the response's mean token log-likelihood",
          "[reward]") {
  RewardModel plain(Transformer(tiny_config(ModelFamily::gpt2), 41), 42);
  RewardModel with(Transformer(tiny_config(ModelFamily::gpt2), 41), 42,
                   {.likelihood = true, .likelihood_init = 0.7f});
  REQUIRE(with.has_likelihood_term());
  REQUIRE_FALSE(plain.has_likelihood_term());
  REQUIRE(with.likelihood_weight().to_vector() == std::vector<float>{0.7f});
  REQUIRE(with.parameters().back().name == "score.likelihood_weight");
  REQUIRE_FALSE(with.parameters().back().decay);

  // Three rows: prompt 3 + response 4, prompt 5 + response 2, and a response alone (its first
  // token, in column 0, has nothing before it and is not counted).
  Generator gen(5);
  std::vector<std::vector<int32_t>> prompts = {random_tokens(gen, 3, 0), random_tokens(gen, 5, 0),
                                               {}};
  std::vector<std::vector<int32_t>> responses = {
      random_tokens(gen, 4, 0), random_tokens(gen, 2, 0), random_tokens(gen, 3, 0)};
  std::vector<std::vector<int32_t>> rows;
  std::vector<int64_t> response_tokens, first, length;
  for (size_t i = 0; i < prompts.size(); ++i) {
    rows.push_back(concat_ids(prompts[i], responses[i]));
    response_tokens.push_back(static_cast<int64_t>(responses[i].size()));
    first.push_back(static_cast<int64_t>(prompts[i].size()));
    length.push_back(static_cast<int64_t>(rows.back().size()));
  }
  PaddedSequences batch = pad_sequences(rows, PaddingSide::right, /*pad_id=*/9);
  Tensor response_mask = right_padded_response_mask(rows, response_tokens, batch.ids.size(1));
  REQUIRE(response_mask.to_int_vector() ==
          std::vector<int32_t>{0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0});

  const std::vector<double> expected =
      reference_mean_logprob(with.backbone(), batch, first, length);
  const std::vector<float> head_only =
      plain.forward(batch.ids, batch.attention_mask, false, response_mask).to_vector();
  const std::vector<float> rewards =
      with.forward(batch.ids, batch.attention_mask, false, response_mask).to_vector();
  for (size_t n = 0; n < rows.size(); ++n) {
    INFO("row " << n);
    REQUIRE(expected[n] < -0.5);  // a random model: the term is far from 0 and matters
    REQUIRE(rewards[n] == Approx(head_only[n] + 0.7 * expected[n]).margin(1e-4));
  }
  // Left padding (pads first, a real vocabulary token as the pad id) gives the same rewards: the
  // third row's first response token is still its first real token and still not counted.
  {
    const int64_t T = batch.ids.size(1);
    std::vector<int32_t> ids(static_cast<size_t>(3 * T), 9), mask(ids.size(), 0),
        response(ids.size(), 0);
    for (size_t n = 0; n < rows.size(); ++n) {
      const int64_t pad = T - length[n];
      for (int64_t t = pad; t < T; ++t) {
        const size_t i = n * static_cast<size_t>(T) + static_cast<size_t>(t);
        ids[i] = rows[n][static_cast<size_t>(t - pad)];
        mask[i] = 1;
        response[i] = t - pad >= first[n] ? 1 : 0;
      }
    }
    const std::vector<float> left =
        with.forward(Tensor::from_ints(ids, {3, T}), Tensor::from_ints(mask, {3, T}), false,
                     Tensor::from_ints(response, {3, T}))
            .to_vector();
    for (size_t n = 0; n < rows.size(); ++n) REQUIRE(left[n] == Approx(rewards[n]).margin(1e-4));
  }
  // score() splits prompt and response itself and agrees, batched or one by one.
  const std::vector<float> scored = with.score(prompts, responses, false, 3);
  const std::vector<float> single = with.score(prompts, responses, false, 1);
  for (size_t n = 0; n < rows.size(); ++n) {
    REQUIRE(scored[n] == Approx(rewards[n]).margin(1e-5));
    REQUIRE(single[n] == Approx(rewards[n]).margin(1e-5));
  }

  // Without a response mask, or with one that marks padding, the term cannot be computed.
  REQUIRE_THROWS_WITH(with.forward(batch.ids, batch.attention_mask),
                      Catch::Contains("needs a response_mask"));
  std::vector<int32_t> bad = response_mask.to_int_vector();
  bad[2 * 7 + 5] = 1;  // row 2 has 3 tokens: column 5 is padding
  REQUIRE_THROWS_WITH(with.forward(batch.ids, batch.attention_mask, false,
                                   Tensor::from_ints(bad, {3, 7})),
                      Catch::Contains("column 5 of row 2, a padding position"));
  REQUIRE_THROWS_WITH(RewardModel(Transformer(tiny_config(ModelFamily::gpt2), 1), 0,
                                  {.likelihood = true, .likelihood_init = NAN}),
                      Catch::Contains("must be finite"));
}

TEST_CASE("likelihood-term gradients match finite differences", "[reward]") {
  RewardModel model(Transformer(tiny_config(ModelFamily::gpt2), 51), 52,
                    {.likelihood = true, .likelihood_init = 0.8f});
  std::vector<PreferenceExample> pairs = marker_pairs(3, 23);
  PreferenceBatch batch = make_preference_batch(pairs, {0, 1, 2}, 0);
  auto loss = [&](const std::vector<Tensor>&) {
    Tensor r = model.forward(batch.sequences.ids, batch.sequences.attention_mask, false,
                             batch.response_mask);
    return preference_loss(slice(r, 0, 0, 3), slice(r, 0, 3, 6), batch.margins, 0.1f).total;
  };
  // The weight a, the tied embedding / LM head the log-probabilities come from, and a final-norm
  // gain every gathered row passes through.
  REQUIRE_GRADCHECK(loss, {model.likelihood_weight(), model.backbone().parameter("wte.weight"),
                           model.backbone().parameter("ln_f.weight")});
}

TEST_CASE("a reward model with the likelihood term saves, loads and learns", "[reward]") {
  TempDir dir;
  RewardModel model(Transformer(tiny_config(ModelFamily::gpt2), 61), 62,
                    {.likelihood = true, .likelihood_init = 1.5f});
  model.set_statistics({0.5f, 3.f});
  model.save(dir / "rm");
  RewardModel loaded = RewardModel::load(dir / "rm");
  REQUIRE(loaded.has_likelihood_term());
  REQUIRE(loaded.likelihood_weight().to_vector() == std::vector<float>{1.5f});
  std::vector<PreferenceExample> probe = marker_pairs(5, 9);
  std::vector<std::vector<int32_t>> prompts, responses;
  for (const auto& e : probe) {
    prompts.push_back(e.prompt);
    responses.push_back(e.chosen);
  }
  REQUIRE(loaded.score(prompts, responses, true, 2) == model.score(prompts, responses, true, 2));

  // config.json and the tensors must agree on the term.
  {
    std::ifstream in(dir / "rm" / "config.json");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string key = "\"likelihood\": true";
    REQUIRE(text.find(key) != std::string::npos);
    text.replace(text.find(key), key.size(), "\"likelihood\": false");
    std::ofstream(dir / "rm" / "config.json") << text;
  }
  REQUIRE_THROWS_WITH(RewardModel::load(dir / "rm"),
                      Catch::Contains("likelihood term is off but model.safetensors holds"));

  // Trained, the term's weight moves and the marker preference is learned.
  RewardModel learner(Transformer(tiny_config(ModelFamily::gpt2), 12), 13,
                      {.likelihood = true});
  RewardTrainer trainer(learner, marker_learning_config(), marker_pairs(128, 1),
                        marker_pairs(128, 2));
  RewardTrainSummary summary = trainer.train();
  REQUIRE(summary.final_heldout.accuracy >= 0.95);
  REQUIRE(learner.likelihood_weight().item() != 1.f);
}
