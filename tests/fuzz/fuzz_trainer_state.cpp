// Fuzz harness: trainer-state loading. A tiny pretrainer writes one valid checkpoint at start-up;
// each input then replaces its trainer_state.json (the bytes before the first NUL) and, when the
// input holds a NUL, its trainer_state.safetensors (the bytes after it), and Pretrainer::resume
// reads the directory: optimizer step and moments, dropout generator, loader position, the
// trainer's own fields. After a successful resume one training step must run.
//
// TILLER_FUZZ_WRITE_SEED=<file> writes the valid checkpoint's json + NUL + safetensors to <file>
// (how tests/fuzz/corpus/trainer_state was made).
#include <cstdlib>
#include <fstream>
#include <memory>

#include "core/data/shards.h"
#include "core/io/atomic_file.h"
#include "fuzz/fuzz_support.h"
#include "rl/trainers/pretrain.h"

namespace tiller::fuzz {

namespace {

struct ResumeFixture {
  std::filesystem::path checkpoint;
  std::string valid_safetensors;
  std::unique_ptr<rl::Pretrainer> trainer;

  ResumeFixture() {
    std::vector<TokenId> tokens;
    for (int i = 0; i < 64; ++i) tokens.push_back((i * 7) % 64);
    std::string shard = (scratch_dir() / "train.bin").string();
    write_token_shard(shard, tokens, 2);
    rl::PretrainConfig config;
    config.model = ModelConfig::gpt2(/*vocab_size=*/64, /*n_layer=*/1, /*n_head=*/2,
                                     /*n_embd=*/8, /*max_seq_len=*/8);
    config.batch_size = 1;
    config.seq_len = 4;
    config.steps = 4;
    config.optimizer.schedule.warmup_steps = 1;
    config.log_every = 0;
    config.eval_every = 0;
    config.seed = 1;
    trainer = std::make_unique<rl::Pretrainer>(config, std::vector<std::string>{shard},
                                               std::vector<std::string>{});
    trainer->train_step();
    checkpoint = scratch_dir() / "checkpoint";
    trainer->save_checkpoint(checkpoint);
    valid_safetensors = read_file_bytes(checkpoint / "trainer_state.safetensors");
    if (const char* seed = std::getenv("TILLER_FUZZ_WRITE_SEED")) {
      std::ofstream out(seed, std::ios::binary);
      out << read_file_bytes(checkpoint / "trainer_state.json") << '\0' << valid_safetensors;
    }
  }
};

}  // namespace

void trainer_state_target(std::string_view input) {
  static ResumeFixture fixture;
  std::vector<std::string_view> parts = split_parts(input, 2);
  const bool has_tensors = input.find('\0') != std::string_view::npos;
  write_scratch("checkpoint/trainer_state.json", parts[0]);
  write_scratch("checkpoint/trainer_state.safetensors",
                has_tensors ? parts[1] : std::string_view(fixture.valid_safetensors));
  expect_result_or_error([&] {
    fixture.trainer->resume(fixture.checkpoint);
    fixture.trainer->train_step();
  });
}

}  // namespace tiller::fuzz

TILLER_FUZZ_MAIN(tiller::fuzz::trainer_state_target)
