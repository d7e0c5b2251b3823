// probe: does a model know the world's facts? The likelihood probe (rl/reports/probe.h) on the
// held-out questions and on the unseen-creature control, without any chat format — so it works on
// a pretrained base as well as on an aligned model.
//
//   probe --model runs/pretrain/model
//   probe --model runs/pretrain/checkpoints/step_000600 --tokenizer runs/pretrain/model
//   probe --model runs/sft/model --entities 120 --limit 80
//
// The world flags must match the ones the model was trained with (the pipeline's defaults when
// omitted). Prints one line per item set: accuracy, creature-attribute accuracy, chance, per task.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>

#include "core/world/world.h"
#include "rl/reports/probe.h"
#include "tiller.h"

namespace fs = std::filesystem;
using namespace tiller;

int main(int argc, char** argv) {
  CLI::App app{"tiller probe: multiple-choice log-likelihood probe of the world's facts"};
  fs::path model_dir, tokenizer_path;
  std::string device = "cpu";
  WorldConfig world_config;
  rl::ProbeConfig config;
  app.add_option("--model", model_dir, "model directory (config.json + model.safetensors)")
      ->required();
  app.add_option("--tokenizer", tokenizer_path, "tokenizer.json or its folder (default: --model)");
  app.add_option("--world-seed", world_config.seed, "world seed")->capture_default_str();
  app.add_option("--entities", world_config.num_entities, "world size")->capture_default_str();
  app.add_option("--limit", config.limit, "probe only the first N held-out items (0: all)");
  app.add_option("--batch", config.batch_size, "candidate rows per forward pass")
      ->capture_default_str();
  app.add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    if (tokenizer_path.empty()) tokenizer_path = model_dir;
    if (fs::is_directory(tokenizer_path)) tokenizer_path /= "tokenizer.json";
    Tokenizer tokenizer = Tokenizer::load(tokenizer_path.string());
    Transformer model = Transformer::from_pretrained(model_dir, Device::parse(device));
    World world(world_config);
    rl::ProbeReport held_out =
        rl::probe_world(model, tokenizer, world, world.eval_prompts(), config);
    std::printf("held-out: %s  (%.1fs)\n", held_out.summary().c_str(), held_out.seconds);
    rl::ProbeReport unseen =
        rl::probe_world(model, tokenizer, world, world.unseen_prompts(), {config.batch_size, 0});
    std::printf("unseen:   %s  (%.1fs)\n", unseen.summary().c_str(), unseen.seconds);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "probe: %s\n", e.what());
    return 1;
  }
}
