// sft: supervised fine-tuning of a pretrained model on chat data, then base vs SFT on the world's
// held-out eval prompts (greedy generation, exact scorer).
//
//   pretrain && sft                            # runs/pretrain/model -> runs/sft
//   sft --base runs/pretrain/model --data my_chats.jsonl --epochs 2 --out runs/sft2
//   sft --out runs/sft --resume                # continue from the newest checkpoint in --out
//   mpirun -np 2 sft --batch 8                 # data parallel: 4 rows per rank, same model
//
// Under mpirun every rank trains (--batch is the global batch, --zero 1 shards AdamW's state);
// rank 0 alone runs the generation evals, prints and writes. An error on one rank ends the job.
// The SFT data defaults to the built-in world's 1,000 chats (WorldConfig --world-seed/--entities,
// which must match the world the base model was pretrained on for the eval to be meaningful); any
// JSONL of {"messages":[...]} or {"prompt","completion"} records works. A share of it
// (--eval-fraction) is held out for the eval loss. The tokenizer is the base directory's
// tokenizer.json unless --tokenizer says otherwise.
// Outputs in --out: metrics.jsonl (train and held-out loss), world_eval.jsonl (base and SFT
// rates), eval_base.jsonl and eval_sft.jsonl (per prompt), checkpoints/step_*/, model/ (Hugging
// Face directory + tokenizer.json + trainer state), loss.png.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>
#include <optional>

#include "core/dist/communicator.h"
#include "kernels/error.h"
#include "core/world/world.h"
#include "rl/data/world_data.h"
#include "rl/reports/evaluate.h"
#include "rl/reports/metrics.h"
#include "rl/reports/plot.h"
#include "rl/trainers/pretrain.h"
#include "rl/trainers/sft.h"

