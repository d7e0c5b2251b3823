// pretrain: train a small GPT-2 or Llama model from scratch on the built-in world's corpus (or on
// your own shards), with validation, greedy samples, checkpoints, metrics and a loss plot.
//
//   pretrain                                   # world corpus -> tokenizer -> shards -> model
//   pretrain --family llama --steps 600 --out runs/llama
//   pretrain --config my_run.json              # a PretrainConfig JSON (rl/pretrain.h keys)
//   pretrain --out runs/pretrain --resume      # continue from the newest checkpoint in --out
//   pretrain --train-shards a.bin --val-shards v.bin --tokenizer tok.json
//   mpirun -np 2 pretrain --batch 16           # data parallel: 8 rows per rank, same model
//   mpirun -np 2 pretrain --zero 1             # ... with AdamW's state sharded (ZeRO-1)
//   pretrain --init-from runs/base/model --text domain.jsonl notes.txt --steps 200
//            --replay base.bin --replay-fraction 0.25 --out runs/domain  # continued pretraining
//
// --init-from DIR starts from a tiller or Hugging Face model directory (config.json +
// model.safetensors) and its tokenizer (tokenizer.json or vocab.json + merges.txt in DIR, or
// --tokenizer); the architecture is the checkpoint's, and an architecture flag that contradicts it
// is an error naming both values. --text tokenises text / {"text"} JSONL files
// (rl/data/text_corpus.h) into <out>/data with --val-fraction of the documents held out.
// --replay mixes round(f * batch) rows of every batch from other shards (.bin) or text files.
// Under mpirun, tokenise --text / text --replay files in one process first (they are written to
// <out>/data) and pass the shards.
//
// Under mpirun every rank runs this program; --batch stays the global batch, rank 0 prepares the
// data (the others wait, then reuse it) and alone prints and writes. On --device cuda each rank
// takes the GPU of its local rank. An error on one rank ends the whole job (dist::abort_job).
// Precedence: built-in defaults < --config file (or, with --resume, <out>/pretrain_config.json)
// < flags given on the command line. So `--resume --steps 600` extends a finished run.
// Outputs in --out: data/ (tokenizer.json, train.bin, val.bin), metrics.jsonl, samples.txt,
// checkpoints/step_*/, model/ (a Hugging Face directory plus trainer state), loss.png.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <iostream>

#include "core/data/shards.h"
#include "core/dist/communicator.h"
#include "core/io/atomic_file.h"
#include "core/text/special_tokens.h"
#include "kernels/error.h"
#include "core/world/world.h"
#include "rl/data/text_corpus.h"
#include "rl/data/world_data.h"
#include "rl/reports/plot.h"
#include "rl/trainers/pretrain.h"
#include "rl/data/pretrain_data.h"

