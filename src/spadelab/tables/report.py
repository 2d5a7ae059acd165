"""``spadelab report``: a sweep's runs as one results table with CIs, beside the paper's numbers.

    spadelab report experiments/table4.yaml [scale=smoke] [data=synthetic] [sweep_dir=PATH]
        [seeds=[0,1,2]] [generator=generator|generator_ema|both] [logger=wandb | wandb=true]
        [project=spadelab]

Reads ``<sweep_dir>/<row>-seed<k>/{metrics.json,FAILED.json}`` and writes ``report.md``,
``report.csv`` (numbers only: means, CI bounds, counts, paired differences) and ``report.png``
(bars with CIs, the paper's values as markers) into the sweep dir. The terminal gets the key
columns in 120 characters. Each cell is the mean over seeds ± the half-width of its 95%
t-interval; each row's Δ is its difference to its reference row, paired by seed (``*``: the
interval excludes 0). ``generator=`` picks the raw or EMA weights; by default both are shown
when the runs have EMA metrics. The header says at which scale, on which data and image size our
numbers were measured, and the judge's ceiling, so a synthetic-data number is never mistaken for
a paper-scale one. Missing runs say ``missing``, failed runs ``failed: <first line of the
error>``, rows we do not run say why.
"""

from __future__ import annotations

import csv
import io
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spadelab.commands.args import parse_args, parse_value
from spadelab.loggers import wandb_mode
from spadelab.paper import COCO_SETTING, generator_parameters
from spadelab.runtime import ConfigError, command_error, describe_error
from spadelab.tables.chart import ChartRow, write_chart
from spadelab.tables.rundirs import (
    RunResult,
    choices,
    default_sweep_dir,
    run_dir_name,
    run_result,
    seeds_on_disk,
)
from spadelab.tables.spec import Experiment, Row, load_experiment
from spadelab.tables.stats import (
    Estimate,
    mean_ci,
    paired_difference,
    resolvable_difference,
    seeds_for_half_width,
    typical_spread,
)

GENERATORS = {"generator": "raw", "generator_ema": "EMA"}
GENERATOR_CHOICES = (*GENERATORS, "both")
MEASURED = ("miou", "accuracy", "fd_judge", "fid", "kid")  # per generator, with CIs
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
TERMINAL_WIDTH = 120
MARK = "*"
# The half-width a table's row differences should reach (the measurement issue: ±3 mIoU); the
# header says how many paired seeds that takes at the measured spread.
RESOLUTION_TARGETS = {"miou": 3.0}


@dataclass
class RowResult:
    row: Row
    runs: list[RunResult] = field(default_factory=list)  # empty when the row does not run
    source: Row | None = None  # same_as: the row whose runs these are

    @property
    def run_name(self) -> str:
        """The row whose run dirs these are (the row itself unless same_as)."""
        return (self.source or self.row).name


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


def seed_values(result: RowResult, column: str, generator: str) -> dict[int, float]:
    """Seed -> value of ``column`` over the row's finished runs."""
    values = {}
    for run in result.runs:
        if run.status == "ok" and (v := metric(run.metrics or {}, column, generator)) is not None:
            values[run.seed] = v
    return values


def series_key(column: str, generator: str) -> str:
    """The name of a column for one generator: ``miou`` (raw) or ``miou_ema``."""
    return column if generator == "generator" else f"{column}_ema"


def series_header(column: str, generator: str, generators: Sequence[str]) -> str:
    name = HEADERS[column]
    return f"{name} ({GENERATORS[generator]})" if len(generators) > 1 else name


def generators_with_metrics(results: list[RowResult]) -> list[str]:
    """The generators (raw, EMA) that some finished run has an mIoU for."""
    return [
        generator
        for generator in GENERATORS
        if any(seed_values(result, "miou", generator) for result in results)
    ]


def pick_generators(choice: str | None, results: list[RowResult], sweep_dir: Path) -> list[str]:
    """``generator=`` as the list of generators to show; refuses one the runs have no metrics
    for, so a report never trades its numbers for an empty column."""
    if choice is not None and choice not in GENERATOR_CHOICES:
        raise ConfigError(
            f"generator={choice} is not one of: {', '.join(GENERATOR_CHOICES)} (both: raw and "
            "EMA side by side)"
        )
    present = generators_with_metrics(results)
    if choice is None:
        return present or ["generator"]
    wanted = list(GENERATORS) if choice == "both" else [choice]
    absent = [g for g in wanted if g not in present]
    if absent and present:
        raise ConfigError(
            f"generator={choice}: no finished run in {sweep_dir} has {', '.join(absent)} "
            f"metrics (EMA needs ema.enabled=true); use generator={present[0]}"
        )
    return wanted


