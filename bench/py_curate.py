#!/usr/bin/env python3
"""Side by side with the Python tools people use, on the data bench_cpu_curate wrote.

    ./build/cpu-only/bench/bench_cpu_curate --write /tmp/curate_bench
    /work/wt/venv/bin/python bench/py_curate.py /tmp/curate_bench

1. Near-duplicates: datasketch's MinHash ("legacy" scheme: (a*h + b) mod 2^61-1, truncated to 32
   bits, in uint64 with numpy's wrap-around) with the SAME shingles (word 5-grams of the
   normalised text, crc32 hashes), the SAME permutations (a, b from config.json) and the SAME
   bands (MinHashLSH params=(20, 5)); candidates confirmed by the exact Jaccard >= 0.7 on the
   64-bit shingle sets and merged with union-find, one row (the earliest) kept per cluster.
   Compared row by row with tiller's verdicts (cpp_near_dup_chats.txt) and in speed.
2. Gopher rules: datatrove's GopherRepetitionFilter then GopherQualityFilter (their defaults are
   Gopher's thresholds, as tiller's) on docs.jsonl, compared row by row (pass/fail and the rule)
   with cpp_gopher_docs.txt, and in speed.
The data is ASCII, so the normalisation below (lower-case, math symbols as words, other ASCII
punctuation to spaces, whitespace folded) equals tiller's normalize_text on it.
"""
import json
import string
import sys
import time
import zlib

import numpy as np
from datasketch import MinHash, MinHashLSH

MATH = "+*/=<>^%"
PUNCT = str.maketrans({c: (f" {c} " if c in MATH else " ") for c in string.punctuation})


def normalize(text):
    return " ".join(text.lower().translate(PUNCT).split())


def shingles(normalized, n):
    words = normalized.split(" ") if normalized else []
    if not words:
        return []
    if len(words) < n:
        return [normalized]
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def row_text(record):
    if "messages" in record:
        user = "\n".join(m["content"] for m in record["messages"] if m["role"] == "user")
        answer = "\n".join(m["content"] for m in record["messages"] if m["role"] == "assistant")
        return answer if not user else user + "\n" + answer
    return record["text"]


def jaccard(a, b):
    if not a and not b:
        return 0.0
    common = len(a & b)
    return common / (len(a) + len(b) - common)


