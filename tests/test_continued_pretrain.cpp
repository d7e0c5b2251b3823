// Continued pretraining (rl/trainers/pretrain.h init_from and replay, rl/data/text_corpus.h):
// starting from a Hugging Face checkpoint equals loading it by hand and stepping, contradicting
// architectures are refused with the fields named, replay mixes its rows in and resumes exactly,
// and users' text files become documents.
#include <catch2/catch.hpp>

#include <fstream>

#include "core/data/loader.h"
#include "core/data/shards.h"
#include "core/io/atomic_file.h"
#include "kernels/random.h"
#include "rl/data/text_corpus.h"
#include "rl/kit/optimizer.h"
#include "rl/trainers/pretrain.h"
#include "support/temp_dir.h"

using namespace tiller;
using namespace tiller::rl;
using tiller::testing::TempDir;

namespace {

const std::filesystem::path kHfGpt2 = std::filesystem::path(TILLER_TEST_FIXTURES) / "hf_gpt2_tiny";

// A shard of `count` tokens drawn uniformly from [first, last].
std::string random_shard(const TempDir& dir, const std::string& name, int64_t count, TokenId first,
                         TokenId last, uint64_t seed) {
  random::Stream stream(seed);
  std::vector<TokenId> ids(count);
  for (auto& id : ids) id = first + static_cast<TokenId>(stream.below(last - first + 1));
  write_token_shard(dir / name, ids, shard_token_width(last + 1));
  return (dir / name).string();
}

PretrainConfig continued_config() {
  PretrainConfig config;
  config.model = ModelConfig::from_hf_json(read_file_bytes(kHfGpt2 / "config.json"));
  config.model.dropout = 0.f;  // the fixture's resid_pdrop 0.1 would draw masks
  config.init_from = kHfGpt2.string();
  config.batch_size = 4;
  config.seq_len = 16;
  config.steps = 4;
  config.optimizer.schedule = {.kind = optim::LrSchedule::Kind::constant, .peak_lr = 1e-2f};
  config.log_every = 0;
  config.seed = 5;
  return config;
}

}  // namespace

TEST_CASE("init_from a Hugging Face checkpoint: two steps equal a direct load and two steps",
          "[pretrain][continued]") {
  TempDir dir;
  auto shard = random_shard(dir, "train.bin", 4000, 0, 319, 1);
  PretrainConfig config = continued_config();
  Pretrainer trainer(config, {shard}, {});
  float first = trainer.train_step().loss, second = trainer.train_step().loss;

  Transformer direct = Transformer::from_pretrained(kHfGpt2);
  auto optimizer = make_optimizer(direct.parameters(), config.optimizer, config.seed);
  auto schedule = resolve_schedule(config.optimizer.schedule, config.steps, "test", true);
  TokenLoader loader({shard}, {.batch_size = 4, .seq_len = 16, .seed = config.seed});
  std::vector<float> expected;
  for (int64_t step = 0; step < 2; ++step) {
    optimizer->zero_grad();
    TokenBatch batch = loader.next();
    Tensor loss = direct.loss(batch.inputs, batch.targets);
    loss.backward();
    expected.push_back(loss.item());
    apply_update(*optimizer, direct.parameters(), config.optimizer, schedule, step, loss.item(),
                 "test");
  }
  REQUIRE(first == expected[0]);
  REQUIRE(second == expected[1]);
  REQUIRE(second < first);  // the step moved the weights

  config.init_from.clear();  // the same run from a random init starts elsewhere
  Pretrainer scratch(config, {shard}, {});
  REQUIRE(scratch.train_step().loss != first);
}

TEST_CASE("init_from refuses a checkpoint of another architecture, naming the fields",
          "[pretrain][continued]") {
  TempDir dir;
  auto shard = random_shard(dir, "train.bin", 1000, 0, 319, 1);
  PretrainConfig config = continued_config();
  config.model.n_layer = 3;
  config.model.n_embd = 64;
  REQUIRE_THROWS_WITH(Pretrainer(config, {shard}, {}),
                      Catch::Contains("n_layer 2 vs 3") && Catch::Contains("n_embd 32 vs 64"));
}

TEST_CASE("replay mixes its rows into every batch and resumes exactly", "[pretrain][continued]") {
  TempDir dir;
  auto domain = random_shard(dir, "domain.bin", 3000, 0, 159, 1);
  auto original = random_shard(dir, "original.bin", 3000, 160, 319, 2);
  PretrainConfig config = continued_config();
  config.replay_shards = {original};
  config.replay_fraction = 0.25;
  config.steps = 4;
  REQUIRE(config.replay_rows() == 1);

  Pretrainer plain(continued_config(), {domain}, {});
  Pretrainer mixed(config, {domain}, {});
  float plain_loss = plain.train_step().loss, mixed_loss = mixed.train_step().loss;
  REQUIRE(plain_loss != mixed_loss);  // one row in four came from the other half of the vocab
  mixed.train_step();
  mixed.save_checkpoint(dir / "ckpt");
  std::vector<float> continued = {mixed.train_step().loss, mixed.train_step().loss};

  Pretrainer resumed(config, {domain}, {});
  resumed.resume(dir / "ckpt");
  REQUIRE(resumed.train_step().loss == continued[0]);
  REQUIRE(resumed.train_step().loss == continued[1]);

  config.replay_fraction = 0.1;  // 0.4 rows of 4: nothing would be replayed
  REQUIRE_THROWS_WITH(Pretrainer(config, {domain}, {}), Catch::Contains("0 replay rows"));
  config.replay_fraction = 0.25;
  config.replay_shards.clear();
  REQUIRE_THROWS_WITH(Pretrainer(config, {domain}, {}), Catch::Contains("needs replay shards"));
}

TEST_CASE("text files and {\"text\"} JSONL become documents", "[pretrain][continued]") {
  TempDir dir;
  std::ofstream(dir / "a.txt") << "First paragraph,\nstill first.\n\n\nSecond one.\n";
  std::ofstream(dir / "b.txt") << "doc one<|endoftext|>doc two<|endoftext|>  \n";
  std::ofstream(dir / "c.jsonl") << "{\"text\": \"json doc\"}\n\n{\"text\": \"another\"}\n";
  auto documents = read_text_documents(
      {(dir / "a.txt").string(), (dir / "b.txt").string(), (dir / "c.jsonl").string()});
  REQUIRE(documents == std::vector<std::string>{"First paragraph,\nstill first.", "Second one.",
                                                "doc one", "doc two", "json doc", "another"});
  std::ofstream(dir / "bad.jsonl") << "{\"text\": \"ok\"}\n{\"txt\": \"typo\"}\n";
  REQUIRE_THROWS_WITH(read_text_documents({(dir / "bad.jsonl").string()}),
                      Catch::Contains("bad.jsonl:2"));
  std::ofstream(dir / "empty.txt") << "\n  \n";
  REQUIRE_THROWS_WITH(read_text_documents({(dir / "empty.txt").string()}),
                      Catch::Contains("holds no document"));
}
