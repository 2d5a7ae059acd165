"""``spadelab report``: a sweep's runs as one results table, beside the published numbers.

    spadelab report experiments/table4.yaml [scale=smoke] [data=synthetic] [sweep_dir=PATH]
        [seeds=[0,1,2]] [generator=generator|generator_ema] [logger=wandb | wandb=true]
        [project=spadelab]

Reads ``<sweep_dir>/<row>-seed<k>/{metrics.json,FAILED.json}`` and writes ``report.md`` and
``report.csv`` into the sweep dir (and prints the Markdown). Several seeds give mean ± sample
std. The header says at which scale, on which data and image size our numbers were measured, and
the judge's ceiling (the judge on real images), so a synthetic-data number is never mistaken for
a paper-scale one. Missing runs say ``missing``, failed runs ``failed: <first line of the
error>``, rows we do not run say why.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spadelab.runtime import ConfigError, describe_error
from spadelab.sweep import (
    Experiment,
    Row,
    choices,
    default_sweep_dir,
    load_experiment,
    read_metrics,
    run_dir_name,
)

GENERATORS = ("generator", "generator_ema")
HEADERS = {
    "miou": "mIoU",
    "accuracy": "accuracy",
    "fd_judge": "FD (judge)",
    "fid": "FID",
    "kid": "KID",
    "generator_params": "G params",
    "paper_setting_params": "G params at paper setting",
}
SCALE_WARNINGS = {
    "smoke": "scale=smoke checks the pipeline only: these numbers mean nothing.",
    "cpu": (
        "scale=cpu: narrow networks on small images for minutes on a CPU; compare the rows with "
        "each other, not with the paper's numbers."
    ),
}


@dataclass
class RunResult:
    seed: int
    status: str  # ok | failed | missing
    metrics: dict[str, Any] | None = None
    error: str = ""


@dataclass
class RowResult:
    row: Row
    runs: list[RunResult] = field(default_factory=list)  # empty when the row does not run
    source: Row | None = None  # same_as: the row whose runs these are


def read_failure(run_dir: Path) -> str | None:
    path = run_dir / "FAILED.json"
    if not path.is_file():
        return None
    try:
        error = str(json.loads(path.read_text()).get("error") or "unknown error")
    except (OSError, json.JSONDecodeError, AttributeError):
        error = "unreadable FAILED.json"
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


def run_result(run_dir: Path, seed: int) -> RunResult:
    # FAILED.json beside a metrics.json means the latest attempt failed (a retry deletes it).
    error = read_failure(run_dir)
    if error is not None:
        return RunResult(seed, "failed", error=error)
    metrics = read_metrics(run_dir)
    if metrics is not None:
        return RunResult(seed, "ok", metrics=metrics)
    return RunResult(seed, "missing")


def seeds_on_disk(experiment: Experiment, sweep_dir: Path) -> list[int]:
    """The experiment's seeds and any other seed a run dir of one of its rows was made for."""
    names = {row.name for row in experiment.rows}
    seeds = set(experiment.seeds)
    for path in sweep_dir.glob("*-seed*"):
        row, _, seed = path.name.rpartition("-seed")
        if row in names and seed.isdigit() and path.is_dir():
            seeds.add(int(seed))
    return sorted(seeds)


def gather(
    experiment: Experiment, sweep_dir: Path, seeds: Sequence[int] | None = None
) -> list[RowResult]:
    """Every row's runs; ``seeds`` default to :func:`seeds_on_disk`."""
    seeds = list(seeds) if seeds is not None else seeds_on_disk(experiment, sweep_dir)
    by_name = {row.name: row for row in experiment.rows}
    results = []
    for row in experiment.rows:
        if row.overrides is None:
            results.append(RowResult(row))
            continue
        source = by_name[row.same_as] if row.same_as else row
        runs = [run_result(sweep_dir / run_dir_name(source.name, s), s) for s in seeds]
        results.append(RowResult(row, runs, source if row.same_as else None))
    return results


# ---- numbers ------------------------------------------------------------------------------
def metric(metrics: dict[str, Any], column: str, generator: str) -> float | None:
    if column == "generator_params":
        value = metrics.get("generator_params")
    else:
        value = (metrics.get(generator) or {}).get(column)
    return float(value) if isinstance(value, int | float) else None


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def format_number(column: str, value: float, like: float | None = None) -> str:
    """``value`` formatted for ``column``; ``like``: the mean a std is shown beside."""
    magnitude = abs(value if like is None else like)
    if column in ("generator_params", "paper_setting_params"):
        millions = value / 1e6
        return f"{millions:.2f}M" if magnitude < 10e6 else f"{millions:.1f}M"
    if column == "kid":
        return f"{value:.4f}"
    if column == "fd_judge":
        return f"{value:.3g}" if magnitude < 1 else f"{value:.2f}"
    return f"{value:.1f}"


