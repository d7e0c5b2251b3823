#!/usr/bin/env python3
"""GPT-2 124M training throughput in plain PyTorch: the counterpart of bench_cuda_train_gpt2.

The same step as tiller's: zero_grad, loss (cross-entropy over the real 50257-token vocabulary),
backward, clip the global grad norm to 1, AdamW (lr 6e-4, betas 0.9/0.95, weight decay 0.1 on the
matrices only) — PyTorch's standard mixed precision: f32 parameters (the master weights), bf16
autocast for the forward and backward, torch.optim.AdamW(fused=True). One fixed batch of random
tokens. Run eagerly, then under torch.compile (the model forward with its loss); a compile that
fails is reported as an "error" line naming the reason and the eager line still stands.

One JSON object per line (see bench/torch_gpt2.py for the timing method and FLOP count); the
(kernel, shape) join key matches bench/cuda/train_gpt2.cu. MFU is against the bf16 8192^3 matmul
measured in this process and against the H200 datasheet 989 TFLOP/s.

--device cpu is the smoke mode (bench/torch_smoke.py): torch_gpt2.smoke_config()'s tiny model, B=2
T=32, 1 warm-up and 2 timed steps, bf16 autocast on the CPU, no torch.compile unless --compile;
exit status 1 when a line is an "error". It checks the API calls, not speed.

Usage: python3 bench/torch_train_gpt2.py [--batch 16] [--seq 1024] [--warmup 3] [--steps 10]
                                         [--no-compile] [--device cuda|cpu [--compile]]
"""

import argparse
import sys
import time

try:
    import torch
    from torch_bench import measure_ceilings
    import torch_bench
    from torch_gpt2 import (GPT2, H200_DATASHEET_BF16_TFLOPS, Config, print_error, print_line,
                            random_tokens, smoke_config, time_calls, timing_fields)
except ImportError as error:  # device-check reports this line and moves on
    print('{"source":"torch","kernel":"train_gpt2","shape":"-","error":"%s"}' % error)
    sys.exit(0)


def run(impl, args, ceilings):
    device = args.device
    config = smoke_config() if device == "cpu" else Config(max_seq_len=1024)
    model_name = "gpt2-smoke" if device == "cpu" else "gpt2-124M"
    shape = f"{model_name} B={args.batch} T={args.seq} bf16 adamw"
    try:
        model = GPT2(config, seed=1).to(device)
        optimizer = torch.optim.AdamW(model.param_groups(0.1), lr=6e-4, betas=(0.9, 0.95),
                                      eps=1e-8, fused=True)
        compiled = torch.compile(model) if impl == "torch-compile" else model
        ids = random_tokens(args.batch, args.seq, seed=2, device=device)
        targets = random_tokens(args.batch, args.seq, seed=3, device=device)
        losses = []

        def step():
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device, dtype=torch.bfloat16):
                loss = compiled(ids, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.detach())

        started = time.perf_counter()
        step()  # compiles under torch.compile
        if device == "cuda":
            torch.cuda.synchronize()
        first_step_s = time.perf_counter() - started
        times = time_calls(step, max(0, args.warmup - 1), args.steps, device)

        tokens = args.batch * args.seq
        seconds = sum(times) / len(times) * 1e-3
        tflops = config.flops_per_token(args.seq) * tokens / seconds / 1e12
        print_line(impl=impl, kernel="train_gpt2", shape=shape, **timing_fields(times),
                   tokens_per_s=round(tokens / seconds, 1), tflops=round(tflops, 2), gbps=0.0,
                   bound="compute", ceiling_tflops=round(ceilings["gemm_tflops"], 1),
                   ceiling_gbps=round(ceilings["copy_gbps"], 1),
                   pct_of_ceiling=round(100 * tflops / ceilings["gemm_tflops"], 1),
                   mfu_measured_pct=round(100 * tflops / ceilings["gemm_tflops"], 1),
                   mfu_datasheet_pct=round(100 * tflops / H200_DATASHEET_BF16_TFLOPS, 1),
                   datasheet_tflops=H200_DATASHEET_BF16_TFLOPS,
                   flops_per_token=config.flops_per_token(args.seq),
                   params=config.num_parameters(), first_step_s=round(first_step_s, 2),
                   loss_first=round(losses[0].item(), 4), loss_last=round(losses[-1].item(), 4),
                   torch=torch.__version__)
        return True
    except Exception as error:  # noqa: BLE001 - report why (OOM, compile failure) and go on
        print_error(impl, "train_gpt2", shape, error)
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--no-compile", action="store_true", help="eager only")
    parser.add_argument("--compile", action="store_true", help="with --device cpu: compile too")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: the smoke mode (tiny model; exit 1 on any error line)")
    args = parser.parse_args()
    if args.device == "cpu":
        torch_bench.DEVICE = "cpu"
        if "--batch" not in sys.argv:
            args.batch, args.seq, args.warmup, args.steps = 2, 32, 1, 2
        ceilings = torch_bench.measure_ceilings()
        ok = [run(impl, args, ceilings)
              for impl in ["torch-eager"] + (["torch-compile"] if args.compile else [])]
        return 0 if all(ok) else 1
    if not torch.cuda.is_available():
        print_error("torch", "train_gpt2", "-", RuntimeError("no CUDA device visible to torch"))
        return 0
    torch.backends.cuda.matmul.allow_tf32 = True
    ceilings = measure_ceilings()
    for impl in ["torch-eager"] + ([] if args.no_compile else ["torch-compile"]):
        run(impl, args, ceilings)
        torch.cuda.empty_cache()  # the previous model's blocks, now unreferenced
    return 0


if __name__ == "__main__":
    sys.exit(main())