namespace {

namespace fs = std::filesystem;
using namespace tiller;

rl::EvaluationReport evaluate(Transformer& model, const Tokenizer& tokenizer, const World& world,
                              const rl::EvaluationConfig& base_config, const fs::path& jsonl) {
  rl::EvaluationConfig config = base_config;
  config.jsonl_path = jsonl.string();
  return rl::evaluate_world(model, tokenizer, world.eval_prompts(), config);
}

void write_eval_record(rl::MetricsLog& log, int64_t step, const char* which,
                       const rl::EvaluationReport& report) {
  rl::Metrics metrics;
  const std::string prefix = std::string(which) + "/";
  metrics.add(prefix + "exact_match", report.exact_match_rate)
      .add(prefix + "format_ok", report.format_rate)
      .add(prefix + "fact_correct", report.fact_correct_rate)
      .add(prefix + "ends_turn", report.ends_turn_rate)
      .add(prefix + "reward", report.mean_reward)
      .add(prefix + "response_tokens", report.mean_response_tokens);
  log.write(step, metrics);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Supervised fine-tuning of a pretrained tiller model, evaluated on the world"};
  std::string base_dir = "runs/pretrain/model";
  std::string data_path;
  std::string tokenizer_path;
  std::string output_dir = "runs/sft";
  std::string device = "cpu", dtype = "f32", on_malformed = "stop";
  bool resume = false, pack = true;
  int64_t max_length = 0;
  double eval_fraction = 0.05;
  rl::SftConfig config;
  // ~170 updates of 16 packed rows: about a minute on two CPU cores for the pretrain example's
  // model, which then goes from 0% to ~90% format compliance (exact match is bounded by what
  // 300 pretraining steps memorised: ~8%).
  config.epochs = 8;
  config.batch_size = 16;
  config.optimizer.schedule.peak_lr = 2e-3f;
  config.optimizer.schedule.min_lr = 2e-4f;
  config.optimizer.schedule.warmup_steps = 10;
  config.eval_every = 25;
  config.log_every = 10;
  config.checkpoint_every = 100;
  WorldConfig world_config;
  rl::EvaluationConfig eval;
  eval.max_new_tokens = 48;
  eval.batch_size = 32;

  app.add_option("--base", base_dir,
                 "pretrained model directory (config.json + "
                 "model.safetensors)")
      ->capture_default_str();
  app.add_option("--data", data_path, "SFT JSONL (default: the built-in world's SFT chats)");
  app.add_option("--tokenizer", tokenizer_path, "tokenizer file or directory (default: --base)");
  app.add_option("--out", output_dir, "output folder")->capture_default_str();
  app.add_flag("--resume", resume, "continue from the newest checkpoint in --out");
  app.add_option("--epochs", config.epochs, "passes over the training rows")->capture_default_str();
  app.add_option("--batch", config.batch_size, "rows per micro-batch")->capture_default_str();
  app.add_option("--grad-accum", config.grad_accumulation, "micro-batches per update");
  app.add_option("--max-length", max_length, "input tokens per row (default: max_seq_len)");
  app.add_flag("--pack,!--no-pack", pack, "pack several chats per row")->capture_default_str();
  app.add_option("--lr", config.optimizer.schedule.peak_lr, "peak learning rate")->capture_default_str();
  app.add_option("--min-lr", config.optimizer.schedule.min_lr, "final learning rate")->capture_default_str();
  app.add_option("--warmup", config.optimizer.schedule.warmup_steps, "warmup steps")->capture_default_str();
  app.add_option("--weight-decay", config.optimizer.weight_decay, "AdamW weight decay");
  app.add_option("--clip", config.optimizer.clip_norm, "gradient norm clip (0: off)")->capture_default_str();
  app.add_option("--eval-fraction", eval_fraction, "held-out share for the eval loss (0: no eval split)")
      ->capture_default_str();
  app.add_option("--eval-every", config.eval_every, "steps between eval losses (0: start, end)");
  app.add_option("--checkpoint-every", config.checkpoint_every, "steps between checkpoints");
  app.add_option("--keep-checkpoints", config.keep_checkpoints,
                 "newest periodic checkpoints kept (0: all; the final model is never pruned)")
      ->capture_default_str();
  app.add_option("--log-every", config.log_every, "steps between progress lines");
  app.add_option("--seed", config.seed, "row order, packing, split and dropout");
  app.add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  app.add_option("--zero", config.optimizer.zero_stage,
                 "under mpirun: 1 shards AdamW's moments over the ranks (ZeRO-1)");
  app.add_option("--dtype", dtype, "f32, or bf16 on cuda")->capture_default_str();
  app.add_option("--on-malformed", on_malformed, "stop or skip bad JSONL lines")
      ->capture_default_str();
  app.add_option("--eval-prompts", eval.limit, "world eval prompts to generate (0: all)");
  app.add_option("--max-new-tokens", eval.max_new_tokens, "eval generation length")
      ->capture_default_str();
  app.add_option("--replay", config.replay_shards,
                 "pretraining token shards (e.g. <pretrain>/data/train.bin) to replay while "
                 "fine-tuning");
  app.add_option("--replay-rows", config.replay_rows,
                 "windows of the replay shards per update (0: no replay)")
      ->capture_default_str();
  app.add_option("--replay-coef", config.replay_coef, "weight of the replay loss")
      ->capture_default_str();
  app.add_option("--world-seed", world_config.seed, "world seed")->capture_default_str();
  app.add_option("--entities", world_config.num_entities, "world size")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    const fs::path out = output_dir;
    config.output_dir = out.string();
    config.device = Device::parse(device);
    const dist::LaunchInfo launch = dist::launch_info_from_environment();
    config.device = dist::device_for_rank(config.device, launch);
    config.communicator = dist::communicator_from_environment(config.device);
    const bool leader = config.communicator->is_leader();
    if (!leader) std::cout.setstate(std::ios::failbit);  // rank 0 alone reports
    TILLER_CHECK(dtype == "f32" || dtype == "bf16", "sft: --dtype must be f32 or bf16, got '{}'",
                 dtype);
    config.dtype = dtype == "bf16" ? DType::bf16 : DType::f32;
    TILLER_CHECK(on_malformed == "stop" || on_malformed == "skip",
                 "sft: --on-malformed must be stop or skip, got '{}'", on_malformed);
    config.pack = pack;

    // 1. Base model, tokenizer, world.
    TILLER_CHECK(fs::exists(fs::path(base_dir) / "config.json"),
                 "sft: {} is not a model directory; run the pretrain example first or pass --base",
                 base_dir);
    Transformer base = Transformer::from_pretrained(base_dir, config.device);
    Tokenizer tokenizer = Tokenizer::load(tokenizer_path.empty() ? base_dir : tokenizer_path);
    const World world(world_config);
    std::cout << "base: " << base_dir << " (" << base.num_parameters() << " parameters, vocab "
              << tokenizer.vocab_size() << ")\n";

    // 2. Data.
    rl::SftDataOptions data_options{
        .max_length = max_length > 0 ? max_length : base.config().max_seq_len,
        .on_malformed =
            on_malformed == "skip" ? rl::MalformedLinePolicy::skip : rl::MalformedLinePolicy::stop};
    rl::SftDataset all =
        data_path.empty()
            ? rl::world_sft_dataset(world.sft_examples(), tokenizer, data_options)
            : rl::SftDataset::from_jsonl(data_path, tokenizer, data_options);
    std::cout << "data: " << (data_path.empty() ? "world SFT chats" : data_path) << ": "
              << all.report().summary() << "\n";
    for (const auto& problem : all.report().problems) std::cout << "  skipped " << problem << "\n";
    auto [train, held_out] = all.split(eval_fraction, config.seed);

    // 3. The base model on the held-out world prompts.
    // Rank 0 alone: generation is evaluation, not training, and writes files.
    std::optional<rl::EvaluationReport> base_report;
    if (leader) {
      fs::create_directories(out);
      base_report = evaluate(base, tokenizer, world, eval, out / "eval_base.jsonl");
      std::cout << "base eval: " << base_report->summary() << "\n";
    }

    // 4. Fine-tune (from the newest checkpoint in --out when resuming).
    std::optional<fs::path> checkpoint;
    if (resume) {
      checkpoint = rl::latest_checkpoint(out);
      TILLER_CHECK(checkpoint.has_value(), "sft: --resume but {} holds no checkpoint",
                   out.string());
    }
    Transformer start =
        checkpoint ? Transformer::from_pretrained(*checkpoint, config.device) : std::move(base);
    const size_t held_out_chats = held_out.size();
    std::optional<rl::SftDataset> eval_split;
    if (held_out_chats > 0) eval_split = std::move(held_out);
    rl::SftTrainer trainer(config, std::move(start), train, eval_split, tokenizer);
    if (checkpoint) {
      trainer.resume(*checkpoint);
      std::cout << "resumed from " << checkpoint->string() << " at step " << trainer.step() << "\n";
    }
    std::cout << "sft: " << train.size() << " train / " << held_out_chats << " held-out chats, "
              << trainer.rows() << " rows, " << trainer.total_steps() << " steps\n";
    rl::SftSummary summary = trainer.train();

    // 5. The fine-tuned model on the same prompts, then the report and the plot.
    if (!leader) return 0;
    const rl::EvaluationReport& before = *base_report;
    rl::EvaluationReport after =
        evaluate(trainer.model(), tokenizer, world, eval, out / "eval_sft.jsonl");
    {
      // Its own file, rewritten per run: a resumed run must not leave two base records.
      rl::MetricsLog log("world_eval", (out / "world_eval.jsonl").string());
      write_eval_record(log, 0, "base", before);
      write_eval_record(log, summary.steps, "sft", after);
    }
    auto plot = rl::plot_metrics(
        {{.label = "train loss", .metrics_path = out / "metrics.jsonl", .key = "loss"},
         {.label = "held-out loss", .metrics_path = out / "metrics.jsonl", .key = "eval_loss"}},
        out / "loss.png",
        {.title = "SFT loss (assistant tokens)", .y_label = "cross entropy (nats/token)"});

    std::cout << "\n                 exact match   format ok   fact correct   ends turn\n";
    for (const auto& [name, report] :
         {std::pair<const char*, const rl::EvaluationReport*>{"base", &before}, {"sft", &after}}) {
      std::cout << fmt::format("  {:<12} {:>12.1f}% {:>10.1f}% {:>13.1f}% {:>10.1f}%\n", name,
                               100 * report->exact_match_rate, 100 * report->format_rate,
                               100 * report->fact_correct_rate, 100 * report->ends_turn_rate);
    }
    std::cout << "\nheld-out loss " << summary.initial_eval.loss << " -> "
              << summary.final_eval.loss << " in " << rl::format_duration(summary.seconds)
              << "\noutputs in " << out.string() << ":\n"
              << "  model      " << summary.final_checkpoint.string() << "\n"
              << "  metrics    " << (out / "metrics.jsonl").string() << ", "
              << (out / "world_eval.jsonl").string() << "\n"
              << "  eval       " << (out / "eval_base.jsonl").string() << ", "
              << (out / "eval_sft.jsonl").string() << "\n"
              << "  " << plot.message << "\n";
  } catch (const std::exception& error) {
    std::cerr << "sft: " << error.what() << "\n";
    dist::abort_job(1);  // under mpirun: stop the other ranks too
    return 1;
  }
  return 0;
}