def format_number(column: str, value: float, like: float | None = None) -> str:
    """``value`` formatted for ``column``; ``like``: the mean an interval is shown beside."""
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


def format_estimate(column: str, estimate: Estimate) -> str:
    """``mean ± half-width`` of the 95% interval; the mean alone without one (1 seed)."""
    text = format_number(column, estimate.mean)
    if estimate.half_width is None:
        return text
    return f"{text} ± {format_number(column, estimate.half_width, like=estimate.mean)}"


def format_difference(column: str, estimate: Estimate) -> str:
    text = format_number(column, estimate.mean)
    if float(text) == 0:
        text = format_number(column, 0.0)  # no "-0.0"
    elif not text.startswith("-"):
        text = f"+{text}"
    if estimate.half_width is None:
        return f"{text} (1 seed)"
    text += f" ± {format_number(column, estimate.half_width, like=estimate.mean)}"
    return f"{text} {MARK}" if estimate.excludes_zero else text


def paper_setting_params(experiment: Experiment, row: Row) -> float | None:
    """Generator parameters of the row at the paper's COCO-Stuff setting (meta device)."""
    assert row.overrides is not None
    overrides = [*COCO_SETTING, *experiment.base_overrides, *row.overrides]
    return float(generator_parameters(overrides))


def runs_state(result: RowResult) -> str:
    """Why a row has no numbers: ``not run here``, ``failed`` or ``missing``."""
    if result.row.overrides is None:
        return "not run here"
    if any(run.status == "failed" for run in result.runs):
        return "failed"
    return "missing"


@dataclass
class RowSummary:
    """One row's numbers: estimates and paired differences by series key (``miou_ema``)."""

    result: RowResult
    reference: RowResult | None  # the row it is compared with; None for a reference row
    estimates: dict[str, Estimate | None] = field(default_factory=dict)
    differences: dict[str, Estimate | None] = field(default_factory=dict)
    why_no_difference: dict[str, str] = field(default_factory=dict)
    params: float | None = None  # generator_params (one architecture: the same for every seed)
    paper_setting: float | None = None
    paper_setting_error: str = ""


def summarize(
    experiment: Experiment, results: list[RowResult], generators: Sequence[str]
) -> list[RowSummary]:
    by_name = {result.row.name: result for result in results}
    summaries = []
    for result in results:
        row = result.row
        reference_row = experiment.reference_of(row)
        reference = None if reference_row is None else by_name[reference_row.name]
        summary = RowSummary(result, reference)
        for column in (c for c in experiment.columns if c in MEASURED):
            for generator in generators:
                key = series_key(column, generator)
                values = seed_values(result, column, generator)
                summary.estimates[key] = mean_ci(list(values.values())) if values else None
                summary.differences[key], summary.why_no_difference[key] = _difference(
                    result, reference, values, column, generator
                )
        params = seed_values(result, "generator_params", "generator")
        summary.params = next(iter(params.values()), None)
        if "paper_setting_params" in experiment.columns and row.overrides is not None:
            source = result.source or row
            try:
                summary.paper_setting = paper_setting_params(experiment, source)
            except Exception as error:  # noqa: BLE001 - shown in the cell, table goes on
                summary.paper_setting_error = describe_error(error)
        summaries.append(summary)
    return summaries


def _difference(
    result: RowResult,
    reference: RowResult | None,
    values: dict[int, float],
    column: str,
    generator: str,
) -> tuple[Estimate | None, str]:
    """The row's paired difference to its reference, or why there is none (a cell's text)."""
    if result.row.overrides is None:
        return None, "-"
    if reference is None:
        return None, "reference"
    if reference.run_name == result.run_name:
        return None, "same run"  # identical configuration: the difference is 0 by construction
    reference_values = seed_values(reference, column, generator)
    if not reference_values:
        return None, f"ref. {runs_state(reference)}"
    if not values:
        return None, "-"
    difference = paired_difference(values, reference_values)
    return difference, "" if difference is not None else "no shared seed"