def format_paper(key: str, value: float) -> str:
    """As published: one decimal (35.0, not 35), more where the source has them (60.77)."""
    if key.endswith("params_m") or round(value, 1) != value:
        return f"{value:g}"
    return f"{value:.1f}"


def format_cell(column: str, mean: float, std: float | None) -> str:
    text = format_number(column, mean)
    return text if std is None else f"{text} ± {format_number(column, std, like=mean)}"


def paper_setting_params(experiment: Experiment, row: Row) -> float | None:
    """Generator parameters of the row at the paper's COCO-Stuff setting (meta device)."""
    from spadelab.params import COCO_SETTING, generator_parameters

    assert row.overrides is not None
    overrides = [*COCO_SETTING, *experiment.base_overrides, *row.overrides]
    return float(generator_parameters(overrides))


def row_status(result: RowResult) -> str:
    row = result.row
    if row.overrides is None:
        return row.note or "not implemented"
    several = len(result.runs) > 1
    ok = [run.seed for run in result.runs if run.status == "ok"]
    missing = [run.seed for run in result.runs if run.status == "missing"]
    errors: dict[str, list[int]] = {}
    for run in result.runs:
        if run.status == "failed":
            errors.setdefault(run.error, []).append(run.seed)

    def seeds(values: list[int]) -> str:
        return f" (seed{'s' if len(values) > 1 else ''} {', '.join(map(str, values))})"

    parts = []
    if ok:
        complete = len(ok) == len(result.runs)
        parts.append(
            "ok" + ("" if not several else f" ({len(ok)} seeds)" if complete else seeds(ok))
        )
    for error, failed in errors.items():
        parts.append(f"failed{seeds(failed) if several else ''}: {error}")
    if missing:
        parts.append(
            f"missing{seeds(missing) if several and missing != [r.seed for r in result.runs] else ''}"
        )
    status = "; ".join(parts)
    return f"same run as {result.source.label}; {status}" if result.source else status


def table(
    experiment: Experiment, results: list[RowResult], generator: str = "generator"
) -> tuple[list[str], list[list[str]], list[dict[str, Any]], list[str]]:
    """``(header, Markdown cells, CSV records, footnotes)``."""
    paper_keys: list[str] = []
    for result in results:
        paper_keys += [key for key in result.row.paper if key not in paper_keys]
    paper_keys = [k for k in paper_keys if any(r.row.paper.get(k) is not None for r in results)]
    header = ["row", *(f"ours: {HEADERS[c]}" for c in experiment.columns)]
    header += [f"paper: {key}" for key in paper_keys] + ["status"]
    cells, records, footnotes = [], [], []
    for result in results:
        row = result.row
        label = row.label
        if row.note and row.overrides is not None:
            footnotes.append(row.note)
            label += f" [{len(footnotes)}]"
        ok = [run for run in result.runs if run.status == "ok"]
        record: dict[str, Any] = {
            "table": experiment.name,
            "row": row.name,
            "label": row.label,
            "seeds": " ".join(str(run.seed) for run in result.runs),
            "n_ok": len(ok),
            "status": row_status(result),
        }
        line = [label]
        for column in experiment.columns:
            if column == "paper_setting_params" and row.overrides is not None:
                try:
                    value = paper_setting_params(experiment, row)
                except Exception as error:  # noqa: BLE001 - shown in the cell, table goes on
                    value = None
                    record[f"{column}_error"] = describe_error(error)
                record[f"{column}_mean"], record[f"{column}_std"] = value, None
                line.append("-" if value is None else format_number(column, value))
                continue
            values = [
                v for run in ok if (v := metric(run.metrics or {}, column, generator)) is not None
            ]
            if values:
                mean, std = mean_std(values)
                if column == "generator_params" and std == 0:
                    std = None  # one architecture: the count does not vary with the seed
                line.append(format_cell(column, mean, std))
                record[f"{column}_mean"], record[f"{column}_std"] = mean, std
                continue
            record[f"{column}_mean"], record[f"{column}_std"] = None, None
            if row.overrides is None:
                line.append("-")
            elif ok:
                line.append("-")  # measured runs without this metric (e.g. FID skipped)
            elif any(run.status == "failed" for run in result.runs):
                line.append("failed")
            else:
                line.append("missing")
        for key in paper_keys:
            value = row.paper.get(key)
            line.append("-" if value is None else format_paper(key, value))
            record[f"paper_{key}"] = value
        line.append(record["status"])
        record["note"] = row.note
        cells.append(line)
        records.append(record)
    return header, cells, records, footnotes


