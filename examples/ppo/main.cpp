// ppo: RLHF with PPO on the built-in world — the SFT policy is optimised against the reward model
// (or the world's exact, verifiable reward) with a KL penalty to its frozen SFT copy, evaluated on
// the held-out prompts before and after.
//
//   ppo                                  # runs/sft/model + runs/reward/model -> runs/ppo
//   ppo --reward world                   # verifiable reward: world::reward_for(world::score(...))
//   ppo --policy DIR --reward-model DIR --iterations 50 --kl-target 6 --out runs/ppo_adaptive
//
// Prompts are the world's training preference prompts (never an eval key), rendered with the chat
// template; responses end at <|end|>. With a reward model, the critic starts from the reward
// model's backbone and head, and scores are normalised with the statistics saved beside it.
// Outputs in --out: metrics.jsonl, checkpoints/step_*/, policy/ (HF dir + tokenizer.json),
// eval_before.jsonl, eval_after.jsonl, reward_kl.png (+ .dat/.gp).
#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include "core/text/chat.h"
#include "kernels/error.h"
#include "core/world/world.h"
#include "rl/data/world_data.h"
#include "rl/reports/evaluate.h"
#include "rl/reports/plot.h"
#include "rl/trainers/ppo.h"
#include "rl/heads/reward.h"

