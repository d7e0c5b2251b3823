#!/usr/bin/env bash
# Data-parallel CPU pretraining throughput: examples/pretrain at 1 rank x 2 OpenMP threads against
# 2 ranks (mpirun -np 2) x 1 thread, same global batch, same data, same steps; 1 rank x 1 thread
# as the baseline both are measured against. Prints a markdown
# table: median tokens/s over the steps after the first 5, the median step time and, for 2 ranks,
# rank 0's median time inside collectives per step (metrics.jsonl "comm_seconds": from issuing a
# collective to its completion, so it includes waiting for the slower rank, not only the transfer).
#
#   bench/dist_pretrain.sh [build dir (build/cpu-only)] [steps (30)]
# Extra arguments for both runs: PRETRAIN_ARGS="--family llama" bench/dist_pretrain.sh
# On a shared machine the numbers move with the other load; run it when the machine is quiet.
set -euo pipefail
build=${1:-build/cpu-only}
steps=${2:-30}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--steps "$steps" --eval-every 0 --eval-batches 1 --sample-every 0 --checkpoint-every 0
        --log-every 10 --data-dir "$work/data" ${PRETRAIN_ARGS:-})
mpirun=(mpirun --oversubscribe -np 2 -x OMP_NUM_THREADS=1)
[ "$(id -u)" = 0 ] && mpirun=(mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1)

OMP_NUM_THREADS=1 "$build/examples/pretrain" --out "$work/base" "${common[@]}" > "$work/base.log"
OMP_NUM_THREADS=2 "$build/examples/pretrain" --out "$work/one" "${common[@]}" > "$work/one.log"
"${mpirun[@]}" "$build/examples/pretrain" --out "$work/two" "${common[@]}" > "$work/two.log"

python3 - "$work" <<'PY'
import json, statistics, sys
work = sys.argv[1]
def summary(run):
    rows = [json.loads(line) for line in open(f"{work}/{run}/metrics.jsonl")]
    steps = [r for r in rows if "tokens_per_sec" in r][5:]
    tps = statistics.median(r["tokens_per_sec"] for r in steps)
    step_ms = statistics.median(r["tokens"] / r["step"] / r["tokens_per_sec"] * 1e3 for r in steps)
    comm = [r["comm_seconds"] * 1e3 for r in steps if "comm_seconds" in r]
    loss = [r for r in rows if "loss" in r][-1]["loss"]
    return tps, step_ms, (statistics.median(comm) if comm else None), loss, len(steps)
print("| run | tokens/s | step ms | comm ms/step (rank 0) | final train loss | steps timed |")
print("|---|---|---|---|---|---|")
for name, run in (("1 rank x 1 thread", "base"), ("1 rank x 2 threads", "one"),
                  ("2 ranks x 1 thread", "two")):
    tps, step_ms, comm, loss, n = summary(run)
    print(f"| {name} | {tps:,.0f} | {step_ms:.1f} | {'-' if comm is None else f'{comm:.1f}'} | {loss:.4f} | {n} |")
PY