namespace {

namespace fs = std::filesystem;
using tiller::rl::PretrainConfig;

// The defaults of this example: about 0.9M parameters, 300 steps of 16 x 128 tokens, a few
// minutes on two CPU cores, enough for validation loss to fall from ~7 to well under half.
PretrainConfig example_defaults() {
  PretrainConfig config;
  config.model = tiller::ModelConfig::gpt2(/*vocab_size=*/1024, /*n_layer=*/4, /*n_head=*/4,
                                           /*n_embd=*/128, /*max_seq_len=*/128);
  config.batch_size = 16;
  config.seq_len = 128;
  config.steps = 300;
  config.optimizer.schedule.peak_lr = 3e-3f;
  config.optimizer.schedule.min_lr = 3e-4f;
  config.optimizer.schedule.warmup_steps = 30;
  config.optimizer.weight_decay = 0.1f;
  config.eval_every = 50;
  config.eval_batches = 8;
  config.sample_every = 100;
  config.checkpoint_every = 100;
  config.log_every = 10;
  config.output_dir = "runs/pretrain";
  return config;
}

struct ModelFlags {
  std::string family = "gpt2";
  int64_t layers = 4, width = 128, heads = 4, kv_heads = 2, vocab_size = 1024;
  float dropout = 0.f;
};

tiller::ModelConfig build_model(const ModelFlags& flags, int64_t vocab_size, int64_t seq_len) {
  if (flags.family == "gpt2") {
    auto model =
        tiller::ModelConfig::gpt2(vocab_size, flags.layers, flags.heads, flags.width, seq_len);
    model.dropout = flags.dropout;
    return model;
  }
  if (flags.family == "llama") {
    // SwiGLU with 8/3 of the width keeps the parameter count of GPT-2's 4x MLP.
    int64_t intermediate = (8 * flags.width / 3 + 63) / 64 * 64;
    auto model = tiller::ModelConfig::llama(vocab_size, flags.layers, flags.heads, flags.kv_heads,
                                            flags.width, intermediate, seq_len);
    model.dropout = flags.dropout;
    return model;
  }
  tiller::fail("pretrain: --family must be gpt2 or llama, got '{}'", flags.family);
}

// The checkpoint's architecture, with --dropout applied; an architecture flag that was given and
// disagrees with it is an error.
tiller::ModelConfig checkpoint_model(const fs::path& dir, const ModelFlags& flags,
                                     const std::function<bool(const char*)>& given) {
  auto model = tiller::ModelConfig::from_hf_json(tiller::read_file_bytes(dir / "config.json"));
  auto check = [&](const char* flag, auto flag_value, auto checkpoint_value) {
    TILLER_CHECK(!given(flag) || flag_value == checkpoint_value,
                 "{} {} contradicts --init-from {} ({} there); drop the flag or start "
                 "from another checkpoint",
                 flag, flag_value, dir.string(), checkpoint_value);
  };
  check("--family", flags.family, std::string(tiller::family_name(model.family)));
  check("--layers", flags.layers, model.n_layer);
  check("--width", flags.width, model.n_embd);
  check("--heads", flags.heads, model.n_head);
  if (model.family == tiller::ModelFamily::llama) check("--kv-heads", flags.kv_heads, model.n_kv_head);
  check("--vocab-size", flags.vocab_size, model.vocab_size);
  if (given("--dropout")) model.dropout = flags.dropout;
  return model;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Pretrain a small transformer (GPT-2 or Llama family) with tiller"};
  PretrainConfig flags = example_defaults();
  ModelFlags model_flags;
  std::string config_path, schedule = "cosine", device = "cpu", dtype = "f32";
  std::string on_nonfinite = "stop", data_dir, tokenizer_path;
  std::vector<std::string> train_shards, val_shards;
  bool resume = false;
  tiller::WorldConfig world;
  std::string init_from;
  std::vector<std::string> text_files, replay_files;
  double val_fraction = 0.05, replay_fraction = 0.0;

  app.add_option("--out", flags.output_dir, "output folder")->capture_default_str();
  app.add_option("--config", config_path, "PretrainConfig JSON file (rl/pretrain.h keys)");
  app.add_flag("--resume", resume, "continue from the newest checkpoint in --out");
  app.add_option("--family", model_flags.family, "gpt2 or llama")->capture_default_str();
  app.add_option("--layers", model_flags.layers, "transformer blocks")->capture_default_str();
  app.add_option("--width", model_flags.width, "n_embd")->capture_default_str();
  app.add_option("--heads", model_flags.heads, "attention heads")->capture_default_str();
  app.add_option("--kv-heads", model_flags.kv_heads, "llama: key/value heads")
      ->capture_default_str();
  app.add_option("--dropout", model_flags.dropout, "embedding and residual dropout");
  app.add_option("--vocab-size", model_flags.vocab_size, "tokenizer vocabulary to train")
      ->capture_default_str();
  app.add_option("--seq-len", flags.seq_len, "T")->capture_default_str();
  app.add_option("--batch", flags.batch_size, "B")->capture_default_str();
  app.add_option("--grad-accum", flags.grad_accumulation, "micro-batches per update");
  app.add_option("--steps", flags.steps, "optimizer updates")->capture_default_str();
  app.add_option("--lr", flags.optimizer.schedule.peak_lr, "peak learning rate")->capture_default_str();
  app.add_option("--min-lr", flags.optimizer.schedule.min_lr, "final learning rate")->capture_default_str();
  app.add_option("--warmup", flags.optimizer.schedule.warmup_steps, "warmup steps")->capture_default_str();
  app.add_option("--schedule", schedule, "constant, linear, cosine or wsd")->capture_default_str();
  app.add_option("--decay-steps", flags.optimizer.schedule.decay_steps, "wsd: length of the decay");
  app.add_option("--weight-decay", flags.optimizer.weight_decay, "AdamW weight decay")->capture_default_str();
  app.add_option("--clip", flags.optimizer.clip_norm, "gradient norm clip (0: off)")->capture_default_str();
  app.add_option("--eval-every", flags.eval_every, "steps between validations");
  app.add_option("--eval-batches", flags.eval_batches, "validation batches");
  app.add_option("--sample-every", flags.sample_every, "steps between greedy samples (0: off)");
  app.add_option("--sample-tokens", flags.sample_tokens, "tokens per sample");
  app.add_option("--sample-prompt", flags.sample_prompt, "default: a fact's opening words");
  app.add_option("--checkpoint-every", flags.checkpoint_every, "steps between checkpoints");
  app.add_option("--keep-checkpoints", flags.keep_checkpoints,
                 "newest periodic checkpoints kept (0: all; the final model is never pruned)")
      ->capture_default_str();
  app.add_option("--log-every", flags.log_every, "steps between progress lines");
  app.add_option("--seed", flags.seed, "weights, data order and dropout");
  app.add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  app.add_option("--dtype", dtype, "f32, or bf16 on cuda")->capture_default_str();
  app.add_option("--on-nonfinite", on_nonfinite, "stop or skip")->capture_default_str();
  app.add_option("--zero", flags.optimizer.zero_stage,
                 "under mpirun: 1 shards AdamW's moments over the ranks (ZeRO-1)")
      ->capture_default_str();
  app.add_option("--data-dir", data_dir, "tokenizer + shards folder (default <out>/data)");
  app.add_option("--tokenizer", tokenizer_path, "load this tokenizer instead of training one");
  app.add_option("--train-shards", train_shards, "use these token shards instead of the world");
  app.add_option("--val-shards", val_shards, "validation shards for --train-shards");
  app.add_option("--init-from", init_from, "continue pretraining a tiller or Hugging Face model");
  app.add_option("--text", text_files, "train on these text or {\"text\"} JSONL files");
  app.add_option("--val-fraction", val_fraction, "--text: share of documents held out")
      ->capture_default_str();
  app.add_option("--replay", replay_files, "shards (.bin) or text files mixed into every batch");
  app.add_option("--replay-fraction", replay_fraction, "share of each batch from --replay")
      ->capture_default_str();
  app.add_option("--world-seed", world.seed, "world seed")->capture_default_str();
  app.add_option("--entities", world.num_entities, "world size")->capture_default_str();
  app.add_option("--mentions", world.mentions_per_fact, "world: corpus mentions per fact")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    auto given = [&](const char* name) { return app.count(name) > 0; };
    const fs::path out = flags.output_dir;

    // 1. The configuration: defaults < file < flags given.
    PretrainConfig config = example_defaults();
    config.output_dir = flags.output_dir;
    std::optional<fs::path> checkpoint;
    if (resume) {
      checkpoint = tiller::rl::latest_checkpoint(out);
      if (!checkpoint) tiller::fail("pretrain: --resume but {} holds no checkpoint", out.string());
      config = tiller::rl::pretrain_config_from_json(
          tiller::read_file_bytes(out / "pretrain_config.json"), config);
    }
    if (!config_path.empty())
      config = tiller::rl::pretrain_config_from_json(tiller::read_file_bytes(config_path), config);
    const std::vector<std::pair<const char*, std::function<void()>>> overrides = {
        {"--seq-len", [&] { config.seq_len = flags.seq_len; }},
        {"--batch", [&] { config.batch_size = flags.batch_size; }},
        {"--grad-accum", [&] { config.grad_accumulation = flags.grad_accumulation; }},
        {"--steps", [&] { config.steps = flags.steps; }},
        {"--lr", [&] { config.optimizer.schedule.peak_lr = flags.optimizer.schedule.peak_lr; }},
        {"--min-lr", [&] { config.optimizer.schedule.min_lr = flags.optimizer.schedule.min_lr; }},
        {"--warmup", [&] { config.optimizer.schedule.warmup_steps = flags.optimizer.schedule.warmup_steps; }},
        {"--schedule",
         [&] { config.optimizer.schedule.kind = tiller::optim::parse_schedule_kind(schedule); }},
        {"--decay-steps", [&] { config.optimizer.schedule.decay_steps = flags.optimizer.schedule.decay_steps; }},
        {"--weight-decay", [&] { config.optimizer.weight_decay = flags.optimizer.weight_decay; }},
        {"--clip", [&] { config.optimizer.clip_norm = flags.optimizer.clip_norm; }},
        {"--eval-every", [&] { config.eval_every = flags.eval_every; }},
        {"--eval-batches", [&] { config.eval_batches = flags.eval_batches; }},
        {"--sample-every", [&] { config.sample_every = flags.sample_every; }},
        {"--sample-tokens", [&] { config.sample_tokens = flags.sample_tokens; }},
        {"--sample-prompt", [&] { config.sample_prompt = flags.sample_prompt; }},
        {"--checkpoint-every", [&] { config.checkpoint_every = flags.checkpoint_every; }},
        {"--keep-checkpoints", [&] { config.keep_checkpoints = flags.keep_checkpoints; }},
        {"--log-every", [&] { config.log_every = flags.log_every; }},
        {"--seed", [&] { config.seed = flags.seed; }},
        {"--device", [&] { config.device = tiller::Device::parse(device); }},
        {"--dtype",
         [&] {
           if (dtype != "f32" && dtype != "bf16")
             tiller::fail("pretrain: --dtype must be f32 or bf16, got '{}'", dtype);
           config.dtype = dtype == "bf16" ? tiller::DType::bf16 : tiller::DType::f32;
         }},
        {"--zero", [&] { config.optimizer.zero_stage = flags.optimizer.zero_stage; }},
        {"--on-nonfinite",
         [&] { config.optimizer.on_nonfinite = tiller::rl::parse_nonfinite_policy(on_nonfinite); }},
    };
    for (const auto& [name, apply] : overrides)
      if (given(name)) apply();
    // The model comes from the flags unless a config file or the resumed run defines it.
    bool model_from_flags = !resume && config_path.empty();
    for (const char* name :
         {"--family", "--layers", "--width", "--heads", "--kv-heads", "--dropout", "--vocab-size"})
      model_from_flags = model_from_flags || given(name);
    if (!init_from.empty()) {
      config.init_from = init_from;
      config.model = checkpoint_model(init_from, model_flags, given);
      if (!given("--seq-len")) config.seq_len = std::min(config.seq_len, config.model.max_seq_len);
      model_from_flags = false;
    } else if (model_from_flags) {
      config.model = build_model(model_flags, model_flags.vocab_size, config.seq_len);
    }
    if (given("--replay-fraction")) config.replay_fraction = replay_fraction;
    // A resumed (or configured) run keeps the tokenizer its data was made with: the vocabulary
    // recorded next to the shards, else the model's. (Taking the flag's default instead would
    // rebuild <out>/data with another tokenizer than the checkpoint's.)
    if (!model_from_flags && !given("--vocab-size") && init_from.empty()) {
      const fs::path record = (data_dir.empty() ? out / "data" : fs::path(data_dir)) / "data.json";
      auto recorded = fs::exists(record) ? nlohmann::json::parse(tiller::read_file_bytes(record),
                                                                 nullptr, false)
                                         : nlohmann::json();
      model_flags.vocab_size =
          recorded.is_object() && recorded.contains("fingerprint")
              ? recorded["fingerprint"].value("vocab_size", config.model.vocab_size)
              : config.model.vocab_size;
    }
    config.output_dir = out.string();  // wherever the folder is now
    // A scheduled total of 0 follows --steps (resolved again by the trainer); an explicit one from
    // an earlier run would pin the old length when --steps extends it.
    if (given("--steps")) config.optimizer.schedule.total_steps = 0;

    // Data parallel under a launcher (mpirun -np N): one communicator for the run's device.
    const tiller::dist::LaunchInfo launch = tiller::dist::launch_info_from_environment();
    config.device = tiller::dist::device_for_rank(config.device, launch);
    config.communicator = tiller::dist::communicator_from_environment(config.device);
    const bool leader = config.communicator->is_leader();
    if (!leader) std::cout.setstate(std::ios::failbit);  // rank 0 alone reports

    // 2. Data: the world corpus through a trained (or given) tokenizer into shards, or given
    // shards.
    std::optional<tiller::Tokenizer> tokenizer;
    if (tokenizer_path.empty() && !config.init_from.empty()) tokenizer_path = config.init_from;
    const fs::path data = data_dir.empty() ? out / "data" : fs::path(data_dir);
    const bool replay_text = std::any_of(replay_files.begin(), replay_files.end(), [](auto& f) {
      return fs::path(f).extension() != ".bin";
    });
    TILLER_CHECK(config.communicator->world_size() == 1 || (text_files.empty() && !replay_text),
                 "pretrain: --text and text --replay files are tokenised by one process; run "
                 "`pretrain --text ... --steps 0 --out DIR` first, then mpirun with "
                 "--train-shards/--replay DIR/data/*.bin");
    if (!text_files.empty() || !replay_files.empty()) {
      TILLER_CHECK(!tokenizer_path.empty(),
                   "pretrain: --text and text --replay files need a tokenizer (--init-from or "
                   "--tokenizer)");
      tokenizer = tiller::Tokenizer::load(tokenizer_path);
    }
    if (!replay_files.empty()) {
      config.replay_shards.clear();
      std::vector<std::string> replay_text;
      for (const auto& file : replay_files)
        (fs::path(file).extension() == ".bin" ? config.replay_shards : replay_text).push_back(file);
      if (!replay_text.empty()) {
        auto documents = tiller::rl::read_text_documents(replay_text);
        std::vector<tiller::TokenId> ids;
        for (const auto& document : documents) {
          auto encoded = tokenizer->encode(document);
          ids.insert(ids.end(), encoded.begin(), encoded.end());
          ids.push_back(tokenizer->token_id(tiller::special_tokens::kEndOfText));
        }
        fs::create_directories(data);
        tiller::write_token_shard(data / "replay.bin", ids,
                                  tiller::shard_token_width(tokenizer->vocab_size()));
        config.replay_shards.push_back((data / "replay.bin").string());
        std::cout << "replay: " << documents.size() << " documents, " << ids.size()
                  << " tokens -> " << (data / "replay.bin").string() << "\n";
      }
    }
    if (!text_files.empty()) {
      auto documents = tiller::rl::read_text_documents(text_files);
      std::vector<std::string_view> views(documents.begin(), documents.end());
      auto shards = tiller::rl::write_corpus_shards(views, *tokenizer, data, val_fraction);
      std::cout << "data: " << documents.size() << " documents from " << text_files.size()
                << " files, " << shards.train_tokens << " train + " << shards.val_tokens
                << " val tokens -> " << data.string() << "\n";
      train_shards = shards.train_shards;
      val_shards = shards.val_shards;
    } else if (!train_shards.empty()) {
      if (!tokenizer_path.empty()) tokenizer = tiller::Tokenizer::load(tokenizer_path);
    } else {
      auto prepare = [&] {
        return tiller::rl::prepare_world_pretraining_data(
            world, data, {.vocab_size = model_flags.vocab_size, .tokenizer_path = tokenizer_path});
      };
      // Rank 0 writes the data; the others wait and then reuse it.
      if (leader) prepare();
      config.communicator->barrier();
      auto shards = prepare();
      std::cout << "data: " << data.string() << (shards.reused ? " (reused)" : "") << ", "
                << shards.train_tokens << " train + " << shards.val_tokens << " val tokens, vocab "
                << shards.vocab_size << "\n";
      train_shards = shards.train_shards;
      val_shards = shards.val_shards;
      tokenizer = tiller::Tokenizer::load(shards.tokenizer_path.string());
      if (config.sample_prompt.empty()) {
        const tiller::World generated(world);
        const auto& facts = generated.training_facts(tiller::world::TaskType::kHomeTown);
        if (!facts.empty()) {
          // Without the trailing space: GPT-2 pieces carry their leading space ("in", " Pelmora").
          config.sample_prompt = facts.front().prefix;
          while (!config.sample_prompt.empty() && config.sample_prompt.back() == ' ')
            config.sample_prompt.pop_back();
        }  // "Zorvik lives in
      }
    }
    if (tokenizer && model_from_flags) {
      // Fit the model's vocabulary to the tokenizer actually used (it may stop merging early).
      config.model.vocab_size = tokenizer->vocab_size();
    }

    // 3. Train.
    tiller::rl::Pretrainer trainer(config, train_shards, val_shards, tokenizer);
    std::cout << "model: " << tiller::family_name(config.model.family) << ", "
              << trainer.model().num_parameters() << " parameters, " << config.model.n_layer
              << " layers x " << config.model.n_embd << " wide; " << config.steps << " steps of "
              << config.tokens_per_step() << " tokens on " << config.device.str() << "\n";
    if (checkpoint) {
      trainer.resume(*checkpoint);
      std::cout << "resumed from " << checkpoint->string() << " at step " << trainer.step() << "\n";
    }
    auto summary = trainer.train();

    // 4. Plot and report.
    if (!leader) return 0;
    auto plot = tiller::rl::plot_metrics(
        {{.label = "train loss", .metrics_path = out / "metrics.jsonl", .key = "loss"},
         {.label = "val loss", .metrics_path = out / "metrics.jsonl", .key = "val_loss"}},
        out / "loss.png", {.title = "pretraining loss", .y_label = "cross entropy (nats/token)"});
    std::cout << "\nval loss " << summary.initial_val_loss << " -> " << summary.final_val_loss
              << " in " << tiller::rl::format_duration(summary.seconds);
    if (summary.skipped_steps > 0) std::cout << " (" << summary.skipped_steps << " steps skipped)";
    std::cout << "\noutputs in " << out.string() << ":\n"
              << "  model      " << summary.final_checkpoint.string()
              << "  (Hugging Face config.json + model.safetensors + tokenizer.json)\n"
              << "  metrics    " << (out / "metrics.jsonl").string() << "\n"
              << "  samples    " << (out / "samples.txt").string() << "\n"
              << "  " << plot.message << "\n";
  } catch (const std::exception& error) {
    std::cerr << "pretrain: " << error.what() << "\n";
    tiller::dist::abort_job(1);  // under mpirun: stop the other ranks too
    return 1;
  }
  return 0;
}
