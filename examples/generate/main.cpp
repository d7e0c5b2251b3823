// generate: complete prompts with a saved model — plain text continuation or chat.
//
//   generate --model runs/sft/model --chat --prompt "What is Zorvik's colour?"
//   generate --model runs/pretrain/model --prompt "Zorvik lives in" --temperature 0.8 --top-p 0.9
//
// All prompts run as one left-padded batch (rl/generate.h), so their outputs are the same as when
// each is run alone. --chat wraps each prompt as one user turn with the chat template
// (core/chat.h) and stops at <|end|>; without it the prompt is encoded as given (special tokens
// such as <|endoftext|> allowed) and generation stops at <|endoftext|>.
//
// Few-shot (in-context learning, rl/reports/few_shot.h): --shots k puts k solved training questions
// of the built-in world (--world-seed, --entities) before each prompt, as chat turns or as plain
// "Q: ... A: ..." quiz lines (--shot-format, default chat with --chat, plain without), ordered and
// mixed by --shot-order / --shot-mix; a prompt that is one of the world's questions gets shots of
// its own task but never its own fact. Shots that would not fit are dropped from the front.
//   generate --model runs/pretrain/model --shots 4 --prompt "What colour is Zorvik?"
#include <CLI/CLI.hpp>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "core/text/chat.h"
#include "core/text/special_tokens.h"
#include "core/world/world.h"
#include "kernels/error.h"
#include "rl/generation/generate.h"
#include "rl/reports/few_shot.h"

int main(int argc, char** argv) {
  using namespace tiller;
  CLI::App app{"Generate completions with a tiller / Hugging Face model directory"};
  std::string model_dir, tokenizer_path, device = "cpu";
  std::vector<std::string> prompts;
  bool chat = false, no_cache = false;
  rl::GenerationConfig config;
  config.max_new_tokens = 64;
  config.sampling.temperature = 0.f;
  app.add_option("--model", model_dir, "model directory (config.json + model.safetensors)")
      ->required();
  app.add_option("--tokenizer", tokenizer_path, "tokenizer file or directory (default: --model)");
  app.add_option("--prompt", prompts, "a prompt (repeat for a batch)")->required();
  app.add_flag("--chat", chat, "wrap prompts in the chat template, stop at <|end|>");
  app.add_option("--max-new-tokens", config.max_new_tokens, "tokens per completion")
      ->capture_default_str();
  app.add_option("--temperature", config.sampling.temperature, "0 = greedy")->capture_default_str();
  app.add_option("--top-k", config.sampling.top_k, "keep the k likeliest (0: all)");
  app.add_option("--top-p", config.sampling.top_p, "nucleus mass (1: all)");
  app.add_option("--seed", config.seed, "sampling seed");
  app.add_flag("--no-cache", no_cache, "recompute the whole sequence every step");
  app.add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  rl::FewShotOptions shots;
  std::string shot_format, shot_order = "random", shot_mix = "same-task";
  WorldConfig world_config;
  app.add_option("--shots", shots.shots, "solved world examples before each prompt");
  app.add_option("--shot-format", shot_format, "chat or plain (default: chat with --chat)");
  app.add_option("--shot-order", shot_order, "random, same-task-first or same-task-last")
      ->capture_default_str();
  app.add_option("--shot-mix", shot_mix, "same-task or mixed-tasks")->capture_default_str();
  app.add_option("--shot-seed", shots.seed, "seed of the shot draws");
  app.add_option("--world-seed", world_config.seed, "world the shots come from");
  app.add_option("--entities", world_config.num_entities, "world size");
  CLI11_PARSE(app, argc, argv);

  try {
    config.use_cache = !no_cache;
    Transformer model = Transformer::from_pretrained(model_dir, Device::parse(device));
    Tokenizer tokenizer = Tokenizer::load(tokenizer_path.empty() ? model_dir : tokenizer_path);
    TILLER_CHECK(tokenizer.vocab_size() <= model.config().vocab_size,
                 "generate: the tokenizer has {} ids but the model only {}", tokenizer.vocab_size(),
                 model.config().vocab_size);

    std::vector<std::vector<int32_t>> ids;
    shots.format =
        rl::parse_shot_format(shot_format.empty() ? (chat ? "chat" : "plain") : shot_format);
    shots.order = rl::parse_shot_order(shot_order);
    shots.mix = rl::parse_shot_mix(shot_mix);
    if (shots.shots > 0) {
      const World world(world_config);
      const auto pool = rl::world_shot_pool(world);
      const int64_t room = model.config().max_seq_len - config.max_new_tokens;
      for (size_t i = 0; i < prompts.size(); ++i) {
        std::string task, key;  // the prompt's own world question, when it is one
        for (const auto& item : world.eval_prompts()) {
          if (item.question.text != prompts[i]) continue;
          task = world::task_name(item.question.expected.task);
          key = item.question.expected.key;
        }
        auto chosen = rl::select_shots(pool, task, key, shots, i);
        auto prompt = rl::render_few_shot_prompt(tokenizer, chosen, prompts[i], shots.format, room);
        if (prompt.shots_dropped > 0)
          std::cout << "notice: prompt " << i << ": " << prompt.shots_dropped
                    << " shots dropped from the front to fit " << room << " tokens\n";
        ids.push_back(prompt.tokens);
      }
      config.stop_tokens = rl::few_shot_stop_tokens(tokenizer, shots.format);
    } else {
      for (const std::string& prompt : prompts) {
        ids.push_back(chat ? render_generation_prompt(tokenizer, {{"user", prompt}})
                           : tokenizer.encode(prompt, /*allow_special=*/true));
        TILLER_CHECK(!ids.back().empty(), "generate: prompt {} encodes to no tokens", ids.size());
      }
      const std::string_view stop = chat ? special_tokens::kEndOfTurn : special_tokens::kEndOfText;
      if (tokenizer.has_added_token(stop)) config.stop_tokens = {tokenizer.token_id(stop)};
    }

    const auto start = std::chrono::steady_clock::now();
    rl::GenerationResult result = rl::generate(model, ids, config);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    for (size_t i = 0; i < prompts.size(); ++i) {
      std::vector<int32_t> tokens = result.tokens[i];
      if (result.stopped[i]) tokens.pop_back();  // show the text, not the stop marker
      std::cout << "--- prompt " << i << ": " << prompts[i] << "\n"
                << tokenizer.decode(tokens) << (result.stopped[i] ? "" : " [length]") << "\n";
    }
    std::cout << "--- " << result.generated_tokens << " tokens in " << seconds << " s ("
              << static_cast<double>(result.generated_tokens) / seconds << " tokens/s, "
              << (config.use_cache ? "KV cache" : "no cache") << ", batch " << prompts.size()
              << ")\n";
  } catch (const std::exception& error) {
    std::cerr << "generate: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