def key_column(experiment: Experiment) -> str | None:
    """The column the Δ, the chart and the resolution are about: mIoU, else the first metric."""
    measured = [c for c in experiment.columns if c in MEASURED]
    return "miou" if "miou" in measured else next(iter(measured), None)


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


@dataclass
class Table:
    """A report's content: Markdown cells, numeric CSV records, header lines, chart rows."""

    header: list[str]
    cells: list[list[str]]
    records: list[dict[str, Any]]
    footnotes: list[str]
    key_header: list[int]  # indices of the columns the terminal shows
    statistics: list[str]  # header lines about seeds, CIs, references, resolution
    chart_rows: list[ChartRow]
    generators: list[str]
    seeds: list[int]  # every seed of the table's runs
    max_n: int  # the most finished seeds of a row (< 2: no intervals at all)


def table(
    experiment: Experiment,
    results: list[RowResult],
    generators: Sequence[str] = ("generator",),
) -> Table:
    generators = list(generators)
    summaries = summarize(experiment, results, generators)
    key = key_column(experiment)
    paper_keys: list[str] = []
    for result in results:
        paper_keys += [k for k in result.row.paper if k not in paper_keys]
    paper_keys = [k for k in paper_keys if any(r.row.paper.get(k) is not None for r in results)]
    own_references = any(row.reference is not None for row in experiment.rows)

    header = ["row"]
    key_header = [0]
    for column in experiment.columns:
        series = generators if column in MEASURED else ["generator"]
        for generator in series:
            if column == key:
                key_header.append(len(header))
            if column == "generator_params":
                key_header.append(len(header))
            header.append(f"ours: {series_header(column, generator, series)}")
        if column == key:
            for generator in generators:
                key_header.append(len(header))
                header.append(f"Δ {series_header(column, generator, generators)}")
            if own_references:
                header.append("compared with")
    header += [f"paper: {k}" for k in paper_keys] + ["status"]
    key_header.append(len(header) - 1)

    cells, records, footnotes, chart_rows = [], [], [], []
    for summary in summaries:
        result, row = summary.result, summary.result.row
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
            "reference": "" if summary.reference is None else summary.reference.row.name,
        }
        line = [label]
        for column in experiment.columns:
            if column == "generator_params":
                record["generator_params"] = summary.params
                line.append(_empty(result) if summary.params is None else _params(summary.params))
                continue
            if column == "paper_setting_params":
                value = summary.paper_setting
                record["paper_setting_params"] = value
                if summary.paper_setting_error:
                    record["paper_setting_params_error"] = summary.paper_setting_error
                line.append("-" if value is None else format_number(column, value))
                continue
            for generator in generators:
                name = series_key(column, generator)
                estimate = summary.estimates.get(name)
                line.append(
                    _empty(result) if estimate is None else format_estimate(column, estimate)
                )
                record.update(_estimate_record(name, estimate))
                difference = summary.differences.get(name)
                record.update(_estimate_record(f"{name}_diff", difference, prefix_mean=False))
            if column == key:
                for generator in generators:
                    name = series_key(column, generator)
                    difference = summary.differences.get(name)
                    if difference is not None:
                        line.append(format_difference(column, difference))
                    else:
                        line.append(summary.why_no_difference.get(name) or "-")
                if own_references:
                    line.append("-" if summary.reference is None else summary.reference.row.label)
        for k in paper_keys:
            value = row.paper.get(k)
            line.append("-" if value is None else format_paper(k, value))
            record[f"paper_{k}"] = value
        record["status"] = row_status(result)
        record["note"] = row.note
        line.append(record["status"])
        cells.append(line)
        records.append(record)
        if key is not None:
            chart_rows.append(
                ChartRow(
                    row.label,
                    {GENERATORS[g]: summary.estimates.get(series_key(key, g)) for g in generators},
                    {
                        k: v
                        for k, v in row.paper.items()
                        if v is not None and k.endswith(f"_{key}")
                    },
                )
            )
    seeds = sorted({run.seed for s in summaries for run in s.result.runs})
    max_n = max((e.n for s in summaries for e in s.estimates.values() if e), default=0)
    statistics = statistics_lines(experiment, summaries, generators, key, seeds, max_n)
    return Table(
        header,
        cells,
        records,
        footnotes,
        key_header,
        statistics,
        chart_rows,
        generators,
        seeds,
        max_n,
    )


