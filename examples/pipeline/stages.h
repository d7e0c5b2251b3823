// The pipeline's stages as child processes: one at a time with its output on the terminal, or
// independent chains of stages side by side with each stage's output in a log file.
//
// Why side by side: the preference stages (reward model -> PPO, and DPO -> GRPO, which need only
// the SFT model) and the ablation's SFT runs keep 1.1-1.5 of two cores busy when run alone
// (generation and small ops), so two of them at once finish sooner than one after the other:
// on the development machine reward + PPO beside DPO + GRPO took 140 s against 191 s in turn.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace pipeline {

// One stage: a sibling program and its arguments.
struct StageCommand {
  std::string name;  // "reward", "ablation/random_1k"
  std::filesystem::path program;
  std::vector<std::string> args;  // each one quoted for the shell
  std::string extra;              // the user's flags for the stage, appended as shell words
  std::string shell_command() const;
};

// Runs the stage with its output on this terminal; returns its seconds. Throws tiller::Error
// naming the stage when it fails.
double run_stage(const StageCommand& stage);

// Runs each chain's stages in order, `jobs` chains at a time, each stage's output going to
// log_dir/<name>.log ('/' in a name becomes '_'); every 20 s the last line of each running
// stage's log is echoed, and `on_done(name, seconds)` is called as each stage finishes (seconds
// of wall time while sharing the machine). The children get OMP_WAIT_POLICY=passive unless it is
// set: OpenMP threads spinning in one process would take the cores the other one needs. When a
// stage fails, the rest of its chain is not started, the other chains go on, and then
// tiller::Error names the failed stages and their logs (whose last lines are printed).
void run_chains(const std::vector<std::vector<StageCommand>>& chains, int jobs,
                const std::filesystem::path& log_dir,
                const std::function<void(const std::string&, double)>& on_done);

}  // namespace pipeline
