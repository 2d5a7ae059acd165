"""Where does the noise of a results table come from, and how many seeds does a ±3 mIoU interval need?

    .venv/bin/python experiments/analysis/noise_sources.py [EXPERIMENT_YAML] [RESULTS_DIR] [OUT_MD]

Defaults: experiments/spade_vs_concat.yaml and its committed SCALE=cpu runs; OUT_MD defaults to
RESULTS_DIR/../noise_sources.md. For the runs under RESULTS_DIR (``<row>-seed<k>`` dirs holding
``metrics.json`` and the in-training ``metrics.csv``) it separates

1. **evaluation noise**: the same generator scored twice, by the final evaluation (judge on 200
   validation images) and by the last in-training evaluation (64 images), at the same weights.
   The spread of that difference bounds what more validation images could remove;
2. **training noise**: the seed-to-seed standard deviation of each row's final mIoU;
3. **the paired difference** of every row to its reference row (as the report pairs them),
   its standard deviation, and the number of seeds n at which its 95% t-interval would reach
   the measurement issue's target half-width (3 mIoU) if that deviation held;
4. **averaging the last checkpoints**, the other remedy the issue names: the paired interval of
   the last in-training evaluation alone and of the mean over the last 2 and 3 evaluations
   (every 300 iterations at SCALE=cpu), beside the final evaluation's.

Raw (``generator``) and EMA (``generator_ema``) generators are reported separately.
"""

from __future__ import annotations

import csv
import json
import math
import re
import statistics
import sys
from pathlib import Path

from spadelab.tables.spec import load_experiment
from spadelab.tables.stats import mean_ci, paired_difference, t_quantile

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPEC = ROOT / "experiments/spade_vs_concat.yaml"
DEFAULT_RESULTS = ROOT / "experiments/results/spade_vs_concat/cpu-synthetic"
TARGET = 3.0  # mIoU: the measurement issue's target CI half-width on row differences
RUN = re.compile(r"^(?P<row>.+)-seed(?P<seed>\d+)$")
GENERATORS = {"raw": ("generator", "eval/miou"), "EMA": ("generator_ema", "eval_ema/miou")}


def seeds_for_target(std: float, target: float = TARGET, limit: int = 1000) -> int | None:
    """The smallest n >= 2 with t(n-1) * std / sqrt(n) <= target; None beyond ``limit``."""
    for n in range(2, limit + 1):
        if t_quantile(n) * std / math.sqrt(n) <= target:
            return n
    return None


def read_run(run: Path) -> dict[str, tuple[float, list[float]]]:
    """generator label -> (final mIoU, in-training mIoU curve in step order)."""
    metrics = json.loads((run / "metrics.json").read_text())
    curves: dict[str, list[tuple[int, float]]] = {label: [] for label in GENERATORS}
    csv_path = run / "metrics.csv"
    if csv_path.is_file():
        with csv_path.open() as f:
            for record in csv.DictReader(f):
                for label, (_, column) in GENERATORS.items():
                    if record.get(column):
                        curves[label].append((int(float(record["step"])), float(record[column])))
    out = {}
    for label, (key, _) in GENERATORS.items():
        if key in metrics and "miou" in metrics[key]:
            out[label] = (float(metrics[key]["miou"]), [v for _, v in sorted(curves[label])])
    return out


def collect(results: Path) -> dict[str, dict[int, dict[str, tuple[float, list[float]]]]]:
    rows: dict[str, dict[int, dict]] = {}
    for run in sorted(results.iterdir()):
        match = RUN.match(run.name)
        if match and (run / "metrics.json").is_file():
            rows.setdefault(match["row"], {})[int(match["seed"])] = read_run(run)
    return rows


def _ci(estimate) -> str:
    if estimate is None:
        return "-"
    if estimate.half_width is None:
        return f"{estimate.mean:+.1f} (1 seed)"
    return f"{estimate.mean:+.1f} ± {estimate.half_width:.1f}"


def report(spec_path: Path, results: Path) -> str:
    experiment = load_experiment(spec_path)
    rows = collect(results)
    if not rows:
        sys.exit(f"no <row>-seed<k> run dirs with metrics.json under {results}")
    lines = [
        f"# Noise sources: {experiment.name}, `{results.relative_to(ROOT)}`",
        "",
        f"Made by `.venv/bin/python experiments/analysis/noise_sources.py "
        f"{spec_path.relative_to(ROOT)} {results.relative_to(ROOT)}`. mIoU of the judge.",
        "",
    ]
    for label in GENERATORS:
        # 1. evaluation noise: final (200 images) - last in-training evaluation (64 images)
        gaps = [
            runs[label][0] - runs[label][1][-1]
            for seeds in rows.values()
            for runs in seeds.values()
            if label in runs and runs[label][1]
        ]
        lines += [f"## {label} generator", ""]
        if len(gaps) >= 2:
            lines.append(
                f"- Evaluation noise: final (200 images) − last in-training evaluation (64 "
                f"images), same weights, over {len(gaps)} runs: mean {statistics.mean(gaps):+.2f}, "
                f"standard deviation {statistics.stdev(gaps):.2f} mIoU."
            )
        lines += [
            "- Training noise and paired differences (each row against its reference, as the "
            "report pairs them; n for ±3 = seeds a 95% interval of ±3 mIoU would need at this "
            "standard deviation):",
            "",
            "| row | seeds | final mIoU, mean (sd) | reference | paired Δ, final (200 images) "
            "| sd of Δ | n for ±3 | Δ, last evaluation (64) | Δ, mean of last 2 | Δ, mean of last 3 |",
            "|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
        for row in experiment.run_rows:
            seeds = {s: r[label] for s, r in rows.get(row.name, {}).items() if label in r}
            if not seeds:
                continue
            finals = {s: v[0] for s, v in seeds.items()}
            spread = mean_ci(list(finals.values()))
            sd = "-" if spread.std is None else f"{spread.std:.1f}"
            cells = [row.name, ",".join(map(str, sorted(seeds))), f"{spread.mean:.1f} ({sd})"]
            reference = experiment.reference_of(row)
            ref_seeds = (
                {s: r[label] for s, r in rows.get(reference.name, {}).items() if label in r}
                if reference is not None
                else {}
            )
            if not ref_seeds:
                lines.append("| " + " | ".join(cells + ["-"] * 7) + " |")
                continue
            diff = paired_difference(finals, {s: v[0] for s, v in ref_seeds.items()})
            needed = None if diff is None or diff.std is None else seeds_for_target(diff.std)
            by_k = []
            for k in (1, 2, 3):
                mine = {s: statistics.mean(v[1][-k:]) for s, v in seeds.items() if len(v[1]) >= k}
                theirs = {
                    s: statistics.mean(v[1][-k:]) for s, v in ref_seeds.items() if len(v[1]) >= k
                }
                by_k.append(_ci(paired_difference(mine, theirs)))
            cells += [
                reference.name,
                _ci(diff),
                "-" if diff is None or diff.std is None else f"{diff.std:.1f}",
                "-" if needed is None else str(needed),
                *by_k,
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    spec = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else DEFAULT_SPEC
    results = Path(sys.argv[2]).resolve() if len(sys.argv) > 2 else DEFAULT_RESULTS
    out = Path(sys.argv[3]) if len(sys.argv) > 3 else results.parent / "noise_sources.md"
    text = report(spec, results)
    out.write_text(text + "\n")
    print(text)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
