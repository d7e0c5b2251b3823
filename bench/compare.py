#!/usr/bin/env python3
"""Merges tiller's and PyTorch's benchmark JSON lines into one markdown table.

Usage: python3 bench/compare.py TILLER.jsonl [TILLER2.jsonl ...] --torch TORCH.jsonl

Rows are joined on (kernel, shape). A kernel PyTorch runs in several ways (SDPA flash and cuDNN)
gives one row per PyTorch implementation. Columns:
  ours       tiller's median time and its rate (TFLOP/s for compute-bound kernels, GB/s otherwise)
  PyTorch    the same for PyTorch
  ratio      PyTorch time / tiller time (above 1: tiller is faster)
  % ceiling  tiller's rate as a share of the ceiling measured in tiller's own run
Lines that are not JSON, or carry an "error", are listed under the table instead of dropped.
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tiller", nargs="+", help="JSON-line outputs of bench_cuda_*")
    parser.add_argument("--torch", default=None, help="JSON-line output of torch_bench.py")
    args = parser.parse_args()
    ours, problems = read_lines(args.tiller)
    theirs, torch_problems = read_lines([args.torch]) if args.torch else ([], [])
    print(table(ours, theirs))
    if problems or torch_problems:
        print("\nNot measured:\n")
        for problem in problems + torch_problems:
            print(f"- {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
