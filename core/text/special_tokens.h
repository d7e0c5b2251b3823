// The special tokens tiller knows, declared in this one place.
//
// They are matched as whole strings before BPE, and only when the caller allows special tokens
// (Tokenizer::encode(text, /*allow_special=*/true)): text typed by a user that happens to contain
// "<|end|>" is encoded as ordinary bytes and can never close a turn. The chat template
// (core/chat.h) is the only code that places the chat tokens.
#pragma once

#include <array>
#include <string_view>

namespace tiller::special_tokens {

inline constexpr std::string_view kEndOfText = "<|endoftext|>";  // separates documents (GPT-2)
inline constexpr std::string_view kSystem = "<|system|>";        // opens a system turn
inline constexpr std::string_view kUser = "<|user|>";            // opens a user turn
inline constexpr std::string_view kAssistant = "<|assistant|>";  // opens an assistant turn
inline constexpr std::string_view kEndOfTurn = "<|end|>";        // closes any turn

// Everything the chat template needs.
inline constexpr std::array<std::string_view, 4> kChat = {kSystem, kUser, kAssistant, kEndOfTurn};
// All of them, in the id order a newly trained tokenizer assigns (after the merged tokens).
inline constexpr std::array<std::string_view, 5> kAll = {kEndOfText, kSystem, kUser, kAssistant,
                                                         kEndOfTurn};

}  // namespace tiller::special_tokens
