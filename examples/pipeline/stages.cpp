// Child processes for the pipeline's stages (stages.h).
#include "stages.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>

#include "rl/reports/metrics.h"
#include "tiller.h"

extern char** environ;

namespace pipeline {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The last `count` non-empty lines of a file; a line ends at '\n' or '\r' (progress bars).
std::vector<std::string> last_lines(const fs::path& file, size_t count) {
  std::ifstream in(file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> lines;
  size_t end = text.size();
  while (end > 0 && lines.size() < count) {
    size_t begin = end;
    while (begin > 0 && text[begin - 1] != '\n' && text[begin - 1] != '\r') --begin;
    if (begin < end) lines.push_back(text.substr(begin, end - begin));
    end = begin == 0 ? 0 : begin - 1;
  }
  std::reverse(lines.begin(), lines.end());
  return lines;
}

// "exit code 2", "killed by signal 9": a wait status in words.
std::string exit_description(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

// environ, plus OMP_WAIT_POLICY=passive when it is not set.
std::vector<std::string> child_environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) env.emplace_back("OMP_WAIT_POLICY=passive");
  return env;
}

// Starts `sh -c command` with stdin from /dev/null and stdout + stderr to `log`.
pid_t spawn(const std::string& name, std::string command, const fs::path& log,
            std::vector<std::string>& env) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::string sh = "sh", dash_c = "-c";
  char* argv[] = {sh.data(), dash_c.data(), command.data(), nullptr};
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  const int error = posix_spawn(&pid, "/bin/sh", &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  TILLER_CHECK(error == 0, "could not start stage {}: {}", name, std::strerror(error));
  return pid;
}

void require_built(const StageCommand& stage) {
  TILLER_CHECK(fs::exists(stage.program), "stage {} needs {}, which was not built", stage.name,
               stage.program.string());
}

}  // namespace

std::string StageCommand::shell_command() const {
  std::string command = quote(program.string());
  for (const auto& a : args) {
    command += ' ';
    command += quote(a);
  }
  if (!extra.empty()) {
    command += ' ';
    command += extra;
  }
  return command;
}

double run_stage(const StageCommand& stage) {
  require_built(stage);
  const std::string command = stage.shell_command();
  std::printf("\n=== pipeline: %s ===\n$ %s\n", stage.name.c_str(), command.c_str());
  std::fflush(stdout);
  const auto start = Clock::now();
  const int status = std::system(command.c_str());
  const double seconds = seconds_since(start);
  TILLER_CHECK(status == 0, "stage {} failed ({}); its output is above", stage.name,
               exit_description(status));
  std::printf("=== pipeline: %s done in %s ===\n", stage.name.c_str(),
              tiller::rl::format_duration(seconds).c_str());
  return seconds;
}

void run_chains(const std::vector<std::vector<StageCommand>>& chains, int jobs,
                const fs::path& log_dir,
                const std::function<void(const std::string&, double)>& on_done) {
  TILLER_CHECK(jobs > 0, "--jobs must be positive, got {}", jobs);
  for (const auto& chain : chains)
    for (const StageCommand& stage : chain) require_built(stage);
  fs::create_directories(log_dir);
  std::vector<std::string> env = child_environment();
  auto log_of = [&](const std::string& name) {
    std::string file = name;
    std::replace(file.begin(), file.end(), '/', '_');
    return log_dir / (file + ".log");
  };

  struct Running {
    size_t chain = 0, next = 0;  // the chain, and the index of its stage after this one
    std::string name;
    Clock::time_point start;
  };
  std::deque<size_t> waiting;  // chains not started yet
  for (size_t c = 0; c < chains.size(); ++c)
    if (!chains[c].empty()) waiting.push_back(c);
  std::map<pid_t, Running> running;
  std::vector<std::string> failures;

  auto start = [&](size_t chain, size_t index) {
    const StageCommand& stage = chains[chain][index];
    const fs::path log = log_of(stage.name);
    std::string beside;
    for (const auto& [pid, other] : running) beside += (beside.empty() ? "" : ", ") + other.name;
    const std::string command = stage.shell_command();
    std::printf("\n=== pipeline: %s%s; output in %s ===\n$ %s\n", stage.name.c_str(),
                beside.empty() ? "" : (" (beside " + beside + ")").c_str(), log.string().c_str(),
                command.c_str());
    std::fflush(stdout);
    running[spawn(stage.name, command, log, env)] = {chain, index + 1, stage.name, Clock::now()};
  };
  auto fill = [&] {
    while (static_cast<int>(running.size()) < jobs && !waiting.empty()) {
      start(waiting.front(), 0);
      waiting.pop_front();
    }
  };

  fill();
  auto last_echo = Clock::now();
  while (!running.empty()) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    TILLER_CHECK(pid >= 0 || errno == EINTR, "waitpid failed: {}", std::strerror(errno));
    if (pid <= 0 || running.count(pid) == 0) {
      if (std::chrono::duration<double>(Clock::now() - last_echo).count() >= 20) {
        for (const auto& [p, stage] : running) {
          const auto lines = last_lines(log_of(stage.name), 1);
          std::printf("[%s %s] %s\n", stage.name.c_str(),
                      tiller::rl::format_duration(seconds_since(stage.start)).c_str(),
                      lines.empty() ? "(no output yet)" : lines[0].c_str());
        }
        std::fflush(stdout);
        last_echo = Clock::now();
      }
      usleep(200 * 1000);
      continue;
    }
    const Running done = running[pid];
    running.erase(pid);
    const double seconds = seconds_since(done.start);
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok) {
      std::printf("=== pipeline: %s done in %s ===\n", done.name.c_str(),
                  tiller::rl::format_duration(seconds).c_str());
      on_done(done.name, seconds);
      if (done.next < chains[done.chain].size()) {
        start(done.chain, done.next);
        continue;
      }
    } else {
      std::printf("=== pipeline: %s FAILED after %s (%s); the end of %s: ===\n", done.name.c_str(),
                  tiller::rl::format_duration(seconds).c_str(), exit_description(status).c_str(),
                  log_of(done.name).string().c_str());
      for (const std::string& line : last_lines(log_of(done.name), 30))
        std::printf("  %s\n", line.c_str());
      failures.push_back(done.name + " (" + log_of(done.name).string() + ")");
    }
    std::fflush(stdout);
    fill();
  }
  if (!failures.empty()) {
    std::string list;
    for (const std::string& f : failures) list += (list.empty() ? "" : ", ") + f;
    tiller::fail("stage(s) failed: {}; the stages after them were not run", list);
  }
}

}  // namespace pipeline