def find(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def near_dedup(directory):
    config = json.load(open(f"{directory}/config.json"))
    n, bands, rows = config["ngram"], config["bands"], config["rows_per_band"]
    a = np.array(config["a"], dtype=np.uint64)
    b = np.array(config["b"], dtype=np.uint64)
    records = [json.loads(line) for line in open(f"{directory}/chats.jsonl")]
    start = time.perf_counter()
    grams = [[g.encode() for g in shingles(normalize(row_text(r)), n)] for r in records]
    crc_low = [[zlib.crc32(g) for g in row] for row in grams]
    sets = [set(lo | (zlib.crc32(g, 0x5bd1e995) << 32) for lo, g in zip(row_low, row))
            for row_low, row in zip(crc_low, grams)]
    shingle_seconds = time.perf_counter() - start

    start = time.perf_counter()
    lsh = MinHashLSH(num_perm=bands * rows, params=(bands, rows))
    parent = list(range(len(records)))
    candidates = confirmed = 0
    for i, values in enumerate(crc_low):
        if not values:
            continue
        m = MinHash(num_perm=bands * rows, hashfunc=lambda x: x, permutations=(a, b),
                    scheme="legacy")
        m.update_batch(values)
        for j in lsh.query(m):
            if find(parent, j) == find(parent, i):
                continue
            candidates += 1
            if jaccard(sets[i], sets[j]) >= config["jaccard_threshold"]:
                confirmed += 1
                ri, rj = find(parent, i), find(parent, j)
                parent[max(ri, rj)] = min(ri, rj)
        lsh.insert(i, m)
    python_seconds = time.perf_counter() - start
    kept_of = [find(parent, i) for i in range(len(records))]

    cpp = [int(line) for line in open(f"{directory}/cpp_near_dup_chats.txt")]
    cpp_seconds = float(open(f"{directory}/cpp_near_dup_seconds.txt").read())
    py_removed = {i for i, k in enumerate(kept_of) if k != i}
    cpp_removed = {i for i, k in enumerate(cpp) if k != i}
    agree = sum((i in py_removed) == (i in cpp_removed) for i in range(len(records)))
    print(f"near dedup on {len(records)} chats ({bands} bands x {rows} rows, {n}-word shingles):")
    print(f"  datasketch MinHashLSH + exact Jaccard: {python_seconds:.2f} s "
          f"({len(records) / python_seconds:.0f} rows/s; shingling {shingle_seconds:.2f} s more), "
          f"{candidates} candidate pairs, {confirmed} confirmed, {len(py_removed)} rows removed")
    print(f"  tiller find_near_duplicates:           {cpp_seconds:.2f} s "
          f"({len(records) / cpp_seconds:.0f} rows/s), {len(cpp_removed)} rows removed")
    print(f"  row-by-row agreement: {agree}/{len(records)} ({agree / len(records):.4%}); "
          f"removed by both {len(py_removed & cpp_removed)}, only datasketch "
          f"{len(py_removed - cpp_removed)}, only tiller {len(cpp_removed - py_removed)}")


# datatrove's reasons -> tiller's rule names.
RULES = {
    "dup_para_frac": "gopher_duplicate_paragraphs", "dup_para_char_frac": "gopher_duplicate_paragraphs",
    "dup_line_frac": "gopher_duplicate_lines", "dup_line_char_frac": "gopher_duplicate_lines",
    "top_n_gram": "gopher_top_ngram", "duplicated_n_grams": "gopher_duplicate_ngrams",
    "gopher_short_doc": "gopher_word_count", "gopher_long_doc": "gopher_word_count",
    "gopher_below_avg_threshold": "gopher_mean_word_length",
    "gopher_above_avg_threshold": "gopher_mean_word_length",
    "gopher_too_many_hashes": "gopher_symbol_ratio", "gopher_too_many_ellipsis": "gopher_symbol_ratio",
    "gopher_too_many_bullets": "gopher_bullet_lines",
    "gopher_too_many_end_ellipsis": "gopher_ellipsis_lines",
    "gopher_below_alpha_threshold": "gopher_alphabetic_words",
    "gopher_enough_stop_words": "gopher_stop_words",
}


def gopher(directory):
    from datatrove.data import Document
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter

    docs = [json.loads(line)["text"] for line in open(f"{directory}/docs.jsonl")]
    repetition, quality = GopherRepetitionFilter(), GopherQualityFilter()
    start = time.perf_counter()
    verdicts = []
    for i, text in enumerate(docs):
        verdict = "pass"
        for f in (repetition, quality):
            result = f.filter(Document(text=text, id=str(i)))
            if result is not True and not (isinstance(result, tuple) and result[0]):
                reason = result[1] if isinstance(result, tuple) else "rejected"
                verdict = RULES.get(reason, reason)
                break
        verdicts.append(verdict)
    python_seconds = time.perf_counter() - start
    cpp = [line.strip() for line in open(f"{directory}/cpp_gopher_docs.txt")]
    cpp_seconds = float(open(f"{directory}/cpp_gopher_seconds.txt").read())
    same_pass = sum((p == "pass") == (c == "pass") for p, c in zip(verdicts, cpp))
    same_rule = sum(p == c for p, c in zip(verdicts, cpp))
    print(f"Gopher rules on {len(docs)} documents:")
    print(f"  datatrove: {python_seconds:.2f} s ({len(docs) / python_seconds:.0f} docs/s), "
          f"{sum(v != 'pass' for v in verdicts)} rejected")
    print(f"  tiller:    {cpp_seconds:.2f} s ({len(docs) / cpp_seconds:.0f} docs/s, one thread), "
          f"{sum(v != 'pass' for v in cpp)} rejected")
    print(f"  agreement: pass/fail {same_pass}/{len(docs)} ({same_pass / len(docs):.2%}), "
          f"same rule {same_rule}/{len(docs)} ({same_rule / len(docs):.2%})")
    differ = {}
    for p, c in zip(verdicts, cpp):
        if p != c:
            differ[(c, p)] = differ.get((c, p), 0) + 1
    for (c, p), count in sorted(differ.items(), key=lambda kv: -kv[1])[:8]:
        print(f"    tiller {c} vs datatrove {p}: {count}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    near_dedup(sys.argv[1])
    gopher(sys.argv[1])
