// PretrainConfig <-> JSON (see rl/pretrain.h).
//
// One table of fields drives both directions, so a field added to PretrainConfig needs one line
// here and cannot be written without also being readable.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <type_traits>

#include "kernels/error.h"
#include "rl/trainers/pretrain.h"

namespace tiller::rl {

namespace {

using nlohmann::json;

const char* schedule_kind_name(optim::LrSchedule::Kind kind) {
  switch (kind) {
    case optim::LrSchedule::Kind::constant:
      return "constant";
    case optim::LrSchedule::Kind::linear:
      return "linear";
    case optim::LrSchedule::Kind::cosine:
      return "cosine";
    case optim::LrSchedule::Kind::wsd:
      return "wsd";
  }
  return "?";
}

DType parse_float_dtype(const std::string& name) {
  if (name == "f32") return DType::f32;
  if (name == "bf16") return DType::bf16;
  fail("pretrain config: dtype must be 'f32' or 'bf16', got '{}'", name);
}

struct Field {
  const char* key;
  std::function<json(const PretrainConfig&)> get;
  std::function<void(PretrainConfig&, const json&)> set;
};

// A plain member: the JSON value converts to the member's type.
// v as a T. An integer field takes only a JSON integer: nlohmann would convert 1e30 to an integer
// with undefined behaviour (and 2.5 silently to 2).
template <typename T>
T read_value(const json& v) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (!v.is_number_integer())
      throw json::type_error::create(302, "expected an integer, got " + v.dump(), &v);
  }
  return v.get<T>();
}

template <typename T>
Field member(const char* key, T PretrainConfig::*pointer) {
  return {key, [pointer](const PretrainConfig& c) { return json(c.*pointer); },
          [pointer](PretrainConfig& c, const json& v) { c.*pointer = read_value<T>(v); }};
}

// The optimizer's fields keep their flat keys ("peak_lr", "beta1", ...).
template <typename T>
Field schedule_member(const char* key, T optim::LrSchedule::*pointer) {
  return {key, [pointer](const PretrainConfig& c) { return json(c.optimizer.schedule.*pointer); },
          [pointer](PretrainConfig& c, const json& v) {
            c.optimizer.schedule.*pointer = read_value<T>(v);
          }};
}

template <typename T>
Field optimizer_member(const char* key, T OptimizerConfig::*pointer) {
  return {key, [pointer](const PretrainConfig& c) { return json(c.optimizer.*pointer); },
          [pointer](PretrainConfig& c, const json& v) { c.optimizer.*pointer = read_value<T>(v); }};
}

const std::vector<Field>& fields() {
  static const std::vector<Field> table = {
      {"model", [](const PretrainConfig& c) { return json::parse(c.model.to_hf_json()); },
       [](PretrainConfig& c, const json& v) { c.model = ModelConfig::from_hf_json(v.dump()); }},
      member("batch_size", &PretrainConfig::batch_size),
      member("seq_len", &PretrainConfig::seq_len),
      member("steps", &PretrainConfig::steps),
      member("grad_accumulation", &PretrainConfig::grad_accumulation),
      {"schedule",
       [](const PretrainConfig& c) { return json(schedule_kind_name(c.optimizer.schedule.kind)); },
       [](PretrainConfig& c, const json& v) {
         c.optimizer.schedule.kind = optim::parse_schedule_kind(v.get<std::string>());
       }},
      schedule_member("peak_lr", &optim::LrSchedule::peak_lr),
      schedule_member("min_lr", &optim::LrSchedule::min_lr),
      schedule_member("warmup_steps", &optim::LrSchedule::warmup_steps),
      schedule_member("total_steps", &optim::LrSchedule::total_steps),
      schedule_member("decay_steps", &optim::LrSchedule::decay_steps),
      optimizer_member("weight_decay", &OptimizerConfig::weight_decay),
      optimizer_member("beta1", &OptimizerConfig::beta1),
      optimizer_member("beta2", &OptimizerConfig::beta2),
      optimizer_member("clip_norm", &OptimizerConfig::clip_norm),
      member("eval_every", &PretrainConfig::eval_every),
      member("eval_batches", &PretrainConfig::eval_batches),
      member("sample_every", &PretrainConfig::sample_every),
      member("sample_tokens", &PretrainConfig::sample_tokens),
      member("sample_prompt", &PretrainConfig::sample_prompt),
      member("checkpoint_every", &PretrainConfig::checkpoint_every),
      member("keep_checkpoints", &PretrainConfig::keep_checkpoints),
      member("log_every", &PretrainConfig::log_every),
      member("output_dir", &PretrainConfig::output_dir),
      member("seed", &PretrainConfig::seed),
      {"device", [](const PretrainConfig& c) { return json(c.device.str()); },
       [](PretrainConfig& c, const json& v) { c.device = Device::parse(v.get<std::string>()); }},
      {"dtype", [](const PretrainConfig& c) { return json(dtype_name(c.dtype)); },
       [](PretrainConfig& c, const json& v) { c.dtype = parse_float_dtype(v.get<std::string>()); }},
      {"on_nonfinite",
       [](const PretrainConfig& c) { return json(to_string(c.optimizer.on_nonfinite)); },
       [](PretrainConfig& c, const json& v) {
         c.optimizer.on_nonfinite = parse_nonfinite_policy(v.get<std::string>());
       }},
      member("peak_flops", &PretrainConfig::peak_flops),
      member("init_from", &PretrainConfig::init_from),
      member("replay_shards", &PretrainConfig::replay_shards),
      member("replay_fraction", &PretrainConfig::replay_fraction),
  };
  return table;
}

}  // namespace

std::string pretrain_config_to_json(const PretrainConfig& config) {
  json object = json::object();
  for (const Field& field : fields()) object[field.key] = field.get(config);
  return object.dump(2);
}

PretrainConfig pretrain_config_from_json(const std::string& json_text, PretrainConfig base) {
  json object = json::parse(json_text, nullptr, false);
  TILLER_CHECK(!object.is_discarded() && object.is_object(),
               "pretrain config: not a JSON object: {:.80}", json_text);
  for (const auto& [key, value] : object.items()) {
    auto it = std::find_if(fields().begin(), fields().end(),
                           [&key = key](const Field& field) { return key == field.key; });
    TILLER_CHECK(it != fields().end(), "pretrain config: unknown key '{}'", key);
    try {
      it->set(base, value);
    } catch (const json::exception& error) {
      fail("pretrain config: bad value for '{}': {} ({})", key, value.dump(), error.what());
    }
  }
  return base;
}

}  // namespace tiller::rl
