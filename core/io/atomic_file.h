// Crash-safe file writes: a reader of `path` sees either the old file or the complete new one.
//
// write_file_atomic writes into a temporary file in the same directory (rename is only atomic
// within one filesystem), flushes and fsyncs it, renames it over `path`, then fsyncs the directory
// so the rename itself survives a power loss. If the writer throws, the temporary file is removed
// and the previous `path` is left untouched.
//
// Invariant: every error is a tiller::Error naming the file and the failing call with errno text.
#pragma once

#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace tiller {

// Where a writer callback puts its bytes. Each write either completes or throws.
class FileSink {
 public:
  FileSink(std::FILE* file, std::filesystem::path shown_path)
      : file_(file), shown_path_(std::move(shown_path)) {}

  void write(const void* data, size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  size_t bytes_written() const { return bytes_written_; }

 private:
  std::FILE* file_;
  std::filesystem::path
      shown_path_;  // the destination path, so errors name what the user asked for
  size_t bytes_written_ = 0;
};

void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);
void write_file_atomic(const std::filesystem::path& path,
                       const std::function<void(FileSink&)>& writer);

// Creates a new, empty directory "<beside>.<tag>-<random>" next to `beside` (same filesystem, so
// it can later be renamed over `beside`). Permissions follow the umask.
std::filesystem::path create_temporary_directory(const std::filesystem::path& beside,
                                                 const std::string& tag);

// fsync on a directory, so that entries created or renamed in it are durable.
void fsync_directory(const std::filesystem::path& directory);

// The whole file as bytes; errors name the file.
std::string read_file_bytes(const std::filesystem::path& path);

}  // namespace tiller
