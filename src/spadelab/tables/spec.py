"""The experiment file format (``experiments/*.yaml``): a results table as rows of overrides.

Format and keys: ``experiments/README.md``. Everything else in ``spadelab.tables`` reads an
:class:`Experiment` from here; this module imports no other ``tables`` module (only the
repository paths, the error type and the paper's parameter rows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import yaml

from spadelab.config import REPO_ROOT
from spadelab.paper import ROWS, ParamRow
from spadelab.runtime import ConfigError

EXPERIMENTS_DIR = REPO_ROOT / "experiments"
COLUMNS = (
    "miou",
    "accuracy",
    "fd_judge",
    "fid",
    "kid",
    "generator_params",
    "paper_setting_params",
)
EXPERIMENT_KEYS = {
    "name",
    "title",
    "source",
    "paper_setting",
    "notes",
    "columns",
    "seeds",
    "base_overrides",
    "rows",
    "grid",
    "reference",
}
ROW_KEYS = {"name", "label", "overrides", "params_row", "same_as", "paper", "note", "reference"}
ROW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Row:
    name: str
    label: str
    overrides: tuple[str, ...] | None  # None: not run here (not implemented / paper reference)
    paper: dict[str, float | None] = field(default_factory=dict)
    note: str = ""
    same_as: str | None = None  # reported with the runs of that row (identical configuration)
    reference: str | None = None  # the row this one is compared with, paired by seed

    @property
    def runs(self) -> bool:
        return self.overrides is not None and self.same_as is None


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    source: str
    columns: tuple[str, ...]
    seeds: tuple[int, ...]
    base_overrides: tuple[str, ...]
    rows: tuple[Row, ...]
    path: Path
    paper_setting: str = ""
    notes: str = ""
    reference: str | None = None  # the table's reference row (default: its first row)

    def reference_of(self, row: Row) -> Row | None:
        """The row ``row`` is compared with: its own ``reference``, else the table's."""
        name = row.reference or self.reference or self.rows[0].name
        return None if name == row.name else self.row(name)

    def row(self, name: str) -> Row:
        for row in self.rows:
            if row.name == name:
                return row
        raise ConfigError(
            f"{self.path}: no row named {name!r}; rows: {', '.join(r.name for r in self.rows)}"
        )

    @property
    def run_rows(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if row.runs)


