// dpo: Direct Preference Optimization of the SFT policy on preference pairs — the alternative to
// reward model + PPO (rl/trainers/dpo.h; TRL's DPOTrainer semantics and metric names).
//
//   dpo                                        # runs/sft/model + the world's pairs -> runs/dpo
//   dpo --train prefs.jsonl --heldout h.jsonl  # your pairs (rl/data/reward_data.h formats)
//   dpo --loss-type ipo --beta 0.5 --precompute-ref
//   dpo --out runs/dpo --resume                # continue from the newest checkpoint in --out
//   dpo --tiny --out /tmp/dpo                  # seconds-scale run on a random tiny model (ctest)
//   mpirun -np 2 dpo --batch-size 8            # data parallel: 4 pairs per rank, same model
//
// Under mpirun every rank trains (--batch-size is the global batch, --zero 1 shards AdamW);
// rank 0 alone runs the generation evals, prints and writes. An error on one rank ends the job.
//
// The reference is the starting policy (--policy), frozen, or its log-probs precomputed once
// (--precompute-ref). A malformed JSONL line is an error naming <file>:<line>.
// Outputs in --out: metrics.jsonl, checkpoints/step_*/, model/ (HF dir + tokenizer.json),
// eval_before.jsonl / eval_after.jsonl (world held-out prompts), loss_margin.png (+ .dat/.gp).
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>

#include "core/dist/communicator.h"
#include "core/text/special_tokens.h"
#include "core/world/world.h"
#include "kernels/error.h"
#include "rl/data/reward_data.h"
#include "rl/data/world_data.h"
#include "rl/kit/run_directory.h"
#include "rl/reports/evaluate.h"
#include "rl/reports/plot.h"
#include "rl/trainers/dpo.h"

