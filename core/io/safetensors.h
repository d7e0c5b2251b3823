// Reading and writing the safetensors format (https://github.com/huggingface/safetensors), the
// file format Hugging Face checkpoints use.
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON header, then the raw data.
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end)} (offsets
// relative to the start of the data) plus an optional "__metadata__" string-to-string map. Like
// Hugging Face's writer, the header is padded with spaces so the data starts on an 8-byte boundary.
//
// Dtypes: F32, BF16 and I32 load as themselves; F16 and F64 (common in published checkpoints) load
// converted to f32. Anything else is rejected with an error naming the file, tensor and dtype.
//
// Validation follows the reference implementation: tensors must tile the data section exactly
// (no overlap, no gap, no trailing bytes), each byte range must equal numel x dtype size, and
// every problem is a tiller::Error whose message starts with "safetensors <file>:".
#pragma once

#include <concepts>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor/tensor.h"

namespace tiller::safetensors {

// Tensors in the order their data is written.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using Metadata = std::map<std::string, std::string>;

struct Contents {
  std::map<std::string, Tensor> tensors;  // ordered by name
  Metadata metadata;
};

// Writes atomically (core/atomic_file.h). Tensors may live on any device; names must be unique,
// non-empty and not "__metadata__".
void save(const std::filesystem::path& path, const NamedTensors& tensors,
          const Metadata& metadata = {});
// A name-ordered map saves in name order. A template only so that a braced list
// `save(path, {{"w", w}})` is never ambiguous: it cannot deduce TensorMap and picks the list above.
template <typename TensorMap>
requires std::same_as<TensorMap, std::map<std::string, Tensor>>
void save(const std::filesystem::path& path, const TensorMap& tensors,
          const Metadata& metadata = {}) {
  save(path, NamedTensors(tensors.begin(), tensors.end()), metadata);
}

// The file's bytes, exactly as `save` writes them; for tests and in-memory transfer.
std::string serialize(const NamedTensors& tensors, const Metadata& metadata = {});

// Reads the file with one mmap and copies each tensor to `device`.
Contents load(const std::filesystem::path& path, Device device = Device::cpu());

// Parses bytes already in memory; `source` names them in error messages.
Contents parse(const void* bytes, size_t size, const std::string& source,
               Device device = Device::cpu());

}  // namespace tiller::safetensors
