#!/usr/bin/env python3
"""The PyTorch side of bench/device-check, run on the CPU in tiny shapes: API drift shows here.

Runs torch_bench.py, torch_train_gpt2.py and torch_generate.py with --device cpu (each exits 1 on
any "error" line: a renamed SDPA backend, a transformers generate() argument that went away, a
fused AdamW that no longer takes CPU tensors), then feeds compare.py their output twice: as the
PyTorch side and, the first implementation of each (kernel, shape) relabelled with its time
halved, as the tiller side, so each row joining a record with its own copy must read exactly
"2.00x" — a join key or a column that drifted fails it.

Exit status: 0 passed, 1 failed, 77 skipped (torch not importable: ctest reports it as skipped).
Usage: python3 bench/torch_smoke.py   (the ctest torch_bench_smoke runs it)
"""

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = ("torch_bench.py", "torch_train_gpt2.py", "torch_generate.py")


def fail(message):
    print(f"torch_smoke: FAILED: {message}")
    sys.exit(1)


def as_tiller(line, relabelled):
    """The tiller-side copy of a measurement, or None when its (kernel, shape) has one already;
    relabelled maps (kernel, shape) to the PyTorch implementation copied."""
    record = json.loads(line)
    key = (record["kernel"], record["shape"])
    if "median_ms" not in record or key in relabelled:
        return None
    relabelled[key] = record.get("impl", "torch")
    record.update(source="tiller", impl="tiller")
    for key in ("median_ms", "mean_ms", "min_ms"):
        if key in record:
            record[key] /= 2
    if "tokens_per_s" in record:
        record["tokens_per_s"] *= 2
    return json.dumps(record)


def main():
    try:
        import torch  # noqa: F401 - only whether it imports
    except ImportError as error:
        print(f"SKIPPED: torch is not importable by {sys.executable} ({error})")
        return 77
    with tempfile.TemporaryDirectory() as folder:
        # The three scripts run at once: most of each one's time is importing torch.
        running = []
        for script in SCRIPTS:
            output = os.path.join(folder, script.replace(".py", ".jsonl"))
            with open(output, "w", encoding="utf-8") as handle:
                running.append((script, output, subprocess.Popen(
                    [sys.executable, os.path.join(HERE, script), "--device", "cpu"],
                    stdout=handle, stderr=subprocess.PIPE, text=True, cwd=HERE)))
        torch_files, tiller_lines, relabelled = [], [], {}
        for script, output, process in running:
            _, stderr = process.communicate(timeout=600)
            with open(output, encoding="utf-8") as handle:
                lines = [line for line in handle if line.startswith("{")]
            if process.returncode != 0:
                errors = [line.strip() for line in lines if '"error"' in line]
                fail(f"{script} --device cpu exited {process.returncode}:\n"
                     + "\n".join(errors) + "\n" + stderr[-3000:])
            timed = [line for line in lines if '"median_ms"' in line]
            if not timed:
                fail(f"{script} --device cpu printed no measurement")
            print(f"torch_smoke: {script}: {len(timed)} measurements")
            torch_files.append(output)
            tiller_lines += [converted for converted in (as_tiller(line, relabelled)
                                                         for line in timed) if converted]
        tiller_file = os.path.join(folder, "tiller.jsonl")
        with open(tiller_file, "w", encoding="utf-8") as handle:
            handle.write("\n".join(tiller_lines) + "\n")
        compare = subprocess.run([sys.executable, os.path.join(HERE, "compare.py"), tiller_file,
                                  "--torch", *torch_files], capture_output=True, text=True,
                                 timeout=120, check=False)
        if compare.returncode != 0:
            fail(f"compare.py exited {compare.returncode}:\n{compare.stderr[-3000:]}")
        rows = [line for line in compare.stdout.splitlines()
                if line.startswith("| ") and not line.startswith(("| kernel", "| benchmark"))]
        kernel_rows = [row for row in rows if row.count("|") == 7]
        end_to_end_rows = [row for row in rows if row.count("|") == 9 and "| tiller |" not in row]
        if not kernel_rows or not end_to_end_rows:
            fail(f"compare.py printed no kernel or no end-to-end rows:\n{compare.stdout}")
        checked = 0
        for row in kernel_rows + end_to_end_rows:
            cells = [cell.strip() for cell in row.split("|")]
            impl = relabelled.get((cells[1], cells[2]))
            if impl is None:
                fail(f"a row for a (kernel, shape) never measured: {row}")
            if row in kernel_rows:
                own, ratio = cells[4].startswith(f"{impl}:"), cells[5]
            else:
                own, ratio = cells[3] == impl, cells[8]
            if own:
                checked += 1
                if ratio != "2.00x":
                    fail(f"row joining a record with its halved copy does not read 2.00x: {row}")
        if checked != len(relabelled):
            fail(f"{checked} rows joined a record with its copy, expected {len(relabelled)}")
        if "Not measured" in compare.stdout:
            fail(f"compare.py lists problems:\n{compare.stdout}")
        print(f"torch_smoke: compare.py printed {len(kernel_rows)} kernel and "
              f"{len(end_to_end_rows)} end-to-end rows; the {checked} joining a record with its "
              "halved copy read 2.00x")
    print(f"torch_smoke: passed (torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
