// safetensors reader and writer (format and validation rules in safetensors.h).
//
// Loading validates the whole header before allocating any tensor, so a corrupt or hostile file
// costs at most one header parse: shapes are checked for overflow and every byte range is checked
// against the data section before a single byte is copied. Duplicate names are caught during the
// JSON parse (nlohmann would otherwise keep the last one silently).
#include "core/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/io/atomic_file.h"

namespace tiller::safetensors {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; tiller reads it with memcpy");

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr const char* kMetadataKey = "__metadata__";
// The reference implementation refuses larger headers; so do we, before parsing anything.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr size_t kHeaderAlignment = 8;

// How a file dtype becomes a tiller tensor.
struct FileDType {
  const char* name;
  size_t size;
  DType loads_as;
  bool supported;
};

// Every dtype the format defines, so an unsupported one is told apart from garbage.
constexpr FileDType kFileDTypes[] = {
    {"F32", 4, DType::f32, true},      {"BF16", 2, DType::bf16, true},
    {"I32", 4, DType::i32, true},      {"F16", 2, DType::f32, true},
    {"F64", 8, DType::f32, true},      {"BOOL", 1, DType::f32, false},
    {"U8", 1, DType::f32, false},      {"I8", 1, DType::f32, false},
    {"I16", 2, DType::f32, false},     {"U16", 2, DType::f32, false},
    {"U32", 4, DType::f32, false},     {"I64", 8, DType::f32, false},
    {"U64", 8, DType::f32, false},     {"F8_E4M3", 1, DType::f32, false},
    {"F8_E5M2", 1, DType::f32, false},
};

const char* file_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "F32";
    case DType::bf16:
      return "BF16";
    case DType::i32:
      return "I32";
  }
  fail("safetensors: unknown tiller dtype {}", static_cast<int>(dtype));
}

// IEEE binary16 -> binary32; exact for every input (f32 has more range and precision).
float half_to_float(uint16_t half) {
  uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  uint32_t exponent = (half >> 10) & 0x1fu;
  uint32_t mantissa = half & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // inf, or NaN keeping its payload
  } else if (exponent != 0) {
    bits = sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13);  // rebias 15 -> 127
  } else {
    float magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // zero or subnormal
    return sign ? -magnitude : magnitude;
  }
  return std::bit_cast<float>(bits);
}

// Round to nearest like a hardware cast, but defined for magnitudes beyond f32's range (a plain
// static_cast of those is undefined behaviour): at or past FLT_MAX + half an ulp they become inf.
float double_to_float(double value) {
  constexpr double kFirstOverflow = 0x1.ffffffp+127;
  if (std::fabs(value) >= kFirstOverflow) {
    return std::signbit(value) ? -std::numeric_limits<float>::infinity()
                               : std::numeric_limits<float>::infinity();
  }
  return static_cast<float>(value);  // NaN and everything in range convert as usual
}

struct Entry {
  std::string name;
  const FileDType* dtype;
  Shape shape;
  uint64_t begin, end;
};

class HeaderParser {
 public:
  HeaderParser(const std::string& source, uint64_t data_bytes)
      : source_(source), data_bytes_(data_bytes) {}

  std::vector<Entry> parse(const char* text, size_t size, Metadata& metadata) {
    json header = parse_json(text, size);
    if (!header.is_object()) problem("header is a JSON {}, expected an object", header.type_name());
    std::vector<Entry> entries;
    for (auto& [name, value] : header.items()) {
      if (name == kMetadataKey) {
        read_metadata(value, metadata);
      } else {
        entries.push_back(read_entry(name, value));
      }
    }
    check_tiling(entries);
    return entries;
  }

 private:
  template <typename... Args>
  [[noreturn]] void problem(fmt::format_string<Args...> format, Args&&... args) const {
    fail("safetensors {}: {}", source_, fmt::format(format, std::forward<Args>(args)...));
  }

  json parse_json(const char* text, size_t size) {
    std::set<std::string> top_level_names;
    std::string duplicate;
    auto watch_duplicates = [&](int depth, json::parse_event_t event, json& parsed) {
      if (depth == 1 && event == json::parse_event_t::key && duplicate.empty()) {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (!top_level_names.insert(key).second) duplicate = key;
      }
      return true;
    };
    json header;
    try {
      header = json::parse(text, text + size, watch_duplicates);
    } catch (const json::exception& error) {
      problem("header is not valid JSON: {}", error.what());
    }
    if (!duplicate.empty())
      problem("tensor name '{}' appears more than once in the header", duplicate);
    return header;
  }

  void read_metadata(const json& value, Metadata& metadata) const {
    if (!value.is_object())
      problem("__metadata__ is a JSON {}, expected an object", value.type_name());
    for (auto& [key, text] : value.items()) {
      if (!text.is_string()) {
        problem("__metadata__ value for '{}' is a JSON {}, expected a string", key,
                text.type_name());
      }
      metadata[key] = text.get<std::string>();
    }
  }

