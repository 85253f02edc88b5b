"""Plot `infiniscope scaling --csv` results: tokens/s against text length, infini-attention
against full attention, one line pair per engine. Used by `cargo xtask bench`:

    python3 tools/plot_scaling.py OUT.png LABEL=FILE.csv [LABEL=FILE.csv ...]
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main():
    out, series = sys.argv[1], [arg.split("=", 1) for arg in sys.argv[2:]]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (label, path), colour in zip(series, ["tab:blue", "tab:orange", "tab:green"]):
        with open(path) as f:
            rows = list(csv.DictReader(f))
        # Full attention is left empty where it could not run (a device's buffer limit).
        full = [r for r in rows if r["full_tokens_per_s"]]
        ax.plot([int(r["tokens"]) for r in rows], [float(r["infini_tokens_per_s"]) for r in rows], "o-", color=colour, label=f"{label}: infini-attention")
        ax.plot([int(r["tokens"]) for r in full], [float(r["full_tokens_per_s"]) for r in full], "s--", color=colour, label=f"{label}: full attention")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("text length (tokens)")
    ax.set_ylabel("tokens per second")
    ax.set_title("infini-tiny: memory of constant size against a growing attention span")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main()
