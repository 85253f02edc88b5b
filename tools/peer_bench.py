#!/usr/bin/env python3
"""infiniscope's CPU reference against ONNX Runtime on the same model and text.

Both read the same text chunk by chunk (32 segments per call, M and z carried), with
the same thread count: one (each pinned to CPU 0 with taskset) and two. The runs are
interleaved, reference then onnxruntime, round after round, so that a shared machine's
slow minutes fall on both; each engine's tokens/s counts time in the engine only
(`infiniscope long --cpu`; onnxruntime's session.run, from tools/export_onnx.py
--check). Prints a Markdown table of medians and ratios, and the mean loss each
engine read (it stops if they differ by more than 2e-4).

Usage:
  python3 tools/peer_bench.py [--model models/infini-tiny] [--text samples/paradise-lost.txt]
      [--chars 150000] [--rounds 5] [--cli target/release/infiniscope]
Needs: the infiniscope binary (cargo build --release) and
pip install onnx onnxruntime numpy tokenizers
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(command):
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(map(str, command))} failed:\n{out.stderr}")
    return out.stdout


def reference(cli, model, text, tokens, threads):
    """tokens/s and mean loss of the CPU reference over the whole text."""
    pin = ["taskset", "-c", "0"] if threads == 1 else []
    out = run(pin + [cli, "long", "--cpu", "--model", model, "--text", text, "--marks", str(tokens)])
    row = out.strip().splitlines()[-1].split()
    # tokens seconds tokens/s-so-far tokens/s-since-last RSS peak mean-loss non-finite
    return float(row[2]), float(row[6])


def onnxruntime(model, text, threads):
    pin = ["taskset", "-c", "0"] if threads == 1 else []
    out = run(pin + [sys.executable, str(ROOT / "tools/export_onnx.py"), model, "--check", text,
                     "--threads", str(threads)])
    found = re.search(r"overall: loss ([0-9.]+) nats over (\d+) predicted tokens; onnxruntime (\d+) tokens/s", out)
    if not found:
        sys.exit(f"unexpected output from export_onnx.py:\n{out[-500:]}")
    return float(found.group(3)), float(found.group(1)), int(found.group(2)) + 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models/infini-tiny"))
    parser.add_argument("--text", default=str(ROOT / "samples/paradise-lost.txt"))
    parser.add_argument("--chars", type=int, default=150_000, help="characters of the text read (from its start)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cli", default=str(ROOT / "target/release/infiniscope"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "text.txt"
        text.write_text(Path(args.text).read_text(encoding="utf-8")[: args.chars], encoding="utf-8")
        rows = []
        for threads in (1, 2):
            rates = {"reference": [], "onnxruntime": []}
            losses = {}
            for _ in range(args.rounds):
                ort_rate, losses["onnxruntime"], tokens = onnxruntime(args.model, str(text), threads)
                ref_rate, losses["reference"] = reference(args.cli, args.model, str(text), tokens, threads)
                rates["reference"].append(ref_rate)
                rates["onnxruntime"].append(ort_rate)
            if abs(losses["reference"] - losses["onnxruntime"]) > 2e-4:
                sys.exit(f"the engines disagree: mean loss {losses['reference']} (reference) "
                         f"against {losses['onnxruntime']} (onnxruntime)")
            rows.append((threads, tokens, rates, losses))
    rel = lambda p: os.path.relpath(p, Path.cwd())
    print(f"model {rel(args.model)}; text: the first {args.chars:,} characters of {rel(args.text)}; "
          f"{args.rounds} interleaved rounds per thread count\n")
    print("| threads | engine | median tokens/s | runs | mean loss | reference / onnxruntime |")
    print("|---|---|---|---|---|---|")
    for threads, tokens, rates, losses in rows:
        medians = {k: statistics.median(v) for k, v in rates.items()}
        for engine in ("reference", "onnxruntime"):
            ratio = f"**{medians['reference'] / medians['onnxruntime']:.2f}×**" if engine == "reference" else ""
            runs = ", ".join(f"{r:,.0f}" for r in rates[engine])
            print(f"| {threads} | {'CPU reference' if engine == 'reference' else 'ONNX Runtime'} | "
                  f"{medians[engine]:,.0f} | {runs} | {losses[engine]:.4f} | {ratio} |")
    print(f"\n{tokens:,} tokens per run.")


if __name__ == "__main__":
    main()