  Entry read_entry(const std::string& name, const json& value) const {
    if (!value.is_object())
      problem("tensor {} is a JSON {}, expected an object", name, value.type_name());
    for (const char* field : {"dtype", "shape", "data_offsets"}) {
      if (!value.contains(field)) problem("tensor {} has no '{}'", name, field);
    }
    Entry entry{.name = name,
                .dtype = lookup_dtype(name, value["dtype"]),
                .shape = {},
                .begin = 0,
                .end = 0};

    const json& shape = value["shape"];
    if (!shape.is_array())
      problem("tensor {}: shape is a JSON {}, expected an array", name, shape.type_name());
    uint64_t numel = 1;
    for (const json& extent : shape) {
      if (!extent.is_number_integer())
        problem("tensor {}: shape {} holds a non-integer", name, shape.dump());
      if (!extent.is_number_unsigned()) {  // nlohmann stores every non-negative integer unsigned
        problem("tensor {}: shape {} has a negative extent", name, shape.dump());
      }
      uint64_t n = extent.get<uint64_t>();
      if (n > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, n, &numel)) {
        problem("tensor {}: shape {} is too large", name, shape.dump());
      }
      entry.shape.push_back(static_cast<int64_t>(n));
    }
    uint64_t bytes;
    if (__builtin_mul_overflow(numel, entry.dtype->size, &bytes) || numel > INT64_MAX) {
      problem("tensor {}: shape {} is too large", name, shape.dump());
    }

    const json& offsets = value["data_offsets"];
    bool two_offsets = offsets.is_array() && offsets.size() == 2 &&
                       offsets[0].is_number_unsigned() && offsets[1].is_number_unsigned();
    if (!two_offsets) {
      problem("tensor {}: data_offsets {} must be two non-negative integers", name, offsets.dump());
    }
    entry.begin = offsets[0].get<uint64_t>();
    entry.end = offsets[1].get<uint64_t>();
    if (entry.begin > entry.end || entry.end > data_bytes_) {
      problem("tensor {}: data_offsets [{},{}] are out of range of the {}-byte data section", name,
              entry.begin, entry.end, data_bytes_);
    }
    if (entry.end - entry.begin != bytes) {
      problem("tensor {}: data_offsets [{},{}] span {} bytes but {} {} needs {}", name, entry.begin,
              entry.end, entry.end - entry.begin, entry.dtype->name, shape.dump(), bytes);
    }
    return entry;
  }

  const FileDType* lookup_dtype(const std::string& name, const json& dtype) const {
    if (!dtype.is_string())
      problem("tensor {}: dtype is a JSON {}, expected a string", name, dtype.type_name());
    const std::string& text = dtype.get_ref<const std::string&>();
    for (const FileDType& candidate : kFileDTypes) {
      if (text != candidate.name) continue;
      if (!candidate.supported) {
        problem("tensor {} has dtype {}, which tiller does not load (F32, BF16, I32, F16, F64)",
                name, text);
      }
      return &candidate;
    }
    problem("tensor {} has unknown dtype '{}'", name, text);
  }

  // Same rule as the reference reader: sorted by offsets, each range starts where the previous
  // ended and the last ends at the end of the file.
  void check_tiling(const std::vector<Entry>& entries) const {
    std::vector<const Entry*> sorted;
    for (const Entry& entry : entries) sorted.push_back(&entry);
    std::sort(sorted.begin(), sorted.end(), [](const Entry* a, const Entry* b) {
      return std::tie(a->begin, a->end) < std::tie(b->begin, b->end);
    });
    uint64_t covered = 0;
    const Entry* previous = nullptr;
    for (const Entry* entry : sorted) {
      if (entry->begin < covered) {
        problem("tensors {} [{},{}] and {} [{},{}] overlap", previous->name, previous->begin,
                previous->end, entry->name, entry->begin, entry->end);
      }
      if (entry->begin > covered) {
        problem("bytes [{},{}) before tensor {} belong to no tensor", covered, entry->begin,
                entry->name);
      }
      covered = entry->end;
      previous = entry;
    }
    if (covered != data_bytes_) {
      problem("data section has {} bytes but the tensors cover {}", data_bytes_, covered);
    }
  }

  const std::string& source_;
  uint64_t data_bytes_;
};

Tensor materialise(const Entry& entry, const char* data, Device device) {
  Tensor host = Tensor::empty(entry.shape, {.dtype = entry.dtype->loads_as});
  const char* bytes = data + entry.begin;
  int64_t numel = host.numel();
  std::string_view file_dtype = entry.dtype->name;
  if (file_dtype == "F16") {
    float* out = host.data<float>();
    for (int64_t i = 0; i < numel; ++i) {
      uint16_t half;
      std::memcpy(&half, bytes + 2 * i, 2);
      out[i] = half_to_float(half);
    }
  } else if (file_dtype == "F64") {
    float* out = host.data<float>();
    for (int64_t i = 0; i < numel; ++i) {
      double value;
      std::memcpy(&value, bytes + 8 * i, 8);
      out[i] = double_to_float(value);
    }
  } else if (numel > 0) {
    std::memcpy(host.data_ptr(), bytes, host.nbytes());
  }
  return host.to(device);
}

