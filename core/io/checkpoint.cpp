// Checkpoint directories (layout and guarantees in checkpoint.h).
//
// Replacing a directory atomically: rename(2) cannot replace a non-empty directory, so the new
// directory is swapped with the old one by renameat2(RENAME_EXCHANGE) and the old contents, now
// under the temporary name, are deleted afterwards. Filesystems without RENAME_EXCHANGE get a
// two-step fallback (old aside, new into place, old deleted) that restores the old directory if
// the second rename fails; only a crash between those two renames leaves <dir> missing, with the
// previous checkpoint intact under "<dir>.old-<random>".
#include "core/io/checkpoint.h"

#include <fcntl.h>
#include <stdio.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/io/atomic_file.h"

namespace tiller {
namespace {

using nlohmann::json;

constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kConfigFile = "config.json";
constexpr const char* kTrainerTensorsFile = "trainer_state.safetensors";
constexpr const char* kTrainerJsonFile = "trainer_state.json";

// "runs/step-100/" and "runs/step-100" name the same directory; the rename logic needs the latter.
std::filesystem::path without_trailing_separator(const std::filesystem::path& dir) {
  std::filesystem::path normal = dir.lexically_normal();
  if (normal.filename().empty() && normal.has_parent_path()) normal = normal.parent_path();
  return normal;
}

// Parses and re-indents, so every config.json tiller writes reads the same way.
std::string pretty_json_object(const std::string& text, const std::string& what,
                               const std::filesystem::path& dir) {
  json value;
  try {
    value = json::parse(text);
  } catch (const json::exception& error) {
    fail("save_checkpoint {}: {} is not valid JSON: {}", dir.string(), what, error.what());
  }
  TILLER_CHECK(value.is_object(), "save_checkpoint {}: {} is a JSON {}, expected an object",
               dir.string(), what, value.type_name());
  return value.dump(2) + "\n";
}

// Deletes the directory on scope exit unless released; never throws (runs during unwinding).
class DirectoryCleanup {
 public:
  explicit DirectoryCleanup(std::filesystem::path path) : path_(std::move(path)) {}
  ~DirectoryCleanup() {
    if (path_.empty()) return;
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  DirectoryCleanup(const DirectoryCleanup&) = delete;
  DirectoryCleanup& operator=(const DirectoryCleanup&) = delete;
  void release() { path_.clear(); }

 private:
  std::filesystem::path path_;
};

void check_replaceable(const std::filesystem::path& dir) {
  std::error_code error;
  auto status = std::filesystem::symlink_status(dir, error);
  if (!std::filesystem::exists(status)) return;
  TILLER_CHECK(std::filesystem::is_directory(status),
               "save_checkpoint {}: exists and is not a directory", dir.string());
  bool empty = std::filesystem::is_empty(dir, error);
  TILLER_CHECK(!error, "save_checkpoint {}: cannot list it: {}", dir.string(), error.message());
  bool looks_like_checkpoint = empty || std::filesystem::exists(dir / kConfigFile) ||
                               std::filesystem::exists(dir / kModelFile);
  TILLER_CHECK(looks_like_checkpoint,
               "save_checkpoint {}: exists and holds neither {} nor {}; refusing to replace a "
               "directory that is not a checkpoint",
               dir.string(), kConfigFile, kModelFile);
}

void rename_or_fail(const std::filesystem::path& from, const std::filesystem::path& to,
                    const std::filesystem::path& dir) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    fail("save_checkpoint {}: rename {} -> {} failed: {}", dir.string(), from.string(), to.string(),
         std::strerror(errno));
  }
}

// Puts the finished `staged` directory at `dir`; on return `staged` no longer exists.
void move_into_place(const std::filesystem::path& staged, const std::filesystem::path& dir) {
  if (!std::filesystem::exists(std::filesystem::symlink_status(dir))) {
    rename_or_fail(staged, dir, dir);
    return;
  }
  if (::renameat2(AT_FDCWD, staged.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) {
    std::error_code ignored;  // a leftover old copy is harmless; the new checkpoint is in place
    std::filesystem::remove_all(staged, ignored);  // now holds the previous checkpoint
    return;
  }
  int error = errno;
  if (error != EINVAL && error != ENOSYS && error != ENOTSUP) {
    fail("save_checkpoint {}: exchanging {} with it failed: {}", dir.string(), staged.string(),
         std::strerror(error));
  }
  std::filesystem::path previous = create_temporary_directory(dir, "old");
  std::filesystem::remove(previous);  // only its unique name is wanted: rename needs no target
  rename_or_fail(dir, previous, dir);
  if (std::rename(staged.c_str(), dir.c_str()) != 0) {
    int move_error = errno;
    std::rename(previous.c_str(), dir.c_str());
    fail("save_checkpoint {}: rename {} into place failed: {}", dir.string(), staged.string(),
         std::strerror(move_error));
  }
  std::error_code ignored;
  std::filesystem::remove_all(previous, ignored);
}

std::string read_json_object(const std::filesystem::path& dir, const char* file) {
  std::string text = read_file_bytes(dir / file);
  json value;
  try {
    value = json::parse(text);
  } catch (const json::exception& error) {
    fail("checkpoint {}: {} is not valid JSON: {}", dir.string(), file, error.what());
  }
  TILLER_CHECK(value.is_object(), "checkpoint {}: {} is a JSON {}, expected an object",
               dir.string(), file, value.type_name());
  return text;
}

}  // namespace

void save_checkpoint(const std::filesystem::path& requested_dir,
                     const safetensors::NamedTensors& tensors, const std::string& config_json,
                     const std::optional<TrainerState>& trainer_state) {
  const std::filesystem::path dir = without_trailing_separator(requested_dir);
  std::string config = pretty_json_object(config_json, kConfigFile, dir);
  std::string trainer_json;
  if (trainer_state) trainer_json = pretty_json_object(trainer_state->json, kTrainerJsonFile, dir);

  if (dir.has_parent_path()) {
    std::error_code error;
    std::filesystem::create_directories(dir.parent_path(), error);
    TILLER_CHECK(!error, "save_checkpoint {}: cannot create {}: {}", dir.string(),
                 dir.parent_path().string(), error.message());
  }
  check_replaceable(dir);

  std::filesystem::path staged = create_temporary_directory(dir, "tmp");
  DirectoryCleanup cleanup(staged);
  safetensors::save(staged / kModelFile, tensors);
  write_file_atomic(staged / kConfigFile, config);
  if (trainer_state) {
    safetensors::save(staged / kTrainerTensorsFile, trainer_state->tensors);
    write_file_atomic(staged / kTrainerJsonFile, trainer_json);
  }
  fsync_directory(staged);
  move_into_place(staged, dir);
  cleanup.release();
  fsync_directory(dir.has_parent_path() ? dir.parent_path() : std::filesystem::path("."));
}

Checkpoint load_checkpoint(const std::filesystem::path& requested_dir, Device device) {
  const std::filesystem::path dir = without_trailing_separator(requested_dir);
  TILLER_CHECK(std::filesystem::is_directory(dir), "checkpoint {}: not a directory", dir.string());
  for (const char* required : {kModelFile, kConfigFile}) {
    TILLER_CHECK(std::filesystem::exists(dir / required), "checkpoint {}: {} is missing",
                 dir.string(), required);
  }
  bool has_trainer_tensors = std::filesystem::exists(dir / kTrainerTensorsFile);
  bool has_trainer_json = std::filesystem::exists(dir / kTrainerJsonFile);
  TILLER_CHECK(has_trainer_tensors == has_trainer_json,
               "checkpoint {}: has {} but not {}; the trainer state is incomplete", dir.string(),
               has_trainer_tensors ? kTrainerTensorsFile : kTrainerJsonFile,
               has_trainer_tensors ? kTrainerJsonFile : kTrainerTensorsFile);

  Checkpoint checkpoint;
  checkpoint.dir = dir;
  const std::string source = fmt::format("checkpoint {}", dir.string());
  checkpoint.tensors =
      CheckpointTensors(source, safetensors::load(dir / kModelFile, device).tensors);
  checkpoint.config_json = read_json_object(dir, kConfigFile);
  if (has_trainer_tensors) {
    checkpoint.has_trainer_state = true;
    checkpoint.trainer_tensors = CheckpointTensors(
        source + " (trainer state)", safetensors::load(dir / kTrainerTensorsFile, device).tensors);
    checkpoint.trainer_json = read_json_object(dir, kTrainerJsonFile);
  }
  return checkpoint;
}

const Tensor& CheckpointTensors::get(const std::string& name) const {
  auto found = tensors_.find(name);
  TILLER_CHECK(found != tensors_.end(), "{}: no tensor named {} (it holds {} tensors)", source_,
               name, tensors_.size());
  return found->second;
}

const Tensor& CheckpointTensors::get(const std::string& name, const Shape& expected_shape) const {
  const Tensor& tensor = get(name);
  TILLER_CHECK(tensor.shape() == expected_shape, "{}: tensor {} is {} but the model expects {}",
               source_, name, shape_str(tensor.shape()), shape_str(expected_shape));
  return tensor;
}

void CheckpointTensors::copy_into(const std::string& name, Tensor& destination) const {
  TILLER_CHECK(destination.defined(), "{}: copy_into {}: the destination tensor is undefined",
               source_, name);
  destination.copy_(get(name, destination.shape()));
}

}  // namespace tiller