# ---- context ------------------------------------------------------------------------------
def measured_context(results: list[RowResult]) -> dict[str, list[Any]]:
    """What the finished runs say about themselves: scale, data, sizes, segmenter, ceiling."""
    seen: dict[str, list[Any]] = {
        "scale": [],
        "data": [],
        "size": [],
        "segmenter": [],
        "ceiling": [],
        "fid": [],
    }

    def add(key: str, value: Any) -> None:
        if value is not None and value not in seen[key]:
            seen[key].append(value)

    for result in results:
        for run in result.runs:
            m = run.metrics
            if not m:
                continue
            add("scale", m.get("scale"))
            add("data", m.get("data"))
            size = m.get("image_size")
            add("size", f"{size[0]}x{size[1]}" if isinstance(size, list) else None)
            add("segmenter", m.get("segmenter"))
            ceiling = m.get("judge_ceiling") or {}
            if ceiling.get("miou") is not None:
                add("ceiling", (round(ceiling["miou"], 1), round(ceiling["accuracy"], 1)))
            for name in GENERATORS:
                add("fid", (m.get(name) or {}).get("fid_status"))
    return seen


def format_markdown(
    experiment: Experiment,
    results: list[RowResult],
    sweep_dir: Path,
    scale: str,
    data: str,
    generator: str = "generator",
) -> str:
    header, cells, _, footnotes = table(experiment, results, generator)
    seen = measured_context(results)
    counts = {"ok": 0, "failed": 0, "missing": 0}
    for result in results:
        if result.source is None:
            for run in result.runs:
                counts[run.status] += 1
    scales = ", ".join(seen["scale"]) or scale
    datas = ", ".join(seen["data"]) or data
    sizes = ", ".join(seen["size"]) or "?"
    seeds = sorted({run.seed for r in results for run in r.runs})
    lines = [
        f"## {experiment.name}: {experiment.title}",
        "",
        f"- ours: scale={scales}, data={datas}, {sizes} images, seeds {seeds}"
        + (" (mean ± sample std)" if len(seeds) > 1 else "")
        + f", {'EMA' if generator == 'generator_ema' else 'raw'} generator weights, "
        f"segmenter: {', '.join(seen['segmenter']) or '?'}",
    ]
    if seen["ceiling"]:
        ceilings = "; ".join(f"mIoU {m:.1f}, accuracy {a:.1f}" for m, a in seen["ceiling"])
        lines.append(
            f"- judge ceiling (the judge on the real images; generated images score below): "
            f"{ceilings}"
        )
    lines.append(f"- paper: {experiment.source}")
    if experiment.paper_setting:
        lines.append(f"- paper setting: {experiment.paper_setting}")
    warning = SCALE_WARNINGS.get(scales)
    if warning:
        lines.append(f"- **{warning}**")
    if "fid" in experiment.columns and seen["fid"]:
        lines.append(f"- FID {seen['fid'][0]}")
    if experiment.notes:
        lines.append(f"- notes: {experiment.notes}")
    lines.append(
        f"- runs: {counts['ok']} ok, {counts['failed']} failed, {counts['missing']} missing "
        f"in {sweep_dir}"
    )
    lines += ["", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header) - 1)))
    lines[-1] += "|---|"
    for line in cells:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |")
    for i, note in enumerate(footnotes, 1):
        lines.append(f"\n[{i}] {note}" if i == 1 else f"[{i}] {note}")
    return "\n".join(lines) + "\n"


def format_csv(
    experiment: Experiment,
    results: list[RowResult],
    scale: str,
    data: str,
    generator: str = "generator",
) -> str:
    _, _, records, _ = table(experiment, results, generator)
    seen = measured_context(results)
    keys: list[str] = ["table", "row", "label", "scale", "data", "image_size"]
    for record in records:
        record["scale"] = ", ".join(seen["scale"]) or scale
        record["data"] = ", ".join(seen["data"]) or data
        record["image_size"] = ", ".join(seen["size"])
        keys += [key for key in record if key not in keys]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


