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

--device cpu is the smoke mode (bench/torch_smoke.py): torch_gpt2.smoke_config()'s tiny model
(and the same sizes for transformers' GPT-2), batch 1 and 2, 8-token prompts, 4 new tokens, both
implementations; exit status 1 when a line is an "error". It checks the API calls, not speed.

Usage: python3 bench/torch_generate.py [--impl auto|hf|loop|both] [--prompt 64] [--new 128]
                                       [--device cuda|cpu]
"""

import argparse
import sys

try:
    import torch
    import torch_bench
    from torch_gpt2 import (GPT2, VOCAB, Config, print_error, print_line, random_tokens,
                            smoke_config, time_calls, timing_fields)
except ImportError as error:  # device-check reports this line and moves on
    print('{"source":"torch","kernel":"generate","shape":"-","error":"%s"}' % error)
    sys.exit(0)

BATCHES = (1, 8, 32)
DEVICE = "cuda"


def model_config():
    return smoke_config() if DEVICE == "cpu" else Config()


def loop_model():
    model = GPT2(model_config(), seed=1).to(DEVICE, torch.bfloat16).eval()

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

    ours = model_config()
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=ours.max_seq_len,
                                     n_embd=ours.n_embd, n_layer=ours.n_layer, n_head=ours.n_head)
    torch.manual_seed(1)
    model = transformers.GPT2LMHeadModel(config).to(DEVICE, torch.bfloat16).eval()
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
    """Prints one line per batch size; returns the number of "error" lines."""
    try:
        model, generate = make_model()
    except Exception as error:  # noqa: BLE001 - e.g. transformers too old for this torch
        print_error(impl, "generate", "-", error)
        return 1
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    model_name = "gpt2-smoke" if DEVICE == "cpu" else "gpt2-124M"
    errors = 0
    for batch in args.batches:
        shape = f"{model_name} B={batch} prompt={args.prompt} new={args.new} greedy bf16"
        try:
            prompts = random_tokens(batch, args.prompt, seed=10 + batch, device=DEVICE)
            outputs = []
            times = time_calls(lambda: outputs.append(generate(prompts, args.new)), 1, args.runs,
                               DEVICE)
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
            errors += 1
    return errors


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
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: the smoke mode (tiny model; exit 1 on any error line)")
    args = parser.parse_args()
    args.batches = BATCHES
    if args.device == "cpu":
        global DEVICE
        DEVICE = torch_bench.DEVICE = "cpu"
        args.batches, args.prompt, args.new, args.runs = (1, 2), 8, 4, 1
        ceilings = torch_bench.measure_ceilings()
        errors = run("hf-generate", hf_model, args, ceilings) if args.impl != "loop" else 0
        errors += run("torch-kv-loop", loop_model, args, ceilings) if args.impl != "hf" else 0
        return 1 if errors else 0
    if not torch.cuda.is_available():
        print_error("torch", "generate", "-", RuntimeError("no CUDA device visible to torch"))
        return 0
    impls = {"auto": ["hf" if transformers_importable() else "loop"], "hf": ["hf"],
             "loop": ["loop"], "both": ["hf", "loop"]}[args.impl]
    ceilings = torch_bench.measure_ceilings()
    for impl in impls:
        if impl == "hf":
            run("hf-generate", hf_model, args, ceilings)
        else:
            run("torch-kv-loop", loop_model, args, ceilings)
        torch.cuda.empty_cache()  # the previous model's blocks, now unreferenced
    return 0


if __name__ == "__main__":
    sys.exit(main())
