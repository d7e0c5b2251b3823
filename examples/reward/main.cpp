// reward: trains a reward model (rl/reward.h) on preference pairs, starting from the SFT model —
// stage 3 of the pipeline, between examples/sft and examples/ppo.
//
//   reward                                   # runs/sft/model + the world's pairs -> runs/reward
//   reward --sft DIR --train prefs.jsonl --heldout prefs_heldout.jsonl --epochs 1 --out runs/rm
//   mpirun -np 2 reward --batch 16             # data parallel: 8 pairs per rank, same model
//
// Under mpirun every rank trains (--batch is the global batch, --zero 1 shards AdamW); rank 0
// alone prints and writes. An error on one rank ends the job.
//
// By default the data are the built-in world's preference pairs (core/world.h): the training split
// to learn from and the held-out split (questions the training pairs never ask) to measure
// accuracy on, which is also broken down by the kind of rejected answer (wrong fact, malformed,
// rambling, missing <|end|>). JSONL files use rl/reward_data.h's formats.
// Outputs in --out: metrics.jsonl, model/ (RewardModel::save + tokenizer.json: what examples/ppo
// reads), accuracy.png and loss.png (+ .dat/.gp beside them).
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>

#include "core/dist/communicator.h"
#include "kernels/error.h"
#include "core/world/world.h"
#include "rl/data/world_data.h"
#include "rl/reports/metrics.h"
#include "rl/reports/plot.h"
#include "rl/reports/reward_accuracy.h"
#include "rl/heads/reward.h"
#include "rl/data/reward_data.h"
#include "rl/trainers/reward_trainer.h"