def _empty(result: RowResult) -> str:
    if result.row.overrides is None:
        return "-"
    if any(run.status == "ok" for run in result.runs):
        return "-"  # measured runs without this metric (e.g. FID skipped)
    return runs_state(result)


def _params(value: float) -> str:
    return format_number("generator_params", value)


def _estimate_record(
    name: str, estimate: Estimate | None, prefix_mean: bool = True
) -> dict[str, Any]:
    """CSV columns of one estimate: ``NAME_mean`` (``NAME`` for a difference), CI and n."""
    mean_key = f"{name}_mean" if prefix_mean else name
    if estimate is None:
        values: list[Any] = [None] * 5
    else:
        values = [estimate.mean, estimate.std, estimate.low, estimate.high, estimate.n]
    keys = [mean_key, f"{name}_std", f"{name}_ci_low", f"{name}_ci_high", f"{name}_n"]
    record = dict(zip(keys, values))
    if not prefix_mean:
        record.pop(f"{name}_std")
    return record


def statistics_lines(
    experiment: Experiment,
    summaries: list[RowSummary],
    generators: Sequence[str],
    key: str | None,
    seeds: list[int],
    max_n: int,
) -> list[str]:
    """Header lines: seeds, what ± means, the references, and the smallest resolved Δ."""
    lines = []
    if max_n < 2:
        lines.append(
            f"seeds {seeds}, at most {max_n} finished per row: no CI possible (1 seed); cells "
            "are single-run values and a Δ is one seed's difference (run seeds=[0,1,2])."
        )
    else:
        lines.append(
            f"seeds {seeds} ({len(seeds)} seeds): cells are the mean over seeds ± the half-width "
            "of its 95% t-interval (t_0.975,n-1 · s/√n, n = the row's finished seeds)."
        )
    if key is None:
        return lines
    reference = experiment.reference or experiment.rows[0].name
    own = sorted({row.reference for row in experiment.rows if row.reference})
    lines.append(
        f"Δ {HEADERS[key]}: the row minus its reference row ({experiment.row(reference).label}"
        + (f"; rows naming their own: {', '.join(own)}" if own else "")
        + "), paired by seed over the seeds both have, ± the 95% t-interval's half-width; "
        f"{MARK} = the interval excludes 0."
    )
    used = {s.reference.row.name: s.reference for s in summaries if s.reference is not None}
    for result in used.values():
        if not any(seed_values(result, key, g) for g in generators):
            lines.append(
                f"reference row {result.row.label} ({result.row.name}) is "
                f"{runs_state(result)}: the rows compared with it have no Δ "
                f"({row_status(result) or 'no runs'})."
            )
    for generator in generators:
        name = series_key(key, generator)
        differences = [s.differences.get(name) for s in summaries]
        resolution = resolvable_difference(differences)
        which = f" ({GENERATORS[generator]})" if len(generators) > 1 else ""
        if resolution is None:
            lines.append(
                f"smallest resolvable Δ {HEADERS[key]}{which}: unknown (no row has 2 seeds "
                "shared with its reference)."
            )
        else:
            width, count = resolution
            lines.append(
                f"smallest resolvable Δ {HEADERS[key]}{which}: {format_number(key, width)} = "
                f"the median over {count} row(s) of the half-width of their Δ's 95% interval; "
                "a smaller effect is not resolved with these seeds."
                + seeds_needed(key, differences)
            )
    return lines


def seeds_needed(key: str, differences: list[Estimate | None]) -> str:
    """`` For ±T ...``: the seeds the key's target half-width needs at the rows' typical spread.

    Empty for a key without a target (``RESOLUTION_TARGETS``) or without a spread.
    """
    target = RESOLUTION_TARGETS.get(key)
    spread = typical_spread(differences)
    if target is None or spread is None:
        return ""
    n = seeds_for_half_width(spread, target)
    need = f"{n} paired seeds" if n is not None else "over 1000 paired seeds"
    return (
        f" For ±{format_number(key, target)} (the target) at the rows' median paired sd "
        f"{format_number(key, spread)}: {need}."
    )


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