def experiment_path(spec: str | Path) -> Path:
    """A path to an experiment file, or the name of one in ``experiments/`` (``table4``)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path.resolve()
    named = EXPERIMENTS_DIR / f"{spec}.yaml"
    if named.is_file():
        return named
    known = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))
    raise FileNotFoundError(
        f"experiment file {spec} not found; pass a path or one of: {', '.join(known) or '-'}"
    )


def load_experiment(spec: str | Path) -> Experiment:
    path = experiment_path(spec)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with name, title, rows; got {raw!r}")
    unknown = set(raw) - EXPERIMENT_KEYS
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"valid keys: {', '.join(sorted(EXPERIMENT_KEYS))}"
        )
    for key in ("name", "title", "source"):
        if not raw.get(key):
            raise ConfigError(f"{path}: `{key}` is required")
    columns = tuple(raw.get("columns") or ("miou", "accuracy", "fd_judge"))
    bad = [c for c in columns if c not in COLUMNS]
    if bad:
        raise ConfigError(f"{path}: unknown column(s) {bad}; valid columns: {', '.join(COLUMNS)}")
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"{path}: seeds must be a non-empty list of integers, got {seeds!r}")
    rows = [_row(entry, path) for entry in raw.get("rows") or []]
    rows += _grid_rows(raw.get("grid"), path)
    if not rows:
        raise ConfigError(f"{path}: no rows; add `rows:` (or a `grid:`)")
    names = [row.name for row in rows]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{path}: duplicate row name(s) {duplicates}; row names must be unique")
    for row in rows:
        if row.same_as is not None:
            target = next((r for r in rows if r.name == row.same_as), None)
            if target is None or not target.runs:
                raise ConfigError(
                    f"{path}: row {row.name} has same_as: {row.same_as}, which is not a row "
                    "that runs; name a row with overrides"
                )
    names_set = set(names)
    references = [("reference", raw.get("reference"))] + [
        (f"row {row.name}: reference", row.reference) for row in rows
    ]
    for where, name in references:
        if name is not None and name not in names_set:
            raise ConfigError(f"{path}: {where}: {name} is not a row; rows: {', '.join(names)}")
    return Experiment(
        name=str(raw["name"]),
        title=str(raw["title"]),
        source=str(raw["source"]).strip(),
        columns=columns,
        seeds=tuple(seeds),
        base_overrides=tuple(_overrides(raw.get("base_overrides") or [], path, "base_overrides")),
        rows=tuple(rows),
        path=path,
        paper_setting=str(raw.get("paper_setting") or "").strip(),
        notes=str(raw.get("notes") or "").strip(),
        reference=None if raw.get("reference") is None else str(raw["reference"]),
    )


def _overrides(value: Any, path: Path, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"{path}: {where} must be a list of Hydra override strings such as "
            f"[norm=batch, modulation.kernel_size=5], got {value!r}"
        )
    return list(value)


def _row(entry: Any, path: Path) -> Row:
    if not isinstance(entry, dict) or "name" not in entry:
        raise ConfigError(f"{path}: every row needs a `name`, got {entry!r}")
    name = str(entry["name"])
    where = f"row {name}"
    unknown = set(entry) - ROW_KEYS
    if unknown:
        raise ConfigError(
            f"{path}: {where} has unknown key(s) {', '.join(sorted(unknown))}; "
            f"valid keys: {', '.join(sorted(ROW_KEYS))}"
        )
    if not ROW_NAME.match(name):
        raise ConfigError(
            f"{path}: row name {name!r} must be letters, digits, '_' and '-' (it names files "
            "and run dirs)"
        )
    paper = entry.get("paper") or {}
    if not isinstance(paper, dict):
        raise ConfigError(f"{path}: {where}: paper must map column names to numbers")
    paper = {str(k): (None if v is None else float(v)) for k, v in paper.items()}
    overrides: list[str] | None = None
    if "overrides" not in entry and "params_row" not in entry and "same_as" not in entry:
        raise ConfigError(
            f"{path}: {where} needs `overrides` (a list; [] = the defaults, null = not run "
            "here), `params_row` or `same_as`"
        )
    if entry.get("overrides") is not None:
        overrides = _overrides(entry["overrides"], path, f"{where}.overrides")
    if entry.get("params_row") is not None:
        param_row = _param_row(str(entry["params_row"]), path, where)
        overrides = [*param_row.overrides, *(overrides or [])]
        paper.setdefault("params_m", float(param_row.paper_millions))
    same_as = entry.get("same_as")
    if same_as is not None and overrides is None:
        overrides = []
    return Row(
        name=name,
        label=str(entry.get("label") or name),
        overrides=None if overrides is None else tuple(overrides),
        paper=paper,
        note=str(entry.get("note") or "").strip(),
        same_as=None if same_as is None else str(same_as),
        reference=None if entry.get("reference") is None else str(entry["reference"]),
    )


def _param_row(label: str, path: Path, where: str) -> ParamRow:
    """The paper's generator rows live in ``spadelab.paper.ROWS``; tables reuse them by label."""
    for row in ROWS:
        if row.label == label:
            return row
    raise ConfigError(
        f"{path}: {where}: params_row {label!r} is not in spadelab.paper.ROWS; "
        f"known: {', '.join(r.label for r in ROWS)}"
    )


def _grid_rows(grid: Any, path: Path) -> list[Row]:
    """``grid: {norm: [batch, instance], modulation: [spade, concat]}`` -> one row per product."""
    if grid is None:
        return []
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"{path}: grid must map an override key to a list of values")
    rows = []
    for values in product(*grid.values()):
        pairs = [f"{key}={value}" for key, value in zip(grid, values)]
        rows.append(
            Row(
                name="-".join(str(v) for v in values),
                label=", ".join(pairs),
                overrides=tuple(pairs),
            )
        )
    return rows