namespace {

namespace fs = std::filesystem;
using namespace tiller;

void require_sft_checkpoint(const fs::path& dir) {
  if (!fs::exists(dir / "config.json") || !fs::exists(dir / "model.safetensors"))
    fail(
        "reward: no SFT model at {} (config.json + model.safetensors); run examples/sft first "
        "(it writes runs/sft/model), or pass --sft DIR with any pretrained or SFT checkpoint",
        dir.string());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train a reward model on preference pairs, starting from an SFT checkpoint"};
  std::string sft_dir = "runs/sft/model", tokenizer_path, train_path, heldout_path;
  std::string out_dir = "runs/reward", schedule = "cosine", device = "cpu";
  uint64_t world_seed = WorldConfig{}.seed;
  rl::RewardConfig config;
  config.epochs = 2;
  config.batch_size = 16;
  config.optimizer.schedule = {.kind = optim::LrSchedule::Kind::cosine,
                     .peak_lr = 1e-4f,
                     .min_lr = 1e-5f,
                     .warmup_steps = 10};
  config.optimizer.weight_decay = 0.f;
  config.center_coefficient = 0.01f;
  config.log_every = 10;
  config.eval_every = 50;

  rl::RewardHeadOptions head;
  app.add_flag("--likelihood", head.likelihood,
               "add a learned multiple of the response's mean token log-likelihood under the "
               "backbone's own LM head to the reward (rl/heads/reward.h)");
  app.add_option("--likelihood-init", head.likelihood_init,
                 "initial weight of the likelihood term")
      ->capture_default_str();
  app.add_option("--sft", sft_dir, "starting checkpoint (SFT or pretrained HF dir)")
      ->capture_default_str();
  app.add_option("--tokenizer", tokenizer_path, "tokenizer (default: the --sft dir)");
  app.add_option("--train", train_path, "preference JSONL (default: the world's training pairs)");
  app.add_option("--heldout", heldout_path,
                 "held-out preference JSONL (default: the world's held-out pairs)");
  app.add_option("--world-seed", world_seed, "world seed (the world's pairs)")
      ->capture_default_str();
  app.add_option("--out", out_dir, "output folder")->capture_default_str();
  app.add_option("--epochs", config.epochs, "passes over the training pairs")
      ->capture_default_str();
  app.add_option("--batch", config.batch_size, "pairs per step")->capture_default_str();
  app.add_option("--max-length", config.max_length, "tokens per prompt + response (0: model's)");
  app.add_option("--lr", config.optimizer.schedule.peak_lr, "peak learning rate")->capture_default_str();
  app.add_option("--min-lr", config.optimizer.schedule.min_lr, "final learning rate")->capture_default_str();
  app.add_option("--warmup", config.optimizer.schedule.warmup_steps, "warmup steps")->capture_default_str();
  app.add_option("--schedule", schedule, "constant, linear, cosine or wsd")->capture_default_str();
  app.add_option("--weight-decay", config.optimizer.weight_decay, "AdamW weight decay")
      ->capture_default_str();
  app.add_option("--clip", config.optimizer.clip_norm, "gradient norm clip (0: off)")->capture_default_str();
  app.add_option("--center", config.center_coefficient,
                 "reward-centering coefficient λ of λ(r_c + r_r)^2 (0: off)")
      ->capture_default_str();
  app.add_option("--eval-every", config.eval_every, "steps between held-out evaluations")
      ->capture_default_str();
  app.add_option("--log-every", config.log_every, "steps between progress lines")
      ->capture_default_str();
  app.add_option("--checkpoint-every", config.checkpoint_every,
                 "steps between resumable checkpoints (0: none)")
      ->capture_default_str();
  app.add_option("--keep-checkpoints", config.keep_checkpoints,
                 "newest periodic checkpoints kept (0: all; the final model is never pruned)")
      ->capture_default_str();
  bool resume = false;
  app.add_flag("--resume", resume, "continue from the newest checkpoint in --out");
  app.add_option("--seed", config.seed, "head initialisation and data order");
  app.add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  app.add_option("--zero", config.optimizer.zero_stage,
                 "under mpirun: 1 shards AdamW's moments over the ranks (ZeRO-1)");
  CLI11_PARSE(app, argc, argv);

  try {
    const fs::path out = out_dir;
    config.output_dir = out_dir;
    config.optimizer.schedule.kind = optim::parse_schedule_kind(schedule);
    const Device run_device =
        dist::device_for_rank(Device::parse(device), dist::launch_info_from_environment());
    config.communicator = dist::communicator_from_environment(run_device);
    const bool leader = config.communicator->is_leader();
    if (!leader) std::cout.setstate(std::ios::failbit);  // rank 0 alone reports
    require_sft_checkpoint(sft_dir);
    Tokenizer tokenizer = Tokenizer::load(tokenizer_path.empty() ? sft_dir : tokenizer_path);

    // Data: JSONL files when given, else the world's splits (kept for the per-kind breakdown).
    World world(WorldConfig{.seed = world_seed});
    std::vector<world::PreferencePair> world_heldout;
    std::vector<rl::PreferenceExample> train, heldout;
    if (!train_path.empty()) {
      train = rl::load_preferences_jsonl(tokenizer, train_path);
    } else {
      train = rl::preference_examples(tokenizer, world.preference_pairs(world::Split::kTrain));
    }
    if (!heldout_path.empty()) {
      heldout = rl::load_preferences_jsonl(tokenizer, heldout_path);
    } else if (train_path.empty()) {
      world_heldout = world.preference_pairs(world::Split::kHeldOut);
      heldout = rl::preference_examples(tokenizer, world_heldout);
    }

    rl::RewardModel model =
        rl::RewardModel::from_backbone(sft_dir, config.seed, run_device, head);
    std::cout << "reward model: " << sft_dir << " (" << model.backbone().num_parameters()
              << " parameters) + scalar head" << (head.likelihood ? " + likelihood term" : "")
              << "; " << train.size() << " training pairs, " << heldout.size() << " held-out\n";

    rl::RewardTrainer trainer(model, config, train, heldout);
    if (resume) {
      auto checkpoint = rl::latest_checkpoint(out);
      TILLER_CHECK(checkpoint.has_value(),
                   "reward: --resume but {} holds no checkpoint (write them with "
                   "--checkpoint-every)",
                   out.string());
      trainer.resume(*checkpoint);
      std::cout << "resumed from " << checkpoint->string() << " at step " << trainer.step() << "\n";
    }
    rl::RewardTrainSummary summary = trainer.train();
    if (!leader) return 0;
    tokenizer.save_tokenizer_json((summary.saved_model / "tokenizer.json").string());

    const fs::path metrics = out / "metrics.jsonl";
    auto accuracy_plot =
        rl::plot_metrics({{.label = "train (batch)", .metrics_path = metrics, .key = "accuracy"},
                          {.label = "held-out", .metrics_path = metrics, .key = "eval/accuracy"}},
                         out / "accuracy.png",
                         {.title = "reward model: preference accuracy", .y_label = "accuracy"});
    auto loss_plot = rl::plot_metrics(
        {{.label = "train (batch)", .metrics_path = metrics, .key = "loss"},
         {.label = "held-out", .metrics_path = metrics, .key = "eval/loss"}},
        out / "loss.png", {.title = "reward model: loss", .y_label = "-log sigmoid(r_c - r_r)"});

    std::cout << "\n";
    if (!heldout.empty()) {
      std::cout << fmt::format(
          "held-out accuracy {:.3f} -> {:.3f}, margin {:.3f} -> {:.3f} ({} "
          "pairs)\n",
          summary.initial_heldout.accuracy, summary.final_heldout.accuracy,
          summary.initial_heldout.margin, summary.final_heldout.margin,
          summary.final_heldout.pairs);
      if (!world_heldout.empty()) {
        // Which mistakes the reward model can tell apart.
        rl::RewardAccuracy by_kind =
            rl::reward_accuracy(model, tokenizer, world_heldout, trainer.config().max_length);
        std::cout << "held-out accuracy by rejected answer:";
        for (const auto& [kind, counts] : by_kind.by_rejection)
          std::cout << fmt::format("  {} {:.3f} ({})", kind, counts.accuracy(), counts.total);
        std::cout << "\n";
      }
    }
    std::cout << fmt::format(
        "training accuracy {:.3f}; reward statistics mean {:.4f} std {:.4f} "
        "(saved for PPO's normalisation); {} steps in {}\n",
        summary.final_train.accuracy, summary.statistics.mean, summary.statistics.std,
        summary.steps, rl::format_duration(summary.seconds));
    if (summary.truncated_sequences > 0)
      std::cout << summary.truncated_sequences << " sequences were truncated to "
                << trainer.config().max_length << " tokens\n";
    std::cout << "outputs in " << out.string() << ":\n"
              << "  model      " << summary.saved_model.string()
              << "  (backbone + score head + statistics + tokenizer.json)\n"
              << "  metrics    " << metrics.string() << "\n"
              << "  plots      " << accuracy_plot.message << "\n"
              << "             " << loss_plot.message << "\n";
    return 0;
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    dist::abort_job(1);  // under mpirun: stop the other ranks too
    return 1;
  }
}
