// grpo: Group Relative Policy Optimization of the SFT policy on the world's verifiable reward
// (rl/trainers/grpo.h; TRL's GRPOTrainer semantics and metric names). No value model; a frozen
// reference only with --beta > 0.
//
//   grpo                                      # runs/sft/model, world reward -> runs/grpo
//   grpo --format-weight 0.5 --reward-model runs/reward/model --reward-model-weight 0.5
//   grpo --loss-type grpo --scale-rewards batch --beta 0.04 --epsilon-high 0.28
//   grpo --out runs/grpo --resume             # continue from the newest checkpoint in --out
//   grpo --tiny --out /tmp/grpo               # seconds-scale run on a random tiny model (ctest)
//
// Reward functions (each logged as rewards/<name>/mean|std, summed with their weights):
//   world         world::reward_for(world::score(expected, completion)): 1 exact, 0.25 format only
//   format        1 when the completion is a well-formed one-sentence answer that ends its turn
//   reward_model  the trained reward model's normalised score (examples/reward)
// Prompts are the world's training preference prompts (never an eval key).
// Outputs in --out: metrics.jsonl, checkpoints/step_*/, model/ (HF dir + tokenizer.json),
// eval_before.jsonl / eval_after.jsonl, reward_kl.png and time.png (+ .dat/.gp).
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>
#include <map>
#include <memory>

#include "core/text/chat.h"
#include "core/text/special_tokens.h"
#include "core/world/world.h"
#include "kernels/error.h"
#include "rl/data/world_data.h"
#include "rl/heads/reward.h"
#include "rl/kit/run_directory.h"
#include "rl/reports/evaluate.h"
#include "rl/reports/plot.h"
#include "rl/trainers/grpo.h"

