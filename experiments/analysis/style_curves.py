"""Does the VAE learn the four styles, and when? In-training style fidelity against iterations.

    .venv/bin/python experiments/analysis/style_curves.py [RESULTS_DIR] [OUT_PNG]

Reads every run under RESULTS_DIR (default: the committed ``vae_style`` runs at SCALE=cpu): its
in-training evaluation from ``metrics.csv`` (``eval/style_fidelity`` and ``eval_ema/...``: the
share of guided outputs that the style classifier names as the guiding style, 4 styles x 64
label maps after every epoch; ``eval/miou`` beside it) and its final ``spadelab evaluate`` from
``metrics.json``. Prints one markdown table per run and draws raw and EMA curves of every run
into OUT_PNG (default: RESULTS_DIR/../style_curves.png), with chance (25%) and the classifier's
ceiling on real images as lines.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[1] / "results/vae_style/cpu-synthetic"
COLUMNS = ["eval/style_fidelity", "eval_ema/style_fidelity", "eval/miou", "eval_ema/miou"]


def read_curve(run: Path) -> dict[int, dict[str, float]]:
    """iteration -> {column: value} of the in-training evaluations of one run."""
    points: dict[int, dict[str, float]] = {}
    with (run / "metrics.csv").open() as f:
        for record in csv.DictReader(f):
            if not record.get("eval/style_fidelity"):
                continue
            # Lightning's step counts both optimizers' steps: two per generator iteration.
            iteration = int(float(record["step"])) // 2
            points[iteration] = {c: float(record[c]) for c in COLUMNS if record.get(c)}
    return points


def final_scores(run: Path) -> dict[str, float] | None:
    path = run / "metrics.json"
    if not path.is_file():
        return None
    results = json.loads(path.read_text())
    scores = {}
    for name, prefix in (("generator", "eval"), ("generator_ema", "eval_ema")):
        for metric in ("style_fidelity", "miou"):
            value = (results.get(name) or {}).get(metric)
            if value is not None:
                scores[f"{prefix}/{metric}"] = float(value)
    classifier = results.get("style_classifier") or {}
    if classifier.get("ceiling_accuracy") is not None:
        scores["ceiling"] = float(classifier["ceiling_accuracy"])
    # Per guiding style: the share of its outputs classified as that style (confusion rows).
    for name, prefix in (("generator", "raw"), ("generator_ema", "EMA")):
        confusion = (results.get(name) or {}).get("confusion")
        for k, (row, style) in enumerate(zip(confusion or [], classifier.get("styles", []))):
            scores[f"{prefix} {style}"] = 100.0 * row[k] / max(sum(row), 1)
    return scores


def table(name: str, curve: dict[int, dict[str, float]], final: dict[str, float] | None) -> str:
    lines = [
        f"### {name}",
        "",
        "| after | style fidelity raw | EMA | mIoU raw | EMA |",
        "|---|---:|---:|---:|---:|",
    ]

    def cells(values: dict[str, float]) -> str:
        return " | ".join(f"{values[c]:.1f}" if c in values else "-" for c in COLUMNS)

    for iteration in sorted(curve):
        lines.append(
            f"| {iteration:,} iterations (64 label maps x 4 styles) | {cells(curve[iteration])} |"
        )
    if final:
        lines.append(f"| final `spadelab evaluate` | {cells(final)} |")
        per_style = [k for k in final if k.startswith(("raw ", "EMA "))]
        if per_style:
            lines += [
                "",
                "Final, per guiding style: "
                + ", ".join(f"{k} {final[k]:.0f}%" for k in per_style)
                + ".",
            ]
        if "ceiling" in final:
            lines += [
                "",
                f"Chance 25%; the style classifier's ceiling on real images {final['ceiling']:.1f}%.",
            ]
    return "\n".join(lines)


def main(results_dir: Path, out_png: Path) -> None:
    runs = sorted(p.parent for p in results_dir.glob("*/metrics.csv"))
    if not runs:
        sys.exit(f"no runs with a metrics.csv under {results_dir}; pass a results dir of VAE runs")
    curves = {run.name: read_curve(run) for run in runs}
    ceiling = None
    for run in runs:
        final = final_scores(run)
        ceiling = (final or {}).get("ceiling", ceiling)
        print(table(run.name, curves[run.name], final), end="\n\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for k, (name, curve) in enumerate(curves.items()):
        its = sorted(curve)
        color = f"C{k}"
        for column, style, label in (
            ("eval/style_fidelity", "--", f"{name} raw"),
            ("eval_ema/style_fidelity", "-", f"{name} EMA"),
        ):
            xs = [i for i in its if column in curve[i]]
            ax.plot(
                xs, [curve[i][column] for i in xs], style, color=color, marker="o", label=label
            )
    ax.axhline(25.0, color="grey", lw=1, ls=":", label="chance (25%)")
    if ceiling is not None:
        ax.axhline(ceiling, color="black", lw=1, ls=":", label=f"ceiling on real ({ceiling:.0f}%)")
    ax.set_xlabel("generator iterations")
    ax.set_ylabel("style fidelity (%)")
    ax.set_ylim(0, 105)
    ax.set_title("VAE style fidelity in training (SCALE=cpu)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    print(f"wrote {out_png}")


if __name__ == "__main__":
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else directory.parent / "style_curves.png"
    main(directory, target)