namespace {

namespace fs = std::filesystem;
using namespace tiller;

// A byte-level tokenizer with the chat tokens and a random 2-layer GPT-2 over it: what --tiny
// trains, so the program runs anywhere in seconds without earlier stages.
std::pair<Transformer, Tokenizer> tiny_start(uint64_t seed) {
  Tokenizer tokenizer;
  for (std::string_view token : special_tokens::kAll) tokenizer.add_special_token(token);
  ModelConfig config = ModelConfig::gpt2(tokenizer.vocab_size(), 2, 2, 32, 192);
  return {Transformer(config, seed), tokenizer};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"DPO of an SFT policy on preference pairs (the world's by default)"};
  std::string policy_dir = "runs/sft/model", tokenizer_path, train_path, heldout_path;
  std::string loss_type = "sigmoid", padding = "right", schedule = "linear", device = "cpu";
  uint64_t world_seed = WorldConfig{}.seed;
  int64_t limit = 0, eval_limit = 64, heldout_limit = 0;
  bool resume = false, tiny = false;
  rl::DpoConfig config;
  config.epochs = 1;
  config.batch_size = 8;
  config.max_length = 0;
  config.optimizer.schedule.peak_lr = 5e-6f;  // TRL's 1e-6 is tuned for billion-parameter models
  config.checkpoint_every = 50;
  config.log_every = 10;
  config.output_dir = "runs/dpo";
  app.add_option("--policy", policy_dir, "starting policy and reference (HF dir)")
      ->capture_default_str();
  app.add_option("--tokenizer", tokenizer_path, "tokenizer (default: the policy dir)");
  app.add_option("--train", train_path, "preference JSONL (default: the world's train pairs)");
  app.add_option("--heldout", heldout_path, "held-out JSONL (default: the world's held-out pairs)");
  app.add_option("--limit", limit, "use only the first N training pairs (0: all)");
  app.add_option("--heldout-limit", heldout_limit, "use only the first N held-out pairs (0: all)");
  app.add_option("--out", config.output_dir, "output folder")->capture_default_str();
  app.add_option("--zero", config.optimizer.zero_stage,
                 "under mpirun: 1 shards AdamW's moments over the ranks (ZeRO-1)");
  app.add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  app.add_option("--epochs", config.epochs, "passes over the pairs")->capture_default_str();
  app.add_option("--batch-size", config.batch_size, "pairs per micro-batch")->capture_default_str();
  app.add_option("--grad-accumulation", config.grad_accumulation, "micro-batches per update")
      ->capture_default_str();
  app.add_option("--max-length", config.max_length,
                 "prompt + completion tokens (0: the model's limit); the prompt's start is cut");
  app.add_option("--loss-type", loss_type, "sigmoid, ipo, hinge or robust")->capture_default_str();
  app.add_option("--beta", config.loss.beta, "deviation from the reference (ipo: tau)")
      ->capture_default_str();
  app.add_option("--label-smoothing", config.loss.label_smoothing, "robust: label-flip rate")
      ->capture_default_str();
  app.add_flag("--precompute-ref", config.precompute_ref,
               "reference log-probs computed once; no reference model kept");
  app.add_option("--padding", padding, "left or right (equal results)")->capture_default_str();
  app.add_option("--lr", config.optimizer.schedule.peak_lr, "peak learning rate")
      ->capture_default_str();
  app.add_option("--schedule", schedule, "constant, linear, cosine or wsd")->capture_default_str();
  app.add_option("--warmup", config.optimizer.schedule.warmup_steps, "warmup steps")
      ->capture_default_str();
  app.add_option("--clip-norm", config.optimizer.clip_norm, "max gradient norm (0: off)")
      ->capture_default_str();
  app.add_option("--eval-every", config.eval_every, "steps between evals (0: start and end)");
  app.add_option("--log-every", config.log_every, "steps between progress lines")
      ->capture_default_str();
  app.add_option("--checkpoint-every", config.checkpoint_every, "steps between checkpoints")
      ->capture_default_str();
  app.add_option("--keep-checkpoints", config.keep_checkpoints, "newest checkpoints kept (0: all)")
      ->capture_default_str();
  app.add_option("--seed", config.seed, "pair order")->capture_default_str();
  app.add_flag("--resume", resume, "continue from the newest checkpoint in --out");
  app.add_option("--eval-limit", eval_limit,
                 "world held-out prompts generated before/after (0: all)")
      ->capture_default_str();
  app.add_option("--world-seed", world_seed, "world seed (as in examples/make_world)")
      ->capture_default_str();
  app.add_flag("--tiny", tiny, "random tiny model and byte tokenizer, 24 pairs (smoke test)");
  CLI11_PARSE(app, argc, argv);

