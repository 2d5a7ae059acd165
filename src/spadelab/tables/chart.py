"""A results table as a PNG: our means with their CIs as bars, the paper's values as markers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from spadelab.tables.stats import Estimate

PAPER_MARKERS = ("D", "s", "^", "v", "o", "P")


@dataclass
class ChartRow:
    label: str
    ours: dict[str, Estimate | None] = field(default_factory=dict)  # series -> estimate
    paper: dict[str, float] = field(default_factory=dict)  # paper column -> value


def write_chart(
    path: Path, title: str, rows: list[ChartRow], metric: str, series: list[str], note: str = ""
) -> Path:
    """Horizontal bars (one group per row, one bar per series) with CI whiskers; the paper's
    values as markers in a panel of their own, since they were measured at another scale."""
    import matplotlib

    matplotlib.use("Agg")  # no display; also safe in a sweep's subprocess
    import matplotlib.pyplot as plt

    paper_keys: list[str] = []
    for row in rows:
        paper_keys += [key for key in row.paper if key not in paper_keys]
    height = 2.0 + 0.42 * len(rows) * max(1, len(series))
    size = (10.0 if paper_keys else 8.0, max(3.0, height))
    if paper_keys:
        fig, (ax, paper_ax) = plt.subplots(
            1, 2, sharey=True, figsize=size, dpi=110, gridspec_kw={"width_ratios": [3, 1.2]}
        )
    else:
        fig, ax = plt.subplots(figsize=size, dpi=110)
    bar = 0.8 / max(1, len(series))
    positions = list(range(len(rows)))
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:purple")
    for i, name in enumerate(series):
        ys, means, errors = [], [], []
        for y, row in zip(positions, rows):
            estimate = row.ours.get(name)
            if estimate is None:
                continue
            ys.append(y - 0.4 + bar * (i + 0.5))
            means.append(estimate.mean)
            errors.append(estimate.half_width if estimate.half_width is not None else float("nan"))
        ax.barh(
            ys,
            means,
            height=bar * 0.9,
            xerr=errors,
            capsize=3,
            color=colors[i % len(colors)],
            label=f"ours: {name} (mean, 95% CI)",
        )
    ax.set_yticks(positions)
    ax.set_yticklabels([_short(row.label) for row in rows], fontsize=8)
    ax.invert_yaxis()  # first row on top, as in the table
    ax.set_xlabel(f"ours: {metric} (judge segmenter), mean over seeds with 95% t-interval")
    ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if paper_keys:
        for j, key in enumerate(paper_keys):
            points = [(row.paper[key], y) for y, row in zip(positions, rows) if key in row.paper]
            paper_ax.scatter(
                [x for x, _ in points],
                [y for _, y in points],
                marker=PAPER_MARKERS[j % len(PAPER_MARKERS)],
                color="black",
                facecolors="none" if j % 2 else "black",
                s=30,
                zorder=3,
                label=f"paper: {key}",
            )
        # From 0, like the bars: an axis cut at the smallest value would inflate the gaps.
        highest = max(row.paper[key] for row in rows for key in row.paper)
        paper_ax.set_xlim(0, highest * 1.1)
        paper_ax.set_xlabel(f"paper: {metric}\n(its datasets, scale, segmenters)", fontsize=9)
        paper_ax.grid(axis="x", alpha=0.3)
        more_handles, more_labels = paper_ax.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=min(4, len(labels)))
    fig.suptitle(title + (f"\n{note}" if note else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _short(label: str, width: int = 48) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"