def header_lines(
    experiment: Experiment,
    results: list[RowResult],
    content: Table,
    sweep_dir: Path,
    scale: str,
    data: str,
) -> tuple[list[str], str]:
    """The report's bullet lines (without bullets) and the measured scale."""
    seen = measured_context(results)
    counts = {"ok": 0, "failed": 0, "missing": 0}
    for result in results:
        if result.source is None:
            for run in result.runs:
                counts[run.status] += 1
    scales = ", ".join(seen["scale"]) or scale
    weights = " and ".join(GENERATORS[g] for g in content.generators)
    lines = [
        f"ours: scale={scales}, data={', '.join(seen['data']) or data}, "
        f"{', '.join(seen['size']) or '?'} images, {weights} generator weights, "
        f"segmenter: {', '.join(seen['segmenter']) or '?'}",
        *content.statistics,
    ]
    if seen["ceiling"]:
        ceilings = "; ".join(f"mIoU {m:.1f}, accuracy {a:.1f}" for m, a in seen["ceiling"])
        lines.append(
            f"judge ceiling (the judge on the real images; generated images score below): "
            f"{ceilings}"
        )
    lines.append(f"paper: {experiment.source}")
    if experiment.paper_setting:
        lines.append(f"paper setting: {experiment.paper_setting}")
    warning = SCALE_WARNINGS.get(scales)
    if warning:
        lines.append(f"**{warning}**")
    if "fid" in experiment.columns and seen["fid"]:
        lines.append(f"FID {seen['fid'][0]}")
    if experiment.notes:
        lines.append(f"notes: {experiment.notes}")
    lines.append(
        f"runs: {counts['ok']} ok, {counts['failed']} failed, {counts['missing']} missing "
        f"in {sweep_dir}"
    )
    return lines, scales


def format_markdown(
    experiment: Experiment,
    results: list[RowResult],
    sweep_dir: Path,
    scale: str,
    data: str,
    generators: Sequence[str] = ("generator",),
    content: Table | None = None,
) -> str:
    content = content or table(experiment, results, generators)
    lines, _ = header_lines(experiment, results, content, sweep_dir, scale, data)
    out = [f"## {experiment.name}: {experiment.title}", ""] + [f"- {line}" for line in lines]
    header = content.header
    out += ["", "| " + " | ".join(header) + " |"]
    out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header) - 1)))
    out[-1] += "|---|"
    for line in content.cells:
        out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |")
    for i, note in enumerate(content.footnotes, 1):
        out.append(f"\n[{i}] {note}" if i == 1 else f"[{i}] {note}")
    return "\n".join(out) + "\n"


def format_terminal(
    experiment: Experiment,
    results: list[RowResult],
    sweep_dir: Path,
    scale: str,
    data: str,
    content: Table,
    width: int = TERMINAL_WIDTH,
) -> str:
    """The header and the key columns in ``width`` characters; the rest is in report.md/.csv."""
    lines, _ = header_lines(experiment, results, content, sweep_dir, scale, data)
    out = [f"{experiment.name}: {experiment.title}"[:width]]
    for line in lines:
        out += textwrap.wrap(
            line.replace("**", ""), width, initial_indent="- ", subsequent_indent="  "
        )
    header = [content.header[i].removeprefix("ours: ") for i in content.key_header]
    rows = [[line[i] for i in content.key_header] for line in content.cells]
    out += [""] + fit_columns([header, *rows], width)
    out += textwrap.wrap(
        "(key columns only; every column, the paper's numbers and the notes are in "
        f"{sweep_dir}/report.md, report.csv and report.png)",
        width,
        break_on_hyphens=False,
    )
    return "\n".join(out) + "\n"


def fit_columns(rows: list[list[str]], width: int, label_width: int = 36) -> list[str]:
    """Aligned text columns in ``width`` characters: long labels and the last column are cut."""
    rows = [[_cut(r[0], label_width), *r[1:]] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    fixed = sum(widths[:-1]) + 2 * (len(widths) - 1)
    last = max(8, width - fixed)
    lines = []
    for r in rows:
        parts = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:-1], widths[1:-1])]
        lines.append(("  ".join([*parts, _cut(r[-1], last)])).rstrip()[:width])
    return lines


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def csv_records(
    experiment: Experiment, results: list[RowResult], scale: str, data: str, content: Table
) -> tuple[list[str], list[dict[str, Any]]]:
    seen = measured_context(results)
    keys: list[str] = ["table", "row", "label", "scale", "data", "image_size"]
    records = []
    for record in content.records:
        record = {
            **record,
            "scale": ", ".join(seen["scale"]) or scale,
            "data": ", ".join(seen["data"]) or data,
            "image_size": ", ".join(seen["size"]),
        }
        keys += [key for key in record if key not in keys]
        records.append(record)
    return keys, records