# ---- outputs ------------------------------------------------------------------------------
def publish(
    experiment: Experiment,
    results: list[RowResult],
    sweep_dir: Path,
    scale: str,
    data: str,
    use_wandb: bool = False,
    wandb_project: str = "spadelab",
    generator: str = "generator",
) -> str:
    """Write report.md and report.csv into the sweep dir (and a wandb Table); return the text."""
    markdown = format_markdown(experiment, results, sweep_dir, scale, data, generator)
    text_csv = format_csv(experiment, results, scale, data, generator)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "report.md").write_text(markdown)
    (sweep_dir / "report.csv").write_text(text_csv)
    if use_wandb:
        run_path = log_wandb(experiment, text_csv, sweep_dir, scale, data, wandb_project)
        markdown += f"\nwandb: report logged to {run_path}\n"
    return markdown


def wandb_mode() -> str:
    """Offline unless the user is logged in (or chose a mode), as for training runs."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    logged_in = os.environ.get("WANDB_API_KEY") or (Path.home() / ".netrc").is_file()
    return "online" if logged_in else "offline"


def log_wandb(
    experiment: Experiment,
    text_csv: str,
    sweep_dir: Path,
    scale: str,
    data: str,
    project: str = "spadelab",
) -> str:
    """Log the table as a ``wandb.Table`` into a run in the sweep's group; returns its dir."""
    import wandb

    rows = list(csv.reader(io.StringIO(text_csv)))
    columns, data_rows = rows[0], rows[1:]
    group = f"{experiment.name}-{scale}-{data}"
    run = wandb.init(
        project=project,
        group=group,
        job_type="report",
        name=f"report-{experiment.name}",
        tags=[f"table={experiment.name}", f"scale={scale}", f"data={data}", "report"],
        config={
            "table": experiment.name,
            "scale": scale,
            "data": data,
            "sweep_dir": str(sweep_dir),
        },
        dir=str(sweep_dir),
        mode=wandb_mode(),  # type: ignore[arg-type]
        reinit="finish_previous",
    )
    try:
        run.log({f"report/{experiment.name}": wandb.Table(columns=columns, data=data_rows)})
        return str(getattr(run, "dir", sweep_dir))
    finally:
        run.finish()


# ---- the command --------------------------------------------------------------------------
OPTIONS = ("sweep_dir", "scale", "data", "logger", "wandb", "project", "generator", "seeds")
USAGE = (__doc__ or "").split("\n\n")[1]


def cli(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(f"usage:\n{USAGE}")
        return 0
    try:
        text = run_report(argv)
    except (ConfigError, FileNotFoundError) as error:
        print(f"spadelab report: error: {error}", file=sys.stderr)
        return 2
    print(text)
    return 0


def run_report(argv: Sequence[str]) -> str:
    options: dict[str, Any] = {}
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if not sep or key not in OPTIONS:
            raise ConfigError(f"unknown argument {arg!r}; options: {', '.join(OPTIONS)}")
        options[key] = yaml.safe_load(value) if value else None
    experiment = load_experiment(argv[0])
    generator = str(options.get("generator") or "generator")
    if generator not in GENERATORS:
        raise ConfigError(f"generator={generator}: use one of {', '.join(GENERATORS)}")
    picked = choices([f"{k}={options[k]}" for k in ("scale", "data") if options.get(k)])
    scale, data = picked["scale"], picked["data"]
    sweep_dir = (
        Path(str(options["sweep_dir"])).expanduser().resolve()
        if options.get("sweep_dir")
        else default_sweep_dir(experiment, scale, data)
    )
    if not sweep_dir.is_dir():
        raise FileNotFoundError(
            f"no sweep at {sweep_dir}; run `spadelab sweep {argv[0]} scale={scale} "
            f"data={data}` first, or pass sweep_dir=PATH"
        )
    seeds = options.get("seeds")
    seeds = [seeds] if isinstance(seeds, int) else seeds
    results = gather(experiment, sweep_dir, seeds)
    use_wandb = bool(options.get("wandb")) or options.get("logger") == "wandb"
    project = str(options.get("project") or "spadelab")
    return publish(experiment, results, sweep_dir, scale, data, use_wandb, project, generator)


def main() -> int:
    return cli(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
