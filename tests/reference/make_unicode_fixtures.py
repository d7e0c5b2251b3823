#!/usr/bin/env python3
"""GPT-2 pre-tokeniser fixtures from GPT-2's own pattern run by Python's `regex` module (PyPI).

Run with a Python that has `regex`:  /work/wt/venv/bin/python tests/reference/make_unicode_fixtures.py
Writes tests/reference/unicode/:
  classes.txt  every code point 0..U+10FFFF (surrogates excluded) as runs "first last class",
               class L (\\p{L}), N (\\p{N}), S (\\s), O (anything else), or X where the Unicode
               version of `regex` and Unicode 14.0 (PCRE2 10.42 in Debian 12, and this Python's
               unicodedata) disagree: a code point assigned or recategorised after 14.0. tiller's
               test checks every non-X code point and counts the X ones.
  splits.jsonl 2,000 lines of random Unicode (ASCII words and spaces, letters, digits, marks and
               symbols from every plane, Unicode whitespace, contractions) with the pieces GPT-2's
               pattern cuts them into, as code-point counts. Code points of class X are not drawn.
"""
import json
import os
import random
import sys
import unicodedata

import regex

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "unicode")
GPT2_PATTERN = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
LINES = 2000


def regex_class(c):
    ch = chr(c)
    if regex.match(r"\p{L}", ch):
        return "L"
    if regex.match(r"\p{N}", ch):
        return "N"
    if regex.match(r"\s", ch):
        return "S"
    return "O"


WHITE_SPACE = {0x9, 0xA, 0xB, 0xC, 0xD, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
               0x2028, 0x2029, 0x202F, 0x205F, 0x3000}  # Unicode's White_Space, stable since 6.3


def unicode14_class(c):
    if c in WHITE_SPACE:
        return "S"
    category = unicodedata.category(chr(c))
    return {"L": "L", "N": "N"}.get(category[0], "O")


def code_points():
    return (c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)


def write_classes():
    assert unicodedata.unidata_version == "14.0.0", "needs a Python whose unicodedata is 14.0"
    runs, counts = [], {}
    for c in code_points():
        cls = regex_class(c)
        if cls != unicode14_class(c):
            cls = "X"
        counts[cls] = counts.get(cls, 0) + 1
        if runs and runs[-1][2] == cls and runs[-1][1] == c - 1:
            runs[-1][1] = c
        else:
            runs.append([c, c, cls])
    with open(os.path.join(OUT, "classes.txt"), "w") as f:
        f.write(f"# GPT-2 classes by Python regex {regex.__version__}; X = differs from Unicode 14.0\n")
        for first, last, cls in runs:
            f.write(f"{first:X} {last:X} {cls}\n")
    print(f"classes.txt: {len(runs)} runs, {counts}")
    return runs


def pools(runs):
    by_class = {"L": [], "N": [], "S": [], "O": []}
    for first, last, cls in runs:
        if cls != "X":
            by_class[cls].append((first, last))
    return by_class


def draw(rng, ranges):
    weights = [last - first + 1 for first, last in ranges]
    first, last = rng.choices(ranges, weights)[0]
    return chr(rng.randint(first, last))


def random_line(rng, by_class):
    letters_bmp = [(a, min(b, 0xFFFF)) for a, b in by_class["L"] if a <= 0xFFFF]
    letters_astral = [(max(a, 0x10000), b) for a, b in by_class["L"] if b >= 0x10000]
    parts = []
    for _ in range(rng.randint(1, 24)):
        kind = rng.random()
        if kind < 0.25:
            parts.append(rng.choice(["the", "Fox", "runs", "x", "über", "日本", "42", "3.5"]))
        elif kind < 0.45:
            parts.append(" " * rng.randint(1, 3) if rng.random() < 0.8 else
                         "".join(draw(rng, by_class["S"]) for _ in range(rng.randint(1, 3))))
        elif kind < 0.55:
            parts.append("".join(draw(rng, letters_bmp) for _ in range(rng.randint(1, 4))))
        elif kind < 0.65:
            parts.append("".join(draw(rng, letters_astral) for _ in range(rng.randint(1, 4))))
        elif kind < 0.72:
            parts.append("".join(draw(rng, by_class["N"]) for _ in range(rng.randint(1, 3))))
        elif kind < 0.85:
            parts.append("".join(draw(rng, by_class["O"]) for _ in range(rng.randint(1, 3))))
        elif kind < 0.92:
            parts.append(rng.choice(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'x", "'"]))
        else:
            parts.append(rng.choice(["\n", "\t", "\r\n", ".", ",", "!?"]))
    return "".join(parts)


def write_splits(runs):
    rng = random.Random(15)
    by_class = pools(runs)
    non_ascii = 0
    with open(os.path.join(OUT, "splits.jsonl"), "w", encoding="utf-8") as f:
        for _ in range(LINES):
            line = random_line(rng, by_class)
            pieces = GPT2_PATTERN.findall(line)
            assert "".join(pieces) == line
            non_ascii += sum(ord(ch) > 0x7F for ch in line)
            f.write(json.dumps({"text": line, "pieces": [len(p) for p in pieces]},
                               ensure_ascii=False) + "\n")
    print(f"splits.jsonl: {LINES} lines, {non_ascii} non-ASCII code points")


if __name__ == "__main__":
    if len(sys.argv) != 1:
        sys.exit(__doc__)
    os.makedirs(OUT, exist_ok=True)
    runs = write_classes()
    write_splits(runs)