  try {
    config.loss.loss_type = rl::parse_dpo_loss_type(loss_type);
    TILLER_CHECK(padding == "left" || padding == "right",
                 "dpo: --padding must be left or right, got '{}'", padding);
    config.padding = padding == "left" ? rl::PaddingSide::left : rl::PaddingSide::right;
    config.optimizer.schedule.kind = optim::parse_schedule_kind(schedule);
    config.device = Device::parse(device);
    config.device = dist::device_for_rank(config.device, dist::launch_info_from_environment());
    config.communicator = dist::communicator_from_environment(config.device);
    const bool leader = config.communicator->is_leader();
    if (!leader) std::cout.setstate(std::ios::failbit);  // rank 0 alone reports
    if (tiny) {
      limit = limit == 0 ? 24 : limit;
      eval_limit = 8;
      config.batch_size = 4;
      config.checkpoint_every = 3;
      config.optimizer.schedule.peak_lr = 1e-3f;
      config.log_every = 2;
    }

    std::optional<Transformer> policy;
    std::optional<Tokenizer> tokenizer;
    if (tiny) {
      auto [model, tok] = tiny_start(config.seed + 1);
      policy.emplace(std::move(model));
      tokenizer.emplace(std::move(tok));
    } else {
      if (!fs::exists(fs::path(policy_dir) / "config.json"))
        fail(
            "dpo: no policy at {} (config.json + model.safetensors); run examples/sft first, or "
            "pass --policy DIR (or --tiny for a smoke run)",
            policy_dir);
      policy.emplace(Transformer::from_pretrained(policy_dir, config.device));
      tokenizer.emplace(Tokenizer::load(tokenizer_path.empty() ? policy_dir : tokenizer_path));
    }

    World world(WorldConfig{.seed = world_seed});
    std::vector<rl::PreferenceExample> train =
        train_path.empty()
            ? rl::preference_examples(*tokenizer, world.preference_pairs(world::Split::kTrain))
            : rl::load_preferences_jsonl(*tokenizer, train_path);
    std::vector<rl::PreferenceExample> heldout =
        heldout_path.empty()
            ? rl::preference_examples(*tokenizer, world.preference_pairs(world::Split::kHeldOut))
            : rl::load_preferences_jsonl(*tokenizer, heldout_path);
    if (limit > 0 && static_cast<int64_t>(train.size()) > limit) train.resize(limit);
    if (tiny && heldout_limit == 0) heldout_limit = 8;
    if (heldout_limit > 0 && static_cast<int64_t>(heldout.size()) > heldout_limit)
      heldout.resize(heldout_limit);

    const fs::path out(config.output_dir);
    rl::EvaluationConfig eval;
    eval.limit = eval_limit;
    eval.jsonl_path = (out / "eval_before.jsonl").string();
    // Rank 0 alone: generation is evaluation, not training, and writes files.
    std::optional<rl::EvaluationReport> before_report;
    if (leader) {
      fs::create_directories(out);
      before_report = evaluate_world(*policy, *tokenizer, world.eval_prompts(), eval);
      std::cout << "[dpo] eval before: " << before_report->summary() << "\n";
    }

    rl::DpoTrainer trainer(config, std::move(*policy), train, heldout, *tokenizer);
    if (resume) {
      auto checkpoint = rl::latest_checkpoint(out);
      TILLER_CHECK(checkpoint.has_value(), "dpo: --resume but {} holds no checkpoint",
                   out.string());
      trainer.resume(*checkpoint);
      std::cout << "[dpo] resumed from " << checkpoint->string() << " at step " << trainer.step()
                << "\n";
    }
    std::cout << "[dpo] " << train.size() << " train / " << heldout.size() << " held-out pairs, "
              << trainer.total_steps() << " steps, loss " << loss_type << ", beta "
              << config.loss.beta << (config.precompute_ref ? ", precomputed reference" : "")
              << "\n";
    rl::DpoSummary summary = trainer.train();
    if (!leader) return 0;
    const rl::EvaluationReport& before = *before_report;

    eval.jsonl_path = (out / "eval_after.jsonl").string();
    rl::EvaluationReport after =
        evaluate_world(trainer.policy(), *tokenizer, world.eval_prompts(), eval);
    std::cout << "[dpo] eval before: " << before.summary() << "\n"
              << "[dpo] eval after:  " << after.summary() << "\n"
              << fmt::format(
                     "[dpo] held-out reward accuracy {:.3f}, margin {:.3f} ({} steps, {})\n",
                     summary.final_eval.rewards_accuracies, summary.final_eval.rewards_margins,
                     summary.steps, rl::format_duration(summary.seconds));

    const fs::path metrics = out / "metrics.jsonl";
    rl::PlotResult plot = rl::plot_metrics(
        {{.label = "loss", .metrics_path = metrics, .key = "loss"},
         {.label = "reward margin", .metrics_path = metrics, .key = "rewards/margins"},
         {.label = "eval reward margin", .metrics_path = metrics, .key = "eval_rewards/margins"}},
        out / "loss_margin.png", {.title = "DPO: loss and reward margin", .x_label = "step"});
    std::cout << "[dpo] model in " << (out / "model").string() << "  " << plot.message << "\n";
  } catch (const std::exception& error) {
    std::cerr << error.what() << "\n";
    dist::abort_job(1);  // under mpirun: stop the other ranks too
    return 1;
  }
  return 0;
}
