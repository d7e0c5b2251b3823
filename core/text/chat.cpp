// Chat template rendering and JSONL record parsing; the layout is specified in core/chat.h.
#include "core/text/chat.h"

#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "core/text/special_tokens.h"

namespace tiller {
namespace {

struct ChatTokenIds {
  TokenId system, user, assistant, end_of_turn;
  std::vector<TokenId> newline;

  explicit ChatTokenIds(const Tokenizer& tokenizer) {
    for (std::string_view token : special_tokens::kChat) {
      TILLER_CHECK(tokenizer.has_added_token(token),
                   "chat: the tokenizer has no {} token; train or load it with the chat special "
                   "tokens (special_tokens::kChat) or add them with add_special_token",
                   token);
    }
    system = tokenizer.token_id(special_tokens::kSystem);
    user = tokenizer.token_id(special_tokens::kUser);
    assistant = tokenizer.token_id(special_tokens::kAssistant);
    end_of_turn = tokenizer.token_id(special_tokens::kEndOfTurn);
    newline = tokenizer.encode("\n");
  }

  TokenId role_token(const std::string& role, size_t index) const {
    if (role == "system") return system;
    if (role == "user") return user;
    if (role == "assistant") return assistant;
    fail("chat: message {} has role '{}'; expected system, user or assistant", index, role);
  }
};

void append(RenderedChat& out, const std::vector<TokenId>& ids, bool trainable) {
  out.tokens.insert(out.tokens.end(), ids.begin(), ids.end());
  out.trainable.insert(out.trainable.end(), ids.size(), trainable ? 1 : 0);
}

void append(RenderedChat& out, TokenId id, bool trainable) {
  out.tokens.push_back(id);
  out.trainable.push_back(trainable ? 1 : 0);
}

RenderedChat render_messages(const Tokenizer& tokenizer, const ChatTokenIds& ids,
                             const std::vector<ChatMessage>& messages) {
  RenderedChat out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    bool is_assistant = ids.role_token(message.role, i) == ids.assistant;
    append(out, ids.role_token(message.role, i), false);
    append(out, ids.newline, false);
    append(out, tokenizer.encode(message.content, /*allow_special=*/false), is_assistant);
    append(out, ids.end_of_turn, is_assistant);
    append(out, ids.newline, false);
  }
  return out;
}

}  // namespace

RenderedChat render_chat(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages) {
  ChatTokenIds ids(tokenizer);
  return render_messages(tokenizer, ids, messages);
}

std::vector<TokenId> render_generation_prompt(const Tokenizer& tokenizer,
                                              const std::vector<ChatMessage>& messages) {
  ChatTokenIds ids(tokenizer);
  RenderedChat rendered = render_messages(tokenizer, ids, messages);
  rendered.tokens.push_back(ids.assistant);
  rendered.tokens.insert(rendered.tokens.end(), ids.newline.begin(), ids.newline.end());
  return rendered.tokens;
}

std::vector<ChatMessage> prompt_completion_messages(std::string prompt, std::string completion) {
  return {{"user", std::move(prompt)}, {"assistant", std::move(completion)}};
}

std::vector<ChatMessage> parse_chat_record(std::string_view json_line, std::string_view where) {
  using Json = nlohmann::json;
  Json record;
  try {
    record = Json::parse(json_line);
  } catch (const Json::exception& e) {
    fail("chat: {}: not valid JSON: {}", where, e.what());
  }
  TILLER_CHECK(record.is_object(), "chat: {}: expected a JSON object, got {}", where,
               record.type_name());
  auto string_field = [&](const Json& object, const char* key, std::string_view context) {
    TILLER_CHECK(object.contains(key) && object[key].is_string(),
                 "chat: {}: {} needs a string \"{}\"", where, context, key);
    return object[key].get<std::string>();
  };
  if (record.contains("messages")) {
    const Json& messages = record["messages"];
    TILLER_CHECK(messages.is_array() && !messages.empty(),
                 "chat: {}: \"messages\" must be a non-empty array", where);
    std::vector<ChatMessage> out;
    for (size_t i = 0; i < messages.size(); ++i) {
      TILLER_CHECK(messages[i].is_object(), "chat: {}: message {} is not an object", where, i);
      std::string context = fmt::format("message {}", i);
      out.push_back({string_field(messages[i], "role", context),
                     string_field(messages[i], "content", context)});
    }
    return out;
  }
  TILLER_CHECK(record.contains("prompt") || record.contains("completion"),
               "chat: {}: expected \"messages\" or \"prompt\" + \"completion\"", where);
  std::string prompt = string_field(record, "prompt", "the record");
  std::string completion = string_field(record, "completion", "the record");
  return prompt_completion_messages(std::move(prompt), std::move(completion));
}

}  // namespace tiller
