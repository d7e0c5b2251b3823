#!/usr/bin/env python3
"""PyTorch on the same GPU, the same shapes and the same method as bench/cuda/*.cu.

One JSON object per line on stdout, with the fields of bench/cuda/bench_common.cuh's report()
and "source": "torch". The (kernel, shape) strings are the join key for bench/compare.py and must
match the C++ benchmarks exactly; FLOP and byte counts use the same formulas as the .cu files so
the rates compare like with like (they are conventions, not measurements of either kernel).

Method: CUDA events, 3 warm-up runs, median of as many runs as fit in --budget-ms (5..200), inputs
rotated over enough copies to exceed 3x L2, ceilings (1 GiB device copy, bf16 8192^3 matmul)
measured in this process.

--device cpu is the smoke mode: tiny shapes, perf_counter timing, every torch call of the GPU
path (the cuDNN SDPA backend runs as the math backend there); any "error" line makes the exit
status 1, so API drift fails bench/torch_smoke.py on the development machine.

Usage: python3 bench/torch_bench.py [--only attention,layernorm,...] [--budget-ms 300]
                                    [--device cuda|cpu]
"""

import argparse
import json
import math
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as error:  # device-check reports this line and moves on
    print(json.dumps({"source": "torch", "kernel": "setup", "shape": "-", "error": str(error)}))
    sys.exit(1)

BUDGET_MS = 300.0
DEVICE = "cuda"
SMOKE = False  # --device cpu: tiny shapes
ERRORS = 0


