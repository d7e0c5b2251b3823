#!/usr/bin/env python3
"""Interop fixtures made by the real Hugging Face libraries, and the check of the way back.

Run with a Python that has torch + transformers + tokenizers (CI has none; the fixtures are
committed):
    /work/wt/venv/bin/python tests/reference/hf_interop.py make
        writes tests/reference/hf_gpt2_tiny/ and hf_llama_tiny/: a tiny random GPT2LMHeadModel and
        LlamaForCausalLM saved by `save_pretrained` (config.json + model.safetensors exactly as
        transformers writes them), a byte-level BPE tokenizer trained by `tokenizers` and saved by
        the transformers tokenizer's own `save_pretrained`, and reference.safetensors holding
        input.ids (B, T) and output.logits (B, T, V) computed by transformers in float32, plus
        tokenizer_cases.json: texts and the ids the transformers tokenizer gives them.
        tests/test_hf_interop.cpp loads all of it with tiller and compares.
    /work/wt/venv/bin/python tests/reference/hf_interop.py check-export build/cpu-only
        runs the hidden Catch2 case "[.hf-export]" of tiller_tests, which loads each fixture, takes
        one AdamW step in tiller, saves it with Transformer::save_pretrained and writes the logits
        tiller computes for the fixture's ids; then loads every saved directory with
        transformers' AutoModelForCausalLM and asserts the same logits (max abs diff < 1e-4).

The weights are redrawn with a larger spread than transformers' init (std 0.02 makes every
logit nearly equal, which would hide a transposed or misplaced tensor).
"""
import json
import os
import random
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = 320

TEXTS = [
    "The fox jumps over the lazy dog. It's 42 degrees, isn't it?",
    "  leading spaces and trailing ones   ",
    "tabs\tand\nnew lines\r\n\nmixed  \n  spaces",
    "Ünïcödé: naïve café, Ελληνικά, русский, 中文字符, العربية",
    "digits 3.14159 and ½ and ١٢٣ and ⅷ",
    "supplementary letters: 𐌰𐌱𐌲 𝐀𝐁𝐂 𠀀𠀁 and emoji 🙂🙃",
    "contractions: we're, they've, I'll, he'd, she's, 'twas",
    "<|endoftext|> is special only when allowed",
]


def training_corpus():
    rng = random.Random(1)
    words = ("the fox dog cat jumps runs over under lazy quick brown red town river creature "
             "forest it is was 's n't 're 've I'll we'd naïve café Ελληνικά русский 中文 字符 "
             "العربية 𐌰𐌱 🙂 3.14 42 1999").split()
    for _ in range(3000):
        yield " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + rng.choice(
            [".", "!", "?", "\n", "  "])


def make_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_corpus(), trainer)
    return GPT2TokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                             eos_token="<|endoftext|>", unk_token="<|endoftext|>")


def spread_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("ln" in name or "norm" in name) and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def make_models(tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    V = len(tokenizer)
    eos = tokenizer.eos_token_id
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=4,
                                      n_positions=64, bos_token_id=eos, eos_token_id=eos))
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2, max_position_embeddings=64,
                                         rope_theta=500.0, rms_norm_eps=1e-5,
                                         tie_word_embeddings=False, bos_token_id=eos,
                                         eos_token_id=eos))
    return {"hf_gpt2_tiny": gpt2, "hf_llama_tiny": llama}


def make():
    torch.manual_seed(0)
    tokenizer = make_tokenizer()
    cases = [{"text": t, "ids": tokenizer(t)["input_ids"]} for t in TEXTS[:-1]]
    cases.append({"text": TEXTS[-1], "allow_special": True, "ids": tokenizer(TEXTS[-1])["input_ids"]})
    ids = torch.tensor([tokenizer(TEXTS[0])["input_ids"][:16], tokenizer(TEXTS[3])["input_ids"][:16]],
                       dtype=torch.int32)
    for seed, (name, model) in enumerate(make_models(tokenizer).items()):
        out = os.path.join(HERE, name)
        spread_weights(model, seed)
        model.eval()
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        with torch.no_grad():
            logits = model(ids.long()).logits.float()
        save_file({"input.ids": ids, "output.logits": logits.contiguous()},
                  os.path.join(out, "reference.safetensors"),
                  metadata={"transformers": __import__("transformers").__version__,
                            "torch": torch.__version__})
        with open(os.path.join(out, "tokenizer_cases.json"), "w", encoding="utf-8") as f:
            json.dump(cases, f, ensure_ascii=False, indent=1)
        print(f"{name}: vocab {len(tokenizer)}, logits std {logits.std():.3f}, files {sorted(os.listdir(out))}")


def check_export(build_dir):
    from transformers import AutoModelForCausalLM

    tests = os.path.join(build_dir, "tests", "tiller_tests")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, TILLER_HF_EXPORT_DIR=tmp)
        subprocess.run([tests, "[.hf-export]"], env=env, check=True)
        for name in ("hf_gpt2_tiny", "hf_llama_tiny"):
            saved = os.path.join(tmp, name)
            ref = load_file(os.path.join(saved, "tiller_logits.safetensors"))
            model = AutoModelForCausalLM.from_pretrained(saved, dtype=torch.float32).eval()
            with torch.no_grad():
                logits = model(ref["input.ids"].long()).logits
            diff = (logits - ref["output.logits"]).abs().max().item()
            scale = ref["output.logits"].abs().max().item()
            print(f"{name}: transformers vs tiller logits, max abs diff {diff:.2e} (max |logit| {scale:.2f})")
            assert diff < 1e-4, f"{name}: transformers disagrees with tiller's saved checkpoint"
            worst = max(worst, diff)
    print(f"check-export: ok (worst {worst:.2e})")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "make":
        make()
    elif len(sys.argv) == 3 and sys.argv[1] == "check-export":
        check_export(sys.argv[2])
    else:
        sys.exit(__doc__)
