"""Does the EMA generator help in short runs? Raw vs EMA mIoU along training, paired by run.

    .venv/bin/python experiments/analysis/ema_curves.py [RESULTS_DIR]

Reads the in-training evaluation (``eval/miou`` and ``eval_ema/miou``: the judge on 64
validation images after every epoch) from each run's metrics.csv, and the final full
evaluation from its metrics.json, under RESULTS_DIR (default: the committed spade_vs_concat
runs at SCALE=cpu). Prints per epoch the mean of each and EMA - raw paired by run with its 95%
t-interval.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from spadelab.tables.stats import mean_ci, paired_difference

DEFAULT = Path(__file__).resolve().parents[1] / "results/spade_vs_concat/cpu-synthetic"


def curves(run: Path) -> list[tuple[int, float, float]]:
    rows = [r for r in csv.DictReader((run / "metrics.csv").open()) if r.get("eval/miou")]
    return [
        (int(float(r["step"])) // 2, float(r["eval/miou"]), float(r["eval_ema/miou"]))
        for r in rows
    ]


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    runs = sorted(p for p in root.iterdir() if (p / "metrics.json").is_file())
    points: dict[str, list[tuple[int, float, float]]] = {}
    for run in runs:
        final = json.loads((run / "metrics.json").read_text())
        if "generator_ema" not in final:
            continue
        points[run.name] = curves(run) + [
            (-1, final["generator"]["miou"], final["generator_ema"]["miou"])
        ]
    print(f"{len(points)} runs with EMA under {root}")
    print("| after | raw mIoU | EMA mIoU | EMA - raw (paired, 95% CI) |")
    print("|---|---:|---:|---:|")
    # Group by iteration, not by position: a resumed run can miss an evaluation row.
    for step in sorted({v[0] for p in points.values() for v in p}, key=lambda s: (s < 0, s)):
        at = {name: v for name, p in points.items() for v in p if v[0] == step}
        raw = {name: v[1] for name, v in at.items()}
        ema = {name: v[2] for name, v in at.items()}
        label = "final (200 val images)" if step == -1 else f"{step} iterations (64 images)"
        diff = paired_difference(ema, raw)
        print(
            f"| {label} | {mean_ci(list(raw.values())).mean:.1f} | "
            f"{mean_ci(list(ema.values())).mean:.1f} | {diff.mean:+.1f} ± {diff.half_width:.1f} "
            f"(n = {len(at)}) |"
        )


if __name__ == "__main__":
    main()
