#!/usr/bin/env python3
"""Summarises `infiniscope passkey --json` outputs for a model card.

For each file: keys returned whole by free-running greedy generation and the mean
teacher-forced digit accuracy per length; the misses that are the key's own digits in
another order; and keys whole split by whether the key repeats a digit (recall by the
token before cannot tell which of two equal digits comes next).

Usage: python3 tools/passkey_report.py RESULT.json [RESULT.json ...]
"""

import json
import sys


def report(path):
    with open(path) as f:
        results = json.load(f)["results"]
    print(path)
    lengths = {}
    for cell in results:
        lengths.setdefault(cell["length"], []).append(cell)
    for length, cells in lengths.items():
        keys = sum(len(c["answers"]) for c in cells)
        whole = sum(a["answer"] == str(a["key"]).zfill(5) for c in cells for a in c["answers"])
        digits = sum(c["digit_accuracy"] * len(c["answers"]) for c in cells) / keys
        print(f"  {length:>9} tokens: {whole} of {keys} whole, digits (teacher-forced) {digits:.2f}")
    split = {False: [0, 0], True: [0, 0]}
    permuted = other = 0
    for cell in results:
        for a in cell["answers"]:
            key, answer = str(a["key"]).zfill(5), a["answer"]
            repeats = len(set(key)) < len(key)
            split[repeats][0] += answer == key
            split[repeats][1] += 1
            if answer != key:
                if sorted(answer) == sorted(key):
                    permuted += 1
                else:
                    other += 1
    print(f"  misses: {permuted} the key's digits in another order, {other} other")
    print(f"  whole: distinct digits {split[False][0]} of {split[False][1]}, "
          f"a digit repeated {split[True][0]} of {split[True][1]}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for path in sys.argv[1:]:
        report(path)
