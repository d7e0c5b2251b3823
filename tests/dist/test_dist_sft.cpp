// Data-parallel SFT equals the 1-process run: the same chats, global batch and seed on the world's
// ranks and in one process (computed here). Rows of different lengths land on different ranks, so
// this also checks the global token normaliser (a per-rank mean averaged over ranks would weight
// a short answer's tokens more than a long one's and fail here). An odd last micro-batch leaves a
// rank without rows in some steps: its zero gradient must still take part.
// With replay of pretraining windows, each rank's share of the windows is its loader slice and the
// ranks' mean replay loss is the one process's.
// Tolerances as in test_data_parallel.cpp (other summation order, amplified by AdamW in weights).
#include <catch2/catch.hpp>

#include "core/text/special_tokens.h"
#include "dist/dist_support.h"
#include "core/data/shards.h"
#include "rl/trainers/sft.h"
#include "support/temp_dir.h"

using namespace tiller;
using namespace tiller::rl;
using namespace tiller::testing;

namespace {

Tokenizer byte_chat_tokenizer() {
  Tokenizer tokenizer;
  for (std::string_view token : special_tokens::kAll) tokenizer.add_special_token(token);
  return tokenizer;
}

SftDataset chats(const Tokenizer& tokenizer) {
  std::vector<std::vector<ChatMessage>> conversations;
  std::vector<std::string> sources;
  const std::vector<std::string> answers = {"Yes.", "It is called Zorvik, I think.", "No",
                                            "A long thing, said slowly and with care.", "Ok"};
  for (int i = 0; i < 7; ++i) {  // 7 rows: the last step of an epoch has an odd number
    conversations.push_back({{"user", "Question " + std::to_string(i) + "?"},
                             {"assistant", answers[static_cast<size_t>(i) % answers.size()]}});
    sources.push_back("chat " + std::to_string(i));
  }
  return SftDataset::from_conversations(conversations, sources, tokenizer, {.max_length = 64});
}

struct SftRun {
  std::vector<float> losses, accuracies;
  std::vector<std::vector<float>> weights;
};

SftRun train(ModelFamily family, int zero, std::shared_ptr<dist::Communicator> comm,
             bool replay = false) {
  const Tokenizer tokenizer = byte_chat_tokenizer();
  ModelConfig model = family == ModelFamily::gpt2
                          ? ModelConfig::gpt2(tokenizer.vocab_size(), 2, 2, 32, 64)
                          : ModelConfig::llama(tokenizer.vocab_size(), 2, 4, 2, 32, 64, 64);
  SftConfig config;
  config.epochs = 2;
  config.batch_size = 2;  // global: one row per rank on 2 ranks
  config.grad_accumulation = 2;
  config.optimizer.schedule.peak_lr = 3e-3f;
  config.optimizer.schedule.warmup_steps = 1;
  config.optimizer.zero_stage = zero;
  config.log_every = 0;
  config.seed = 3;
  config.communicator = std::move(comm);
  TempDir dir;  // every process writes the same shard into a folder of its own
  if (replay) {
    std::vector<TokenId> tokens;
    for (int i = 0; i < 300; ++i) tokens.push_back(static_cast<TokenId>(40 + (i * 11) % 80));
    write_token_shard(dir / "replay.bin", tokens, 2);
    config.replay_shards = {(dir / "replay.bin").string()};
    config.replay_rows = 2;  // global: one window per rank on 2 ranks
    config.replay_seq_len = 16;
    config.replay_coef = 0.5f;
  }
  SftTrainer trainer(config, Transformer(model, 7), chats(tokenizer));
  SftRun run;
  while (trainer.step() < trainer.total_steps()) {
    SftStepReport report = trainer.train_step();
    run.losses.push_back(report.loss);
    run.accuracies.push_back(report.accuracy);
  }
  run.weights = weights_of(trainer.model());
  return run;
}

}  // namespace

TEST_CASE("N-rank SFT equals the 1-process run (token-weighted over all ranks)", "[dist]") {
  for (ModelFamily family : {ModelFamily::gpt2, ModelFamily::llama}) {
    for (int zero : {0, 1}) {
      DYNAMIC_SECTION(family_name(family) << " zero " << zero) {
        SftRun one = train(family, zero, dist::single_process());
        SftRun ranks = train(family, zero, world());
        REQUIRE(ranks.losses.size() == one.losses.size());
        REQUIRE(ranks.losses.size() == 4);  // ceil(7 / 4) steps x 2 epochs
        double loss_error = 0.0;
        for (size_t i = 0; i < one.losses.size(); ++i) {
          loss_error =
              std::max(loss_error, std::fabs(static_cast<double>(ranks.losses[i]) - one.losses[i]) /
                                       one.losses[i]);
          REQUIRE(std::fabs(ranks.accuracies[i] - one.accuracies[i]) <= 1e-6);
        }
        const double weight_error = max_relative_difference(ranks.weights, one.weights);
        INFO("relative loss difference " << loss_error << ", weights " << weight_error);
        REQUIRE(loss_error <= 1e-6);
        REQUIRE(weight_error <= 1e-3);
        REQUIRE(ranks.losses.back() < ranks.losses.front());
      }
    }
  }
}

TEST_CASE("N-rank SFT with replay equals the 1-process run", "[dist]") {
  SftRun one = train(ModelFamily::gpt2, 0, dist::single_process(), /*replay=*/true);
  SftRun ranks = train(ModelFamily::gpt2, 0, world(), /*replay=*/true);
  SftRun plain = train(ModelFamily::gpt2, 0, dist::single_process());
  REQUIRE(ranks.losses.size() == one.losses.size());
  for (size_t i = 0; i < one.losses.size(); ++i)
    REQUIRE(std::fabs(ranks.losses[i] - one.losses[i]) <= 1e-6 * one.losses[i]);
  const double weight_error = max_relative_difference(ranks.weights, one.weights);
  INFO("weights differ by " << weight_error << " (relative)");
  REQUIRE(weight_error <= 1e-3);
  // The replay term moved the weights: without it they end elsewhere.
  REQUIRE(max_relative_difference(plain.weights, one.weights) > 1e-2);
}
