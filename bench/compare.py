#!/usr/bin/env python3
"""Merges tiller's and PyTorch's benchmark JSON lines into markdown tables.

Usage: python3 bench/compare.py TILLER.jsonl [TILLER2.jsonl ...] --torch TORCH.jsonl [...]

Rows are joined on (kernel, shape). A kernel PyTorch runs in several ways (SDPA flash and cuDNN)
gives one row per PyTorch implementation. Columns:
  ours       tiller's median time and its rate (TFLOP/s for compute-bound kernels, GB/s otherwise)
  PyTorch    the same for PyTorch
  ratio      PyTorch time / tiller time (above 1: tiller is faster)
  % ceiling  tiller's rate as a share of the ceiling measured in tiller's own run
End-to-end records (those with "tokens_per_s": GPT-2 training and generation) get a second table,
one row per implementation: time per call (mean for training, median for generation, as the
benchmarks compute tokens/s), tokens/s, % of that run's own ceiling (training: MFU against the
measured bf16 GEMM; generation: weight bytes per forward against the device copy), training MFU
against the H200 datasheet, and tiller's tokens/s over that row's (above 1: tiller is faster).
Lines that are not JSON, or carry an "error", are listed under the tables instead of dropped.
"""

import argparse
import json
import sys


def read_lines(paths):
    results, problems = [], []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    line = line.strip()
                    if not line.startswith("{"):
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        problems.append(f"{path}: unparsable line: {line[:120]}")
                        continue
                    if "error" in record:
                        problems.append(f"{path}: {record.get('kernel')} [{record.get('shape')}] "
                                        f"{record.get('impl', '')}: {record['error']}")
                    elif "median_ms" in record:
                        results.append(record)
        except OSError as error:
            problems.append(f"{path}: {error}")
    return results, problems


def rate(record):
    if record.get("bound") == "compute":
        return f"{record['tflops']:.1f} TFLOP/s"
    return f"{record['gbps']:.0f} GB/s"


def table(ours, theirs):
    torch_by_key = {}
    for record in theirs:
        torch_by_key.setdefault((record["kernel"], record["shape"]), []).append(record)
    lines = ["| kernel | shape | ours | PyTorch | ratio | % ceiling |",
             "|---|---|---|---|---|---|"]
    seen = set()
    for record in ours:
        key = (record["kernel"], record["shape"])
        seen.add(key)
        mine = f"{record['median_ms']:.3f} ms, {rate(record)}"
        ceiling = f"{record['pct_of_ceiling']:.0f}%"
        matches = torch_by_key.get(key) or [None]
        for other in matches:
            if other is None:
                lines.append(f"| {key[0]} | {key[1]} | {mine} | - | - | {ceiling} |")
                continue
            ratio = other["median_ms"] / record["median_ms"]
            theirs_text = f"{other.get('impl', 'torch')}: {other['median_ms']:.3f} ms, {rate(other)}"
            lines.append(f"| {key[0]} | {key[1]} | {mine} | {theirs_text} | {ratio:.2f}x | "
                         f"{ceiling} |")
    for key, records in torch_by_key.items():
        if key not in seen:
            for other in records:
                lines.append(f"| {key[0]} | {key[1]} | - | {other.get('impl', 'torch')}: "
                             f"{other['median_ms']:.3f} ms, {rate(other)} | - | - |")
    return "\n".join(lines)


def is_end_to_end(record):
    return "tokens_per_s" in record


def end_to_end_table(records):
    lines = ["| benchmark | shape | impl | ms per call | tokens/s | % ceiling | MFU vs 989 TFLOP/s "
             "| tiller / this |",
             "|---|---|---|---|---|---|---|---|"]
    by_key = {}
    for record in records:  # tiller first within each (kernel, shape), then PyTorch in file order
        by_key.setdefault((record["kernel"], record["shape"]), []).append(record)
    for (kernel, shape), group in by_key.items():
        group.sort(key=lambda r: r.get("source") != "tiller")
        tiller = next((r for r in group if r.get("source") == "tiller"), None)
        for record in group:
            ms = record["mean_ms"] if kernel.startswith("train") else record["median_ms"]
            datasheet = record.get("mfu_datasheet_pct")
            relative = (f"{tiller['tokens_per_s'] / record['tokens_per_s']:.2f}x"
                        if tiller and record is not tiller and record["tokens_per_s"] > 0
                        else "-")
            lines.append(f"| {kernel} | {shape} | {record.get('impl', record.get('source'))} | "
                         f"{ms:.2f} | {record['tokens_per_s']:,.0f} | "
                         f"{record['pct_of_ceiling']:.1f}% | "
                         f"{'-' if datasheet is None else f'{datasheet:.1f}%'} | {relative} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tiller", nargs="+", help="JSON-line outputs of bench_cuda_*")
    parser.add_argument("--torch", nargs="+", default=[],
                        help="JSON-line outputs of torch_bench.py, torch_train_gpt2.py, ...")
    args = parser.parse_args()
    ours, problems = read_lines(args.tiller)
    theirs, torch_problems = read_lines(args.torch)
    print(table([r for r in ours if not is_end_to_end(r)],
                [r for r in theirs if not is_end_to_end(r)]))
    end_to_end = [r for r in ours + theirs if is_end_to_end(r)]
    if end_to_end:
        print("\n" + end_to_end_table(end_to_end))
    if problems or torch_problems:
        print("\nNot measured:\n")
        for problem in problems + torch_problems:
            print(f"- {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
