#!/usr/bin/env python3
"""Measure a trained model for its card: held-out perplexity (memory on, memory off,
a control model trained with memory off) at 4K/16K/64K tokens, the gate table, and
passkey accuracy over lengths x depths; plot the training loss. Every number comes
from the `infiniscope` CLI (CPU reference) run here; results go to OUT/eval.json.

Usage: python3 tools/evaluate.py --model models/infini-tiny --control data/models/infini-tiny-control \
           --text data/corpus/valid/austen_persuasion.txt --log data/checkpoints/infini-tiny/log.csv
"""
import argparse, csv, json, subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BIN = "target/release/infiniscope"


def cli(*args):
    out = subprocess.run([BIN, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def perplexities(model, text, memory, prefixes):
    """Mean loss over the first 4K/16K/64K tokens of one 64K-token run."""
    run = cli("eval", "--cpu", "--json", "--model", model, "--text", text,
              "--max-tokens", str(prefixes[-1]), "--memory", memory)
    result, done, total = {}, 0, 0.0
    for seg in run["segments"]:
        if done + seg["tokens"] >= run["tokens"]:
            break  # the last segment predicts one token fewer: use the run's own mean below
        total += seg["loss"] * seg["tokens"]
        done += seg["tokens"]
        if done in prefixes:
            result[done] = total / done
    result[run["tokens"]] = run["loss"]
    return run, result


def plot(log, png, control_log=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(path):
        # A resumed run repeats the steps after its last checkpoint: keep the later ones.
        rows = list({int(r["step"]): r for r in csv.DictReader(open(path))}.values())
        tokens = [int(r["tokens"]) / 1e6 for r in rows]
        loss = [float(r["loss"]) for r in rows]
        k = 25  # moving average: single steps are noisy
        smooth = [sum(loss[max(0, i - k):i + 1]) / len(loss[max(0, i - k):i + 1]) for i in range(len(loss))]
        return tokens, smooth
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(*series(log), label="infini-tiny (memory on)")
    if control_log:
        ax.plot(*series(control_log), label="control (memory off)", alpha=0.8)
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("weighted training loss (nats, 25-step mean)")
    ax.set_title("infini-tiny training loss (text + passkey mix)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--control", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--control-log")
    ap.add_argument("--trials", default="3")
    ap.add_argument("--prefixes", default="4096,16384,65536", help="token counts to report perplexity at")
    ap.add_argument("--lengths", default="1024,4096,16384,65536", help="passkey haystack lengths")
    args = ap.parse_args()
    out = Path(args.model)
    jobs = {
        "memory_on": (args.model, "on"),
        "memory_off": (args.model, "off"),
        "control": (args.control, "off"),
    }
    passkey = lambda memory: cli("passkey", "--cpu", "--json", "--model", args.model, "--memory", memory,
                                 "--lengths", args.lengths, "--depths", "0,0.25,0.5,0.75,1",
                                 "--trials", args.trials)
    with ThreadPoolExecutor(max_workers=2) as pool:
        prefixes = [int(p) for p in args.prefixes.split(",")]
        ppl = {k: pool.submit(perplexities, m, args.text, mem, prefixes) for k, (m, mem) in jobs.items()}
        keys = {mem: pool.submit(passkey, mem) for mem in ("on", "off")}
        ppl = {k: f.result() for k, f in ppl.items()}
        keys = {k: f.result() for k, f in keys.items()}
    result = {
        "text": args.text,
        "losses": {k: {str(p): v for p, v in r[1].items()} for k, r in ppl.items()},
        "heads": ppl["memory_on"][0]["heads"],
        "memory_bytes": ppl["memory_on"][0]["memory_bytes"],
        "passkey": {k: v["results"] for k, v in keys.items()},
        "passkey_trials": int(args.trials),
    }
    (out / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(args.log, out / "loss.png", args.control_log)
    print(tables(result))


def tables(r):
    """The card's tables, as Markdown."""
    import math
    lines = ["| tokens of the held-out text | memory on | memory off (same weights) | control (trained with memory off) |",
             "|---|---|---|---|"]
    for p in r["losses"]["memory_on"]:
        cells = [f"{math.exp(r['losses'][k][p]):.2f} ({r['losses'][k][p]:.4f})" for k in ("memory_on", "memory_off", "control")]
        lines.append(f"| {int(p):,} | " + " | ".join(cells) + " |")
    lines += ["", "| layer | " + " | ".join(f"head {h}" for h in range(len(r["heads"][0]))) + " |",
              "|---|" + "---|" * len(r["heads"][0])]
    for l, heads in enumerate(r["heads"]):
        lines.append(f"| {l} | " + " | ".join(f"g = {h['gate']:.3f} {h['kind']}, share {h['memory_share']:.3f}" for h in heads) + " |")
    for mem, rows in r["passkey"].items():
        depths = sorted({row["depth"] for row in rows})
        lines += ["", f"Passkey, memory {mem}: keys whole by greedy generation (teacher-forced digits right), {r['passkey_trials']} keys per cell",
                  "", "| length | " + " | ".join(f"depth {d:g}" for d in depths) + " |", "|---|" + "---|" * len(depths)]
        for length in sorted({row["length"] for row in rows}):
            cells = [next(f"{x['keys_whole']:.2f} ({x['digit_accuracy']:.2f})" for x in rows if x["length"] == length and x["depth"] == d) for d in depths]
            lines.append(f"| {length:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