void check_names(const NamedTensors& tensors) {
  std::set<std::string> seen;
  for (const auto& [name, tensor] : tensors) {
    TILLER_CHECK(!name.empty(), "safetensors save: a tensor has an empty name");
    TILLER_CHECK(name != kMetadataKey, "safetensors save: '{}' is reserved for metadata", name);
    TILLER_CHECK(seen.insert(name).second, "safetensors save: tensor name '{}' appears twice",
                 name);
    TILLER_CHECK(tensor.defined(), "safetensors save: tensor {} is undefined", name);
  }
}

// The header, padded with spaces so that 8 + its length is a multiple of 8.
std::string build_header(const NamedTensors& tensors, const Metadata& metadata) {
  check_names(tensors);
  ordered_json header = ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    uint64_t end = offset + tensor.nbytes();
    header[name] = {{"dtype", file_dtype_name(tensor.dtype())},
                    {"shape", tensor.shape()},
                    {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const ordered_json::exception& error) {
    fail("safetensors save: a tensor name or metadata entry is not valid UTF-8: {}", error.what());
  }
  text.append((kHeaderAlignment - text.size() % kHeaderAlignment) % kHeaderAlignment, ' ');
  return text;
}

template <typename Write>
void write_all(const NamedTensors& tensors, const Metadata& metadata, Write&& write) {
  std::string header = build_header(tensors, metadata);
  uint64_t length = header.size();
  write(&length, sizeof(length));
  write(header.data(), header.size());
  for (const auto& [name, tensor] : tensors) {
    if (tensor.nbytes() == 0) continue;
    Tensor host = tensor.to(Device::cpu());  // one tensor at a time keeps host memory bounded
    write(host.data_ptr(), host.nbytes());
  }
}

// Unmaps on every exit path, including validation errors.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path) {
    const std::string shown = path.string();
    int descriptor = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (descriptor < 0) fail("safetensors {}: cannot open: {}", shown, std::strerror(errno));
    struct stat info {};
    if (::fstat(descriptor, &info) != 0) {
      int error = errno;
      ::close(descriptor);
      fail("safetensors {}: fstat failed: {}", shown, std::strerror(error));
    }
    if (!S_ISREG(info.st_mode)) {
      ::close(descriptor);
      fail("safetensors {}: not a regular file", shown);
    }
    size_ = static_cast<size_t>(info.st_size);
    if (size_ > 0) {  // mmap rejects length 0; parse() reports the short file
      void* mapping = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, descriptor, 0);
      int error = errno;
      ::close(descriptor);
      if (mapping == MAP_FAILED)
        fail("safetensors {}: mmap failed: {}", shown, std::strerror(error));
      data_ = mapping;
    } else {
      ::close(descriptor);
    }
  }
  ~MappedFile() {
    if (data_) ::munmap(data_, size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const void* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace

std::string serialize(const NamedTensors& tensors, const Metadata& metadata) {
  std::string bytes;
  write_all(tensors, metadata, [&](const void* data, size_t size) {
    bytes.append(static_cast<const char*>(data), size);
  });
  return bytes;
}

void save(const std::filesystem::path& path, const NamedTensors& tensors,
          const Metadata& metadata) {
  write_file_atomic(path, [&](FileSink& sink) {
    write_all(tensors, metadata, [&](const void* data, size_t size) { sink.write(data, size); });
  });
}

Contents parse(const void* bytes, size_t size, const std::string& source, Device device) {
  const char* file = static_cast<const char*>(bytes);
  if (size < 8) {
    fail("safetensors {}: file is {} bytes, shorter than the 8-byte header length", source, size);
  }
  uint64_t header_bytes;
  std::memcpy(&header_bytes, file, 8);
  if (header_bytes > kMaxHeaderBytes) {
    fail("safetensors {}: header length {} exceeds the {}-byte limit", source, header_bytes,
         kMaxHeaderBytes);
  }
  if (header_bytes > size - 8) {
    fail("safetensors {}: header length {} is larger than the file ({} bytes after the length)",
         source, header_bytes, size - 8);
  }
  const char* data = file + 8 + header_bytes;
  Contents contents;
  HeaderParser parser(source, size - 8 - header_bytes);
  std::vector<Entry> entries = parser.parse(file + 8, header_bytes, contents.metadata);
  for (const Entry& entry : entries) {
    contents.tensors.emplace(entry.name, materialise(entry, data, device));
  }
  return contents;
}

Contents load(const std::filesystem::path& path, Device device) {
  MappedFile file(path);
  return parse(file.data(), file.size(), path.string(), device);
}

}  // namespace tiller::safetensors