def time_it(fn, rotations):
    if DEVICE == "cuda":
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def timed(i):
            start.record()
            fn(i % rotations)
            stop.record()
            stop.synchronize()
            return start.elapsed_time(stop)
    else:
        def timed(i):
            started = time.perf_counter()
            fn(i % rotations)
            return (time.perf_counter() - started) * 1e3

    warm = 0.0
    for i in range(3):
        warm = timed(i)
    runs = int(min(200, max(5, BUDGET_MS / max(warm, 1e-3))))
    samples = sorted(timed(3 + i) for i in range(runs))
    return {"median_ms": samples[len(samples) // 2], "min_ms": samples[0], "runs": runs}


def rotation_count(bytes_per_set):
    if DEVICE != "cuda":
        return 2
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    free, _ = torch.cuda.mem_get_info()
    wanted = math.ceil(3 * l2 / max(bytes_per_set, 1))
    affordable = max(1, free // 4 // max(bytes_per_set, 1))
    return int(max(1, min(wanted, 16, affordable)))


def measure_ceilings():
    n = 1 << 30 if DEVICE == "cuda" else 1 << 22
    src = torch.ones(n, dtype=torch.uint8, device=DEVICE)
    dst = torch.empty_like(src)
    t = time_it(lambda _: dst.copy_(src), 1)
    copy_gbps = 2 * n / (t["median_ms"] * 1e-3) / 1e9
    del src, dst
    size = 8192 if DEVICE == "cuda" else 128
    a = torch.rand(size, size, device=DEVICE, dtype=torch.bfloat16)
    b = torch.rand(size, size, device=DEVICE, dtype=torch.bfloat16)
    t = time_it(lambda _: a @ b, 1)
    gemm_tflops = 2 * size**3 / (t["median_ms"] * 1e-3) / 1e12
    print(json.dumps({"source": "torch", "kernel": "ceiling", "shape": "device",
                      "copy_gbps": round(copy_gbps, 1), "gemm_tflops": round(gemm_tflops, 1)}),
          flush=True)
    return {"copy_gbps": copy_gbps, "gemm_tflops": gemm_tflops}


def report(impl, kernel, shape, timing, flops, nbytes, bound, ceilings):
    seconds = timing["median_ms"] * 1e-3
    tflops, gbps = flops / seconds / 1e12, nbytes / seconds / 1e9
    pct = 100 * (tflops / ceilings["gemm_tflops"] if bound == "compute"
                 else gbps / ceilings["copy_gbps"])
    print(json.dumps({"source": "torch", "impl": impl, "kernel": kernel, "shape": shape,
                      "median_ms": round(timing["median_ms"], 4),
                      "min_ms": round(timing["min_ms"], 4), "runs": timing["runs"],
                      "tflops": round(tflops, 2), "gbps": round(gbps, 1), "bound": bound,
                      "ceiling_tflops": round(ceilings["gemm_tflops"], 1),
                      "ceiling_gbps": round(ceilings["copy_gbps"], 1),
                      "pct_of_ceiling": round(pct, 1)}), flush=True)


def empty_cache():
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


def guarded(kernel, shape, body, impl="torch"):
    global ERRORS
    try:
        body()
    except Exception as error:  # noqa: BLE001 - one failing shape must not hide the others
        ERRORS += 1
        print(json.dumps({"source": "torch", "impl": impl, "kernel": kernel, "shape": shape,
                          "error": str(error).splitlines()[0] if str(error) else repr(error)}),
              flush=True)
    finally:
        empty_cache()


def bench_attention(ceilings):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
    if DEVICE != "cuda":  # the enum names are checked above; cuDNN has no CPU kernel
        backends["cudnn"] = SDPBackend.MATH
    for D in (64, 128):
        for T in ((64,) if SMOKE else (1024, 2048, 4096, 8192)):
            B, H = (2, 2) if SMOKE else (16384 // T, 2048 // D)
            shape = f"B={B} H={H} T={T} D={D} causal bf16"
            tensor_bytes = B * H * T * D * 2
            lse_bytes = B * H * T * 4
            rotations = rotation_count(8 * tensor_bytes + lse_bytes)
            sets = [[torch.randn(B, H, T, D, device=DEVICE, dtype=torch.bfloat16)
                     for _ in range(4)] for _ in range(rotations)]  # q, k, v, dout
            forward_flops = 4.0 * B * H * T * T * D / 2
            for impl, backend in backends.items():
                def forward(r):
                    q, k, v, _ = sets[r]
                    return F.scaled_dot_product_attention(q, k, v, is_causal=True)

                def forward_backward(r):
                    q, k, v, dout = sets[r]
                    q, k, v = (x.detach().requires_grad_() for x in (q, k, v))
                    F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(dout)

                def run_fwd():
                    with sdpa_kernel(backend):
                        t = time_it(forward, rotations)
                    report(impl, "attention_fwd", shape, t, forward_flops,
                           4 * tensor_bytes + lse_bytes, "compute", ceilings)

                def run_fwd_bwd():
                    with sdpa_kernel(backend):
                        t = time_it(forward_backward, rotations)
                    report(impl, "attention_fwd+bwd", shape, t, 3.5 * forward_flops,
                           12 * tensor_bytes + 2 * lse_bytes, "compute", ceilings)

                guarded("attention_fwd", shape, run_fwd, impl)
                guarded("attention_fwd+bwd", shape, run_fwd_bwd, impl)
            del sets


def bench_layernorm(ceilings):
    N = 64 if SMOKE else 16384
    for C in ((64,) if SMOKE else (768, 1024, 2048, 4096)):
        shape = f"N={N} C={C} bf16"
        activation_bytes, vector_bytes, stats_bytes = N * C * 2, C * 2, N * 4
        rotations = rotation_count(4 * activation_bytes + 2 * stats_bytes)
        xs = [torch.randn(N, C, device=DEVICE, dtype=torch.bfloat16) for _ in range(rotations)]
        dys = [torch.randn(N, C, device=DEVICE, dtype=torch.bfloat16) for _ in range(rotations)]
        weight = torch.randn(C, device=DEVICE, dtype=torch.bfloat16, requires_grad=True)
        bias = torch.randn(C, device=DEVICE, dtype=torch.bfloat16, requires_grad=True)
        forward_bytes = 2 * activation_bytes + 2 * vector_bytes + 2 * stats_bytes
        backward_bytes = 3 * activation_bytes + 3 * vector_bytes + 2 * stats_bytes

        def run_fwd():
            with torch.no_grad():
                t = time_it(lambda r: F.layer_norm(xs[r], (C,), weight, bias, 1e-5), rotations)
            report("torch", "layernorm_fwd", shape, t, 8.0 * N * C, forward_bytes, "memory",
                   ceilings)

        def run_fwd_bwd():
            def step(r):
                x = xs[r].detach().requires_grad_()
                F.layer_norm(x, (C,), weight, bias, 1e-5).backward(dys[r])
            t = time_it(step, rotations)
            report("torch", "layernorm_fwd+bwd", shape, t, 20.0 * N * C,
                   forward_bytes + backward_bytes, "memory", ceilings)

        guarded("layernorm_fwd", shape, run_fwd)
        guarded("layernorm_fwd+bwd", shape, run_fwd_bwd)
        del xs, dys


def bench_cross_entropy(ceilings):
    V = 50304
    for rows in ((8,) if SMOKE else (4096, 8192)):
        shape = f"N={rows} V={V} bf16"
        logits_bytes, row_bytes = rows * V * 2, rows * 4
        rotations = rotation_count(2 * logits_bytes)
        logits = [torch.randn(rows, V, device=DEVICE, dtype=torch.bfloat16) * 2
                  for _ in range(rotations)]
        targets = torch.randint(0, V, (rows,), device=DEVICE)

        def run_fwd():
            with torch.no_grad():
                t = time_it(lambda r: F.cross_entropy(logits[r], targets), rotations)
            report("torch", "cross_entropy_fwd", shape, t, 4.0 * rows * V,
                   logits_bytes + 3 * row_bytes, "memory", ceilings)

        def run_fwd_bwd():
            def step(r):
                x = logits[r].detach().requires_grad_()
                F.cross_entropy(x, targets).backward()
            t = time_it(step, rotations)
            report("torch", "cross_entropy_fwd+bwd", shape, t, 8.0 * rows * V,
                   3 * logits_bytes + 6 * row_bytes, "memory", ceilings)

        guarded("cross_entropy_fwd", shape, run_fwd)
        guarded("cross_entropy_fwd+bwd", shape, run_fwd_bwd)
        del logits


def gpt2_small_sizes():
    C, V, T = 768, 50304, 1024
    sizes = [V * C, T * C]
    for _ in range(12):
        sizes += [C, C, 3 * C * C, 3 * C, C * C, C, C, C, 4 * C * C, 4 * C, 4 * C * C, C]
    return sizes + [C, C]


def bench_adamw(ceilings):
    sizes = [64 * 64, 64, 3 * 64] if SMOKE else gpt2_small_sizes()
    total = sum(sizes)
    shape = f"gpt2-124M n={total} tensors={len(sizes)}"

    def run():
        params = [torch.nn.Parameter(torch.randn(n, device=DEVICE)) for n in sizes]
        for p in params:
            p.grad = torch.randn_like(p) * 1e-2
        optimizer = torch.optim.AdamW(params, lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1,
                                      fused=True)
        t = time_it(lambda _: optimizer.step(), 1)
        report("torch", "adamw_step", shape, t, 12.0 * total, 28.0 * total, "memory", ceilings)

    guarded("adamw_step", shape, run)


def bench_gemm(ceilings):
    tokens, C = (32, 64) if SMOKE else (16384, 768)
    shapes = [(tokens, 3 * C, C), (tokens, C, C), (tokens, 4 * C, C), (tokens, C, 4 * C),
              (tokens, 50304, C), (8192, 8192, 8192)]
    if SMOKE:
        shapes = shapes[:-1]
    for M, N, K in shapes:
        shape = f"M={M} N={N} K={K} bf16"
        nbytes = (M * K + K * N + M * N) * 2
        rotations = rotation_count(nbytes)

        def run():
            a = [torch.randn(M, K, device=DEVICE, dtype=torch.bfloat16) for _ in range(rotations)]
            b = [torch.randn(K, N, device=DEVICE, dtype=torch.bfloat16) for _ in range(rotations)]
            t = time_it(lambda r: a[r] @ b[r], rotations)
            report("torch", "gemm", shape, t, 2.0 * M * N * K, nbytes, "compute", ceilings)

        guarded("gemm", shape, run)


BENCHES = {"attention": bench_attention, "layernorm": bench_layernorm,
           "cross_entropy": bench_cross_entropy, "adamw": bench_adamw, "gemm": bench_gemm}


def main():
    global BUDGET_MS, DEVICE, SMOKE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated subset")
    parser.add_argument("--budget-ms", type=float, default=BUDGET_MS,
                        help="timing budget per measurement")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: the smoke mode (tiny shapes; exit 1 on any error line)")
    args = parser.parse_args()
    BUDGET_MS = args.budget_ms
    DEVICE, SMOKE = args.device, args.device == "cpu"
    if SMOKE:
        BUDGET_MS = min(BUDGET_MS, 5.0)
        print(json.dumps({"source": "torch", "kernel": "versions", "shape": "-",
                          "torch": torch.__version__, "device": "cpu"}), flush=True)
        ceilings = measure_ceilings()
        for name in args.only.split(","):
            BENCHES[name](ceilings)
        return 1 if ERRORS else 0
    if not torch.cuda.is_available():
        print(json.dumps({"source": "torch", "kernel": "setup", "shape": "-",
                          "error": "torch.cuda.is_available() is False"}))
        return 1
    print(json.dumps({"source": "torch", "kernel": "versions", "shape": "-",
                      "torch": torch.__version__, "cuda": torch.version.cuda,
                      "cudnn": torch.backends.cudnn.version(),
                      "device": torch.cuda.get_device_name(0)}), flush=True)
    ceilings = measure_ceilings()
    for name in args.only.split(","):
        BENCHES[name](ceilings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
