// Temporary file + fsync + rename + directory fsync (see atomic_file.h).
//
// The temporary name is "<name>.tmp-<random>" beside the target, created with O_EXCL, so
// concurrent writers of the same path never share a temporary file; the last rename wins.
#include "core/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <utility>

#include "kernels/error.h"

namespace tiller {
namespace {

std::string errno_text(int error) {
  return fmt::format("{} (errno {})", std::strerror(error), error);
}

// Closes and unlinks the temporary file unless released: the cleanup path when anything throws.
class TemporaryFile {
 public:
  TemporaryFile(std::FILE* file, std::string path) : file_(file), path_(std::move(path)) {}
  ~TemporaryFile() {
    if (file_) std::fclose(file_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;

  std::FILE* file() const { return file_; }
  const std::string& path() const { return path_; }
  // fclose reports deferred write errors, so its result matters: the caller checks it.
  int close() {
    int result = std::fclose(file_);
    file_ = nullptr;
    return result;
  }
  void keep() { path_.clear(); }

 private:
  std::FILE* file_;
  std::string path_;
};

std::string random_suffix() {
  static std::atomic<uint64_t> counter{0};
  thread_local std::random_device entropy;
  uint64_t high = entropy(), low = entropy();
  return fmt::format("{:016x}", ((high << 32) | low) ^ counter++);
}

// A collision needs a concurrent writer drawing the same 64-bit suffix; retrying covers it anyway.
constexpr int kTemporaryNameAttempts = 64;

// Creates "<directory>/<name>.tmp-<random>" exclusively. open() with mode 0666 lets the umask
// decide permissions, as for any new file (mkstemp would force 0600).
std::pair<int, std::string> create_temporary(const std::filesystem::path& directory,
                                             const std::string& name, const std::string& shown) {
  for (int attempt = 0; attempt < kTemporaryNameAttempts; ++attempt) {
    std::string candidate = (directory / (name + ".tmp-" + random_suffix())).string();
    int descriptor = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (descriptor >= 0) return {descriptor, candidate};
    if (errno != EEXIST) {
      fail("write_file_atomic {}: cannot create a temporary file in {}: {}", shown,
           directory.string(), errno_text(errno));
    }
  }
  fail("write_file_atomic {}: no free temporary name in {} after {} attempts", shown,
       directory.string(), kTemporaryNameAttempts);
}

}  // namespace

void FileSink::write(const void* data, size_t bytes) {
  if (bytes == 0) return;
  size_t written = std::fwrite(data, 1, bytes, file_);
  if (written != bytes) {
    fail("write_file_atomic {}: wrote {} of {} bytes at offset {}: {}", shown_path_.string(),
         written, bytes, bytes_written_, errno_text(errno));
  }
  bytes_written_ += bytes;
}

void write_file_atomic(const std::filesystem::path& path, std::string_view bytes) {
  write_file_atomic(path, [bytes](FileSink& sink) { sink.write(bytes); });
}

void write_file_atomic(const std::filesystem::path& path,
                       const std::function<void(FileSink&)>& writer) {
  const std::string shown = path.string();
  TILLER_CHECK(!path.filename().empty(), "write_file_atomic {}: path names no file", shown);
  std::filesystem::path directory = path.parent_path();
  if (directory.empty()) directory = ".";

  auto [descriptor, temporary_path] = create_temporary(directory, path.filename().string(), shown);
  std::FILE* file = ::fdopen(descriptor, "wb");
  if (!file) {
    int error = errno;
    ::close(descriptor);
    ::unlink(temporary_path.c_str());
    fail("write_file_atomic {}: fdopen failed: {}", shown, errno_text(error));
  }
  TemporaryFile temporary(file, temporary_path);

  FileSink sink(file, path);
  writer(sink);

  if (std::fflush(file) != 0)
    fail("write_file_atomic {}: fflush failed: {}", shown, errno_text(errno));
  if (::fsync(descriptor) != 0)
    fail("write_file_atomic {}: fsync failed: {}", shown, errno_text(errno));
  if (temporary.close() != 0)
    fail("write_file_atomic {}: fclose failed: {}", shown, errno_text(errno));
  if (std::rename(temporary.path().c_str(), shown.c_str()) != 0) {
    fail("write_file_atomic {}: rename from {} failed: {}", shown, temporary.path(),
         errno_text(errno));
  }
  temporary.keep();
  fsync_directory(directory);
}

std::filesystem::path create_temporary_directory(const std::filesystem::path& beside,
                                                 const std::string& tag) {
  std::filesystem::path parent = beside.parent_path();
  if (parent.empty()) parent = ".";
  for (int attempt = 0; attempt < kTemporaryNameAttempts; ++attempt) {
    std::filesystem::path candidate =
        parent / (beside.filename().string() + "." + tag + "-" + random_suffix());
    if (::mkdir(candidate.c_str(), 0777) == 0) return candidate;
    if (errno != EEXIST) {
      fail("create_temporary_directory {}: mkdir {} failed: {}", beside.string(),
           candidate.string(), errno_text(errno));
    }
  }
  fail("create_temporary_directory {}: no free name after {} attempts", beside.string(),
       kTemporaryNameAttempts);
}

void fsync_directory(const std::filesystem::path& directory) {
  int descriptor = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY);
  if (descriptor < 0) {
    fail("fsync_directory {}: open failed: {}", directory.string(), errno_text(errno));
  }
  int result = ::fsync(descriptor);
  int error = errno;
  ::close(descriptor);
  // Some filesystems do not support fsync on directories; the rename is then as durable as it gets.
  if (result != 0 && error != EINVAL && error != ENOTSUP) {
    fail("fsync_directory {}: fsync failed: {}", directory.string(), errno_text(error));
  }
}

std::string read_file_bytes(const std::filesystem::path& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) fail("read_file_bytes {}: cannot open: {}", path.string(), errno_text(errno));
  std::string bytes;
  char buffer[1 << 16];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof(buffer), file)) > 0) bytes.append(buffer, got);
  bool failed = std::ferror(file) != 0;
  int error = errno;
  std::fclose(file);
  if (failed) fail("read_file_bytes {}: read failed: {}", path.string(), errno_text(error));
  return bytes;
}

}  // namespace tiller