namespace {

namespace fs = std::filesystem;
using namespace tiller;

struct Flags {
  std::string policy_dir = "runs/sft/model";
  std::string reward_dir = "runs/reward/model";
  std::string reward = "model";  // "model" or "world"
  std::string tokenizer_path;    // default: the policy directory
  std::string kl_estimator = "k1";
  std::vector<std::string> skip_taught;  // SFT data files: leave out the facts they answer
  bool normalise_scores = true;
  int64_t eval_limit = 96;
  int64_t eval_max_new_tokens = 48;
  uint64_t world_seed = 1;
  std::string device = "cpu";
};

// The defaults of this example: a few minutes on two CPU cores for the ~1M-parameter models the
// earlier examples train. Policy updates are small (KL penalty 0.05, lr 2e-5) so the policy
// improves without drifting into text the reward model has never seen.
rl::PpoConfig example_defaults() {
  rl::PpoConfig config;
  config.iterations = 40;
  config.rollout_batch_size = 32;
  config.minibatch_size = 16;
  config.micro_batch_size = 8;
  config.ppo_epochs = 2;
  config.max_new_tokens = 40;
  config.temperature = 0.7f;
  config.kl_coef = 0.05f;
  config.policy_optimizer.schedule.peak_lr = 2e-5f;
  config.value_optimizer.schedule.peak_lr = 1e-4f;
  config.checkpoint_every = 20;
  config.output_dir = "runs/ppo";
  return config;
}

void require_checkpoint(const fs::path& dir, const std::string& what, const std::string& hint) {
  if (!fs::exists(dir / "config.json") || !fs::exists(dir / "model.safetensors"))
    fail("ppo: no {} at {} (config.json + model.safetensors); {}", what, dir.string(), hint);
}


rl::KLEstimator parse_estimator(const std::string& name) {
  if (name == "k1") return rl::KLEstimator::k1;
  if (name == "k3") return rl::KLEstimator::k3;
  fail("ppo: --kl-estimator must be k1 or k3, got '{}'", name);
}

void print_report(const char* label, const rl::EvaluationReport& report) {
  std::cout << "[ppo] eval " << label << ": " << report.summary() << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"PPO (RLHF) of an SFT policy on the built-in world"};
  Flags flags;
  rl::PpoConfig config = example_defaults();
  app.add_option("--policy", flags.policy_dir, "SFT checkpoint (HF dir)")->capture_default_str();
  app.add_option("--reward-model", flags.reward_dir, "reward model dir (examples/reward)")
      ->capture_default_str();
  app.add_option("--reward", flags.reward, "model (reward model) or world (verifiable reward)")
      ->capture_default_str();
  app.add_option("--device", flags.device, "cpu or cuda[:N]")->capture_default_str();
  app.add_option("--tokenizer", flags.tokenizer_path, "tokenizer (default: the policy dir)");
  app.add_option("--out", config.output_dir, "output folder")->capture_default_str();
  app.add_option("--iterations", config.iterations, "PPO iterations")->capture_default_str();
  app.add_option("--rollout-batch", config.rollout_batch_size, "prompts per iteration")
      ->capture_default_str();
  app.add_option("--minibatch", config.minibatch_size, "rollouts per optimizer step")
      ->capture_default_str();
  app.add_option("--micro-batch", config.micro_batch_size, "rollouts per forward/backward")
      ->capture_default_str();
  app.add_option("--epochs", config.ppo_epochs, "PPO epochs per rollout batch")
      ->capture_default_str();
  app.add_option("--max-new-tokens", config.max_new_tokens, "response length limit")
      ->capture_default_str();
  app.add_option("--temperature", config.temperature, "sampling temperature")
      ->capture_default_str();
  app.add_option("--missing-end-penalty", config.missing_end_penalty,
                 "score lost by a response without <|end|>")
      ->capture_default_str();
  app.add_option("--kl-coef", config.kl_coef, "initial KL coefficient")->capture_default_str();
  app.add_option("--kl-target", config.kl_target, "adaptive KL target (0: fixed coefficient)");
  app.add_option("--kl-estimator", flags.kl_estimator, "k1 or k3")->capture_default_str();
  app.add_option("--gamma", config.gamma, "discount")->capture_default_str();
  app.add_option("--lambda", config.lambda, "GAE lambda")->capture_default_str();
  app.add_option("--clip-range", config.clip_range, "policy ratio clip")->capture_default_str();
  app.add_option("--vf-coef", config.vf_coef, "value loss weight")->capture_default_str();
  app.add_option("--lr", config.policy_optimizer.schedule.peak_lr, "policy learning rate")->capture_default_str();
  app.add_option("--value-lr", config.value_optimizer.schedule.peak_lr, "value model learning rate")->capture_default_str();
  app.add_flag("--whiten-rewards", config.whiten_rewards, "whiten shaped rewards (TRL)");
  app.add_flag("!--no-normalise-scores", flags.normalise_scores,
               "use raw reward-model scores instead of the saved mean/std");
  app.add_option("--checkpoint-every", config.checkpoint_every,
                 "iterations between resumable checkpoints")
      ->capture_default_str();
  app.add_option("--keep-checkpoints", config.keep_checkpoints,
                 "newest periodic checkpoints kept (0: all; the final policy is never pruned)")
      ->capture_default_str();
  bool resume = false;
  app.add_flag("--resume", resume, "continue from the newest checkpoint in --out");
  app.add_option("--seed", config.seed, "prompt order and sampling")->capture_default_str();
  app.add_option("--skip-taught", flags.skip_taught,
                 "SFT data (JSONL chats): leave out the training prompts whose answer it states");
  app.add_option("--eval-limit", flags.eval_limit, "held-out prompts evaluated (0: all)")
      ->capture_default_str();
  app.add_option("--world-seed", flags.world_seed, "world seed (as in examples/make_world)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    config.kl_estimator = parse_estimator(flags.kl_estimator);
    TILLER_CHECK(flags.reward == "model" || flags.reward == "world",
                 "ppo: --reward must be model or world, got '{}'", flags.reward);
    const bool use_reward_model = flags.reward == "model";
    require_checkpoint(flags.policy_dir, "SFT policy",
                       "run examples/sft first, or pass --policy DIR");
    if (use_reward_model)
      require_checkpoint(flags.reward_dir, "reward model",
                         "run examples/reward first, pass --reward-model DIR, or use --reward "
                         "world for the verifiable reward");

    const Device device = Device::parse(flags.device);
    Transformer policy = Transformer::from_pretrained(flags.policy_dir, device);
    const std::string tokenizer_path =
        flags.tokenizer_path.empty() ? flags.policy_dir : flags.tokenizer_path;
    Tokenizer tokenizer = Tokenizer::load(tokenizer_path);
    config.end_token = tokenizer.token_id(special_tokens::kEndOfTurn);

    World world(WorldConfig{.seed = flags.world_seed});
    rl::WorldPrompts prompts = rl::world_training_prompts(
        world, tokenizer, policy.config().max_seq_len - config.max_new_tokens);
    if (!flags.skip_taught.empty()) {
      const int64_t dropped = rl::drop_prompts_answered_in(
          prompts, {flags.skip_taught.begin(), flags.skip_taught.end()});
      std::cout << "[ppo] left out " << dropped << " prompts whose answer the SFT data states\n";
    }
    std::cout << "[ppo] " << prompts.tokens.size() << " training prompts, policy "
              << policy.num_parameters() << " parameters, reward " << flags.reward << "\n";

    std::shared_ptr<rl::RewardModel> reward_model;
    rl::BatchReward reward;
    if (use_reward_model) {
      reward_model = std::make_shared<rl::RewardModel>(rl::RewardModel::load(flags.reward_dir, device));
      const bool normalise = flags.normalise_scores;
      reward = [reward_model, normalise](const std::vector<std::vector<int32_t>>& p,
                                         const std::vector<std::vector<int32_t>>& r) {
        return reward_model->score(p, r, normalise);
      };
    } else {
      reward = rl::batch_reward(
          rl::TokenReward([&prompts, &tokenizer](const std::vector<int32_t>& prompt,
                                                 const std::vector<int32_t>& response) {
            const world::Expected& expected = prompts.expected.at(prompt);
            return static_cast<float>(
                world::reward_for(world::score(expected, tokenizer.decode(response))));
          }));
    }

    rl::EvaluationConfig eval;
    eval.max_new_tokens = flags.eval_max_new_tokens;
    eval.limit = flags.eval_limit;
    if (reward_model)
      eval.scorer = [&](const std::vector<ChatMessage>& prompt, const std::string& response) {
        return static_cast<double>(reward_model
                                       ->score(tokenizer, {world::render_prompt(prompt)},
                                               {response}, flags.normalise_scores)
                                       .front());
      };
    const fs::path out(config.output_dir);
    fs::create_directories(out);
    eval.jsonl_path = (out / "eval_before.jsonl").string();
    rl::EvaluationReport before = evaluate_world(policy, tokenizer, world.eval_prompts(), eval);
    print_report("before", before);

    rl::ValueModel value =
        reward_model ? rl::ValueModel(reward_model->backbone(), reward_model->head_weight(),
                                      reward_model->head_bias())
                     : rl::ValueModel::from_backbone(policy);
    rl::PpoTrainer trainer(config, std::move(policy), std::move(value), reward, prompts.tokens);
    trainer.set_tokenizer(tokenizer);
    if (resume) {
      auto checkpoint = rl::latest_checkpoint(out, "policy");
      TILLER_CHECK(checkpoint.has_value(), "ppo: --resume but {} holds no checkpoint",
                   out.string());
      trainer.resume(*checkpoint);
      std::cout << "[ppo] resumed from " << checkpoint->string() << " at iteration "
                << trainer.iteration() << "\n";
    }
    trainer.train();

    eval.jsonl_path = (out / "eval_after.jsonl").string();
    rl::EvaluationReport after =
        evaluate_world(trainer.policy(), tokenizer, world.eval_prompts(), eval);
    print_report("before", before);
    print_report("after ", after);

    const fs::path metrics = out / "metrics.jsonl";
    rl::PlotResult plot = rl::plot_metrics(
        {{.label = "score", .metrics_path = metrics, .key = "objective/scores"},
         {.label = "rlhf reward", .metrics_path = metrics, .key = "objective/rlhf_reward"},
         {.label = "KL to reference", .metrics_path = metrics, .key = "objective/kl"}},
        out / "reward_kl.png",
        {.title = "PPO: reward and KL", .x_label = "iteration", .y_label = "per sequence"});
    std::cout << "[ppo] policy in " << (out / "policy").string() << "  " << plot.message << "\n";
  } catch (const std::exception& error) {
    std::cerr << error.what() << "\n";
    return 1;
  }
  return 0;
}