def format_csv(
    experiment: Experiment,
    results: list[RowResult],
    scale: str,
    data: str,
    generators: Sequence[str] = ("generator",),
    content: Table | None = None,
) -> str:
    content = content or table(experiment, results, generators)
    keys, records = csv_records(experiment, results, scale, data, content)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


# ---- outputs ------------------------------------------------------------------------------
def check_no_emptier(path: Path, keys: list[str], records: list[dict[str, Any]]) -> None:
    """Refuse to replace ``path`` (a report.csv) where one of its filled mean columns would be
    empty in the new report (other seeds, another generator, a sweep dir of other runs)."""
    if not path.is_file():
        return
    with path.open(newline="") as handle:
        old = list(csv.DictReader(handle))
    for key in (k for k in keys if k.endswith("_mean") or k == "generator_params"):
        new_empty = all(record.get(key) is None for record in records)
        if new_empty and any((row.get(key) or "") != "" for row in old):
            raise ConfigError(
                f"{path} has values in column {key}, which the new report would leave empty; "
                "not overwriting report.md/.csv (check seeds=, generator= and sweep_dir=, or "
                "delete the old report to replace it)"
            )


def publish(
    experiment: Experiment,
    results: list[RowResult],
    sweep_dir: Path,
    scale: str,
    data: str,
    use_wandb: bool = False,
    wandb_project: str = "spadelab",
    generator: str | None = None,
) -> str:
    """Write report.md, report.csv and report.png into the sweep dir (and a wandb Table);
    return the terminal text. ``generator``: one of :data:`GENERATOR_CHOICES` (None: all the
    runs have)."""
    generators = pick_generators(generator, results, sweep_dir)
    content = table(experiment, results, generators)
    keys, records = csv_records(experiment, results, scale, data, content)
    check_no_emptier(sweep_dir / "report.csv", keys, records)
    markdown = format_markdown(experiment, results, sweep_dir, scale, data, generators, content)
    text_csv = format_csv(experiment, results, scale, data, generators, content)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "report.md").write_text(markdown)
    (sweep_dir / "report.csv").write_text(text_csv)
    key = key_column(experiment)
    if key is not None:
        write_chart(
            sweep_dir / "report.png",
            f"{experiment.name}: {experiment.title}",
            content.chart_rows,
            HEADERS[key],
            [GENERATORS[g] for g in generators],
            note=(
                f"seeds {content.seeds}: mean ± 95% t-interval"
                if content.max_n >= 2
                else f"seeds {content.seeds}: 1 finished seed per row, no CI possible"
            ),
        )
    text = format_terminal(experiment, results, sweep_dir, scale, data, content)
    if use_wandb:
        run_path = log_wandb(experiment, keys, records, sweep_dir, scale, data, wandb_project)
        text += f"wandb: report logged to {run_path}\n"
    return text


def log_wandb(
    experiment: Experiment,
    keys: list[str],
    records: list[dict[str, Any]],
    sweep_dir: Path,
    scale: str,
    data: str,
    project: str = "spadelab",
) -> str:
    """Log the table as a ``wandb.Table`` (numbers stay numbers, so wandb can sort and plot
    them) into a run in the sweep's group; returns the run's dir."""
    import wandb

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
        rows = [[record.get(key) for key in keys] for record in records]
        run.log({f"report/{experiment.name}": wandb.Table(columns=keys, data=rows)})
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
    except Exception as error:  # noqa: BLE001 - the one error path re-raises bugs
        return command_error("report", error)
    print(text, end="")
    return 0


def run_report(argv: Sequence[str]) -> str:
    values, positional = parse_args(argv[1:], "report", OPTIONS)
    if positional:
        raise ConfigError(f"unexpected {positional}; after the experiment file pass key=value")
    options = {key: parse_value(value) for key, value in values.items()}
    experiment = load_experiment(argv[0])
    generator = None if options.get("generator") is None else str(options["generator"])
    if generator is not None and generator not in GENERATOR_CHOICES:
        pick_generators(generator, [], Path("."))  # raises, naming the valid choices
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
