#!/usr/bin/env python3
"""Greedy generation with a KV cache in PyTorch: the counterpart of bench_cuda_generate.

A GPT-2 124M-sized model with random bf16 weights; batch 1, 8 and 32; prompts of 64 random
tokens; 128 new tokens, every row generating all of them (no end-of-text stop). Implementations:
  hf-generate    Hugging Face transformers GPT2LMHeadModel.generate(do_sample=False,
                 use_cache=True), used when `import transformers` works (--impl auto);
  torch-kv-loop  bench/torch_gpt2.py's model with a preallocated KV cache: a causal prefill, then
                 one forward + argmax per token, all on the device (the fallback).
The "impl" field of each line says which ran. Timing: 1 warm-up call, then the median of 5 (CUDA
events, bench/torch_gpt2.py); tokens/s = B x 128 / call time; "gbps" counts the bf16 weights read
once per forward (128 forwards per call), as bench/cuda/generate.cu does.

Usage: python3 bench/torch_generate.py [--impl auto|hf|loop|both] [--prompt 64] [--new 128]
"""

import argparse
import sys

try:
    import torch
    from torch_bench import measure_ceilings
    from torch_gpt2 import (GPT2, VOCAB, Config, print_error, print_line, random_tokens,
                            time_calls, timing_fields)
except ImportError as error:  # device-check reports this line and moves on
    print('{"source":"torch","kernel":"generate","shape":"-","error":"%s"}' % error)
    sys.exit(0)

BATCHES = (1, 8, 32)


def loop_model():
    model = GPT2(Config(), seed=1).to("cuda", torch.bfloat16).eval()

    @torch.no_grad()
    def generate(prompts, new_tokens):
        cache = model.make_cache(prompts.shape[0], prompts.shape[1] + new_tokens)
        token = model(prompts, cache=cache)[:, -1].argmax(-1, keepdim=True)
        generated = [token]
        for _ in range(new_tokens - 1):
            token = model(token, cache=cache)[:, -1].argmax(-1, keepdim=True)
            generated.append(token)
        return torch.cat(generated, dim=1)

    return model, generate


def hf_model():
    import transformers

    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=1024, n_embd=768, n_layer=12,
                                     n_head=12)
    torch.manual_seed(1)
    model = transformers.GPT2LMHeadModel(config).to("cuda", torch.bfloat16).eval()
    # Random weights emit end-of-text sometimes; without an eos id every row runs to the end.
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0

    @torch.no_grad()
    def generate(prompts, new_tokens):
        output = model.generate(prompts, attention_mask=torch.ones_like(prompts),
                                max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                do_sample=False, use_cache=True)
        return output[:, prompts.shape[1]:]

    return model, generate


def run(impl, make_model, args, ceilings):
    try:
        model, generate = make_model()
    except Exception as error:  # noqa: BLE001 - e.g. transformers too old for this torch
        print_error(impl, "generate", "-", error)
        return
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    for batch in BATCHES:
        shape = f"gpt2-124M B={batch} prompt={args.prompt} new={args.new} greedy bf16"
        try:
            prompts = random_tokens(batch, args.prompt, seed=10 + batch)
            outputs = []
            times = time_calls(lambda: outputs.append(generate(prompts, args.new)), 1, args.runs)
            if tuple(outputs[-1].shape) != (batch, args.new):
                raise RuntimeError(f"generated {tuple(outputs[-1].shape)}, expected "
                                   f"{(batch, args.new)}")
            fields = timing_fields(times)
            seconds = fields["median_ms"] * 1e-3
            gbps = args.new * weight_bytes / seconds / 1e9
            print_line(impl=impl, kernel="generate", shape=shape, **fields,
                       tokens_per_s=round(batch * args.new / seconds, 1),
                       ms_per_token_step=round(fields["median_ms"] / args.new, 4), tflops=0.0,
                       gbps=round(gbps, 1), bound="memory",
                       ceiling_tflops=round(ceilings["gemm_tflops"], 1),
                       ceiling_gbps=round(ceilings["copy_gbps"], 1),
                       pct_of_ceiling=round(100 * gbps / ceilings["copy_gbps"], 1),
                       kv_cache="yes", torch=torch.__version__)
        except Exception as error:  # noqa: BLE001 - one failing batch must not hide the others
            print_error(impl, "generate", shape, error)


def transformers_importable():
    try:
        import transformers

        return bool(transformers.__version__)
    except Exception:  # noqa: BLE001 - any failure to import means "use the fallback"
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=("auto", "hf", "loop", "both"), default="auto")
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--new", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print_error("torch", "generate", "-", RuntimeError("no CUDA device visible to torch"))
        return 0
    impls = {"auto": ["hf" if transformers_importable() else "loop"], "hf": ["hf"],
             "loop": ["loop"], "both": ["hf", "loop"]}[args.impl]
    ceilings = measure_ceilings()
    for impl in impls:
        if impl == "hf":
            run("hf-generate", hf_model, args, ceilings)
        else:
            run("torch-kv-loop", loop_model, args, ceilings)
        torch.cuda.empty_cache()  # the previous model's blocks, now unreferenced
    return 0


if __name__ == "__main__":
    sys.exit(main())
