"""Does SPADE catch up with concat given more iterations? In-training mIoU against iterations.

    .venv/bin/python experiments/analysis/learning_curves.py [RESULTS_DIR] [OUT_PNG]

Reads each run's in-training evaluation (``eval/miou``, ``eval_ema/miou``: the judge on 64
validation images after every epoch) from the metrics.csv files under RESULTS_DIR (default: the
committed spade_vs_concat runs at SCALE=cpu), groups runs by row (the run-dir name without its
``-seedN``), and for every row prints, at each evaluated iteration, the mean over seeds with its
95% t-interval, and the paired concat - SPADE difference for the row pairs below. Draws the EMA
curves (mean and interval band) of every row into OUT_PNG (default:
RESULTS_DIR/../learning_curves.png). A run still training contributes the points it has.
"""

from __future__ import annotations

import csv
import re
import sys
from collections import defaultdict
from pathlib import Path

from spadelab.tables.stats import mean_ci, paired_difference

DEFAULT = Path(__file__).resolve().parents[1] / "results/spade_vs_concat/cpu-synthetic"
# (SPADE row, concat row): the pairs whose paired difference is printed per iteration.
PAIRS = [
    ("spade_batch", "concat_batch"),
    ("spade_instance", "concat_instance"),
    ("spade_batch_2x", "concat_batch_2x"),
]
RUN = re.compile(r"^(?P<row>.+)-seed(?P<seed>\d+)$")

Curve = dict[int, float]  # iteration -> mIoU


def read_curves(run: Path) -> tuple[Curve, Curve]:
    """(raw, EMA) in-training mIoU of one run, keyed by generator iteration."""
    raw: Curve = {}
    ema: Curve = {}
    with (run / "metrics.csv").open() as f:
        for record in csv.DictReader(f):
            if not record.get("eval/miou"):
                continue
            # Lightning's step counts both optimizers' steps: two per generator iteration.
            iteration = int(float(record["step"])) // 2
            raw[iteration] = float(record["eval/miou"])
            if record.get("eval_ema/miou"):
                ema[iteration] = float(record["eval_ema/miou"])
    return raw, ema


def collect(root: Path) -> dict[str, dict[int, tuple[Curve, Curve]]]:
    """row -> seed -> (raw, EMA) curves, for every run dir with a metrics.csv."""
    rows: dict[str, dict[int, tuple[Curve, Curve]]] = defaultdict(dict)
    for run in sorted(root.iterdir()):
        match = RUN.match(run.name)
        if match and (run / "metrics.csv").is_file():
            rows[match["row"]][int(match["seed"])] = read_curves(run)
    return dict(rows)


def summarize(per_seed: dict[int, Curve]) -> list[tuple[int, float, float, int]]:
    """(iteration, mean, half-width, n) at each iteration that at least one seed reached."""
    iterations = sorted({i for curve in per_seed.values() for i in curve})
    out = []
    for i in iterations:
        values = [curve[i] for curve in per_seed.values() if i in curve]
        estimate = mean_ci(values)
        out.append((i, estimate.mean, estimate.half_width, len(values)))
    return out


def _interval(half_width: float, n: int) -> str:
    return f"± {half_width:.1f}" if n > 1 else "(1 seed)"


def print_tables(rows: dict[str, dict[int, tuple[Curve, Curve]]]) -> None:
    for name, seeds in rows.items():
        print(f"\n{name} (seeds {sorted(seeds)}): in-training mIoU, mean over seeds, 95% CI")
        print("| iteration | raw | EMA | n |")
        print("|---:|---:|---:|---:|")
        raw = summarize({s: c[0] for s, c in seeds.items()})
        ema = dict((i, (m, h, n)) for i, m, h, n in summarize({s: c[1] for s, c in seeds.items()}))
        for i, m, h, n in raw:
            e = ema.get(i)
            ema_cell = "-" if e is None else f"{e[0]:.1f} {_interval(e[1], e[2])}"
            print(f"| {i} | {m:.1f} {_interval(h, n)} | {ema_cell} | {n} |")
    for spade, concat in PAIRS:
        if spade not in rows or concat not in rows:
            continue
        seeds = sorted(set(rows[spade]) & set(rows[concat]))
        print(f"\nconcat - SPADE, EMA mIoU, paired over seeds {seeds}: {concat} vs {spade}")
        print("| iteration | concat - SPADE | n |")
        print("|---:|---:|---:|")
        iterations = sorted({i for s in seeds for i in rows[spade][s][1]})
        for i in iterations:
            a = {s: rows[concat][s][1][i] for s in seeds if i in rows[concat][s][1]}
            b = {s: rows[spade][s][1][i] for s in seeds if i in rows[spade][s][1]}
            common = sorted(set(a) & set(b))
            if not common:
                continue
            d = paired_difference({s: a[s] for s in common}, {s: b[s] for s in common})
            print(
                f"| {i} | {d.mean:+.1f} {_interval(d.half_width, len(common))} | {len(common)} |"
            )


def plot(rows: dict[str, dict[int, tuple[Curve, Curve]]], out: Path, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # One panel per norm that has runs (a sweep of one norm gets one panel, not an empty one).
    panels = [
        (title, tag)
        for title, tag in [("BatchNorm", "_batch"), ("InstanceNorm", "_instance")]
        if any(tag in name for name in rows)
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), sharey=True)
    axes = list(axes) if len(panels) > 1 else [axes]
    for ax, (title, tag) in zip(axes, panels, strict=True):
        for name, seeds in sorted(rows.items()):
            if tag not in name:
                continue
            points = summarize({s: c[1] for s, c in seeds.items()})
            x = [p[0] for p in points]
            mean = [p[1] for p in points]
            low = [p[1] - (p[2] if p[3] > 1 else 0.0) for p in points]
            high = [p[1] + (p[2] if p[3] > 1 else 0.0) for p in points]
            style = "-" if name.startswith("spade") else "--"
            n = len(seeds)
            (line,) = ax.plot(x, mean, style, marker="o", ms=3, label=f"{name} (n={n})")
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15)
        ax.set_title(f"{title}: EMA generator, judge mIoU (95% CI band)", fontsize=10)
        ax.set_xlabel("generator iterations")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("mIoU (64 val images)")
    fig.suptitle(f"{label}: in-training evaluation", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"\nwrote {out}")


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else root.parent / "learning_curves.png"
    rows = collect(root)
    if not rows:
        sys.exit(f"no run dirs with metrics.csv under {root}: pass the results dir of a sweep")
    print_tables(rows)
    plot(rows, out, root.name)


if __name__ == "__main__":
    main()