namespace {

namespace fs = std::filesystem;
using namespace tiller;

std::pair<Transformer, Tokenizer> tiny_start(uint64_t seed) {
  Tokenizer tokenizer;
  for (std::string_view token : special_tokens::kAll) tokenizer.add_special_token(token);
  ModelConfig config = ModelConfig::gpt2(tokenizer.vocab_size(), 2, 2, 32, 192);
  return {Transformer(config, seed), tokenizer};
}


}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"GRPO of an SFT policy on the world's verifiable reward"};
  std::string policy_dir = "runs/sft/model", tokenizer_path, reward_model_dir;
  std::string loss_type = "dapo", scale_rewards = "group", schedule = "linear", device = "cpu";
  float world_weight = 1.f, format_weight = 0.f, reward_model_weight = 0.f;
  uint64_t world_seed = WorldConfig{}.seed;
  int64_t eval_limit = 96, limit = 0;
  std::vector<std::string> skip_taught;  // SFT data files: leave out the facts they answer
  bool resume = false, tiny = false;
  rl::GrpoConfig config;
  config.steps = 40;
  config.prompts_per_step = 8;
  config.num_generations = 8;
  config.micro_batch_size = 16;
  config.max_completion_length = 40;
  config.optimizer.schedule.peak_lr = 1e-5f;  // TRL's 1e-6 is tuned for billion-parameter models
  config.checkpoint_every = 20;
  config.output_dir = "runs/grpo";
  app.add_option("--policy", policy_dir, "starting policy (HF dir)")->capture_default_str();
  app.add_option("--tokenizer", tokenizer_path, "tokenizer (default: the policy dir)");
  app.add_option("--out", config.output_dir, "output folder")->capture_default_str();
  app.add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  app.add_option("--steps", config.steps, "generation batches (one update each per iteration)")
      ->capture_default_str();
  app.add_option("--prompts-per-step", config.prompts_per_step, "prompts per generation batch")
      ->capture_default_str();
  app.add_option("--num-generations", config.num_generations, "completions per prompt (G)")
      ->capture_default_str();
  app.add_option("--micro-batch", config.micro_batch_size, "completions per forward/backward")
      ->capture_default_str();
  app.add_option("--num-iterations", config.num_iterations, "updates per generation batch")
      ->capture_default_str();
  app.add_option("--max-completion-length", config.max_completion_length, "tokens per completion")
      ->capture_default_str();
  app.add_option("--temperature", config.temperature, "sampling temperature")
      ->capture_default_str();
  app.add_option("--loss-type", loss_type, "grpo, bnpo, dr_grpo or dapo")->capture_default_str();
  app.add_option("--scale-rewards", scale_rewards, "group, batch or none")->capture_default_str();
  app.add_option("--epsilon", config.loss.epsilon, "lower clip")->capture_default_str();
  app.add_option("--epsilon-high", config.loss.epsilon_high, "upper clip (0: = epsilon; DAPO 0.28)")
      ->capture_default_str();
  app.add_option("--beta", config.loss.beta, "KL coefficient (0: no reference model)")
      ->capture_default_str();
  app.add_option("--world-weight", world_weight, "weight of the world's exact reward")
      ->capture_default_str();
  app.add_option("--format-weight", format_weight, "weight of the format reward (0: off)")
      ->capture_default_str();
  app.add_option("--reward-model", reward_model_dir, "reward model dir (examples/reward)");
  app.add_option("--reward-model-weight", reward_model_weight, "weight of the reward model")
      ->capture_default_str();
  app.add_option("--lr", config.optimizer.schedule.peak_lr, "peak learning rate")
      ->capture_default_str();
  app.add_option("--schedule", schedule, "constant, linear, cosine or wsd")->capture_default_str();
  app.add_option("--warmup", config.optimizer.schedule.warmup_steps, "warmup steps")
      ->capture_default_str();
  app.add_option("--clip-norm", config.optimizer.clip_norm, "max gradient norm (0: off)")
      ->capture_default_str();
  app.add_option("--log-every", config.log_every, "steps between progress lines")
      ->capture_default_str();
  app.add_option("--checkpoint-every", config.checkpoint_every, "steps between checkpoints")
      ->capture_default_str();
  app.add_option("--keep-checkpoints", config.keep_checkpoints, "newest checkpoints kept (0: all)")
      ->capture_default_str();
  app.add_option("--seed", config.seed, "prompt order and sampling")->capture_default_str();
  app.add_option("--limit", limit, "use only the first N training prompts (0: all)");
  app.add_option("--skip-taught", skip_taught,
                 "SFT data (JSONL chats): leave out the training prompts whose answer it states");
  app.add_flag("--resume", resume, "continue from the newest checkpoint in --out");
  app.add_option("--eval-limit", eval_limit, "held-out prompts evaluated before/after (0: all)")
      ->capture_default_str();
  app.add_option("--world-seed", world_seed, "world seed (as in examples/make_world)")
      ->capture_default_str();
  app.add_flag("--tiny", tiny, "random tiny model and byte tokenizer, 4 steps (smoke test)");
  CLI11_PARSE(app, argc, argv);

  try {
    config.loss.loss_type = rl::parse_grpo_loss_type(loss_type);
    config.scale_rewards = rl::parse_scale_rewards(scale_rewards);
    config.optimizer.schedule.kind = optim::parse_schedule_kind(schedule);
    config.device = Device::parse(device);
    if (tiny) {
      config.steps = 4;
      config.prompts_per_step = 2;
      config.num_generations = 4;
      config.max_completion_length = 16;
      config.checkpoint_every = 2;
      config.optimizer.schedule.peak_lr = 1e-3f;
      eval_limit = 8;
      limit = limit == 0 ? 16 : limit;
    }
    config.loss.max_completion_length = config.max_completion_length;

    std::optional<Transformer> policy;
    std::optional<Tokenizer> tokenizer;
    if (tiny) {
      auto [model, tok] = tiny_start(config.seed + 1);
      policy.emplace(std::move(model));
      tokenizer.emplace(std::move(tok));
    } else {
      if (!fs::exists(fs::path(policy_dir) / "config.json"))
        fail(
            "grpo: no policy at {} (config.json + model.safetensors); run examples/sft first, "
            "or pass --policy DIR (or --tiny for a smoke run)",
            policy_dir);
      policy.emplace(Transformer::from_pretrained(policy_dir, config.device));
      tokenizer.emplace(Tokenizer::load(tokenizer_path.empty() ? policy_dir : tokenizer_path));
    }
    config.end_token = tokenizer->token_id(special_tokens::kEndOfTurn);

    World world(WorldConfig{.seed = world_seed});
    rl::WorldPrompts prompts = rl::world_training_prompts(world, *tokenizer,
                                      policy->config().max_seq_len - config.max_completion_length);
    if (!skip_taught.empty()) {
      const int64_t dropped =
          rl::drop_prompts_answered_in(prompts, {skip_taught.begin(), skip_taught.end()});
      std::cout << "[grpo] left out " << dropped << " prompts whose answer the SFT data states\n";
    }
    if (limit > 0 && static_cast<int64_t>(prompts.tokens.size()) > limit)
      prompts.tokens.resize(limit);

    // Reward functions. The world's scorer reads the decoded completion (special tokens kept,
    // so whether <|end|> closed the answer counts).
    const Tokenizer& tok = *tokenizer;
    auto world_score = [&prompts, &tok](const std::vector<int32_t>& prompt,
                                        const std::vector<int32_t>& completion) {
      return world::score(prompts.expected.at(prompt), tok.decode(completion));
    };
    std::vector<rl::GrpoReward> rewards;
    if (world_weight != 0.f)
      rewards.push_back(
          {"world", rl::batch_reward(rl::TokenReward([world_score](const auto& p, const auto& c) {
             return static_cast<float>(world::reward_for(world_score(p, c)));
           })),
           world_weight});
    if (format_weight != 0.f)
      rewards.push_back(
          {"format", rl::batch_reward(rl::TokenReward([world_score](const auto& p, const auto& c) {
             return world_score(p, c).format_ok ? 1.f : 0.f;
           })),
           format_weight});
    std::shared_ptr<rl::RewardModel> reward_model;
    if (!reward_model_dir.empty() && reward_model_weight != 0.f) {
      reward_model =
          std::make_shared<rl::RewardModel>(rl::RewardModel::load(reward_model_dir, config.device));
      rewards.push_back({"reward_model",
                         [reward_model](const std::vector<std::vector<int32_t>>& p,
                                        const std::vector<std::vector<int32_t>>& c) {
                           return reward_model->score(p, c, /*normalise=*/true);
                         },
                         reward_model_weight});
    }
    TILLER_CHECK(!rewards.empty(),
                 "grpo: every reward weight is 0; set --world-weight, "
                 "--format-weight or --reward-model with --reward-model-weight");

    const fs::path out(config.output_dir);
    fs::create_directories(out);
    rl::EvaluationConfig eval;
    eval.limit = eval_limit;
    eval.jsonl_path = (out / "eval_before.jsonl").string();
    rl::EvaluationReport before = evaluate_world(*policy, *tokenizer, world.eval_prompts(), eval);
    std::cout << "[grpo] eval before: " << before.summary() << "\n";

    rl::GrpoTrainer trainer(config, std::move(*policy), rewards, prompts.tokens, *tokenizer);
    if (resume) {
      auto checkpoint = rl::latest_checkpoint(out);
      TILLER_CHECK(checkpoint.has_value(), "grpo: --resume but {} holds no checkpoint",
                   out.string());
      trainer.resume(*checkpoint);
      std::cout << "[grpo] resumed from " << checkpoint->string() << " at step " << trainer.step()
                << "\n";
    }
    std::cout << "[grpo] " << prompts.tokens.size() << " prompts, " << config.steps << " steps of "
              << config.prompts_per_step << " x " << config.num_generations << " completions, loss "
              << loss_type << ", beta " << config.loss.beta << "\n";
    trainer.train();

    eval.jsonl_path = (out / "eval_after.jsonl").string();
    rl::EvaluationReport after =
        evaluate_world(trainer.policy(), *tokenizer, world.eval_prompts(), eval);
    std::cout << "[grpo] eval before: " << before.summary() << "\n"
              << "[grpo] eval after:  " << after.summary() << "\n";

    const fs::path metrics = out / "metrics.jsonl";
    rl::PlotResult plot =
        rl::plot_metrics({{.label = "reward", .metrics_path = metrics, .key = "reward"},
                          {.label = "reward std", .metrics_path = metrics, .key = "reward_std"},
                          {.label = "KL to reference", .metrics_path = metrics, .key = "kl"}},
                         out / "reward_kl.png", {.title = "GRPO: reward", .x_label = "step"});
    rl::PlotResult time_plot = rl::plot_metrics(
        {{.label = "generation", .metrics_path = metrics, .key = "generation_seconds"},
         {.label = "training", .metrics_path = metrics, .key = "training_seconds"}},
        out / "time.png",
        {.title = "GRPO: seconds per step", .x_label = "step", .y_label = "seconds"});
    std::cout << "[grpo] model in " << (out / "model").string() << "  " << plot.message << "  "
              << time_plot.message << "\n";
  } catch (const std::exception& error) {
    std::cerr << error.what() << "\n";
    return 1;
  }
  return 0;
}
