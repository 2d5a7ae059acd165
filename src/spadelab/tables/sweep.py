"""``spadelab sweep``: a results table is one Hydra multirun over its rows (x seeds).

    spadelab sweep experiments/table4.yaml [scale=smoke] [data=synthetic] [logger=csv]
        [launcher=basic|joblib|submitit_local|slurm] [seeds=[0,1,2]] [rows=[name,...]]
        [sweep_dir=PATH] [dry_run=true] [eval.*=...] [any train override...]

1. ``experiments/<table>.yaml`` lists the rows; each row is a list of overrides of
   ``conf/train.yaml`` (plus the file's ``base_overrides``).
2. Each row becomes a Hydra config ``<sweep_dir>/.rows/row/<name>.yaml`` (``@package _global_``,
   ``override /group: choice`` in its defaults list, plain values for keys), regenerated on every
   call; ``<sweep_dir>/.rows`` goes on Hydra's search path.
3. One multirun of ``python -m spadelab.sweep`` (the job entry point at the end of this file)
   over ``+row=<names> seed=<seeds>`` with the chosen ``hydra/launcher``
   (``conf/hydra/launcher/``). Run dirs are ``<sweep_dir>/<row>-seed<k>``; ``sweep_dir``
   defaults to ``multirun/<table>/<scale>-<data>``.
4. A job skips a run dir with a complete metrics.json; otherwise it trains with
   ``ckpt_path=auto`` (resuming last.ckpt) and evaluates. A failing job writes FAILED.json and
   the sweep goes on. Re-running the same command therefore finishes an interrupted sweep.
5. The table is printed at the end (``spadelab report`` prints it again).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import hydra
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from spadelab.config import CONF_DIR, REPO_ROOT
from spadelab.runtime import (
    ConfigError,
    describe_error,
    run_command,
    validate_targets,
    write_json,
)

log = logging.getLogger("spadelab.sweep")

EXPERIMENTS_DIR = REPO_ROOT / "experiments"
# launcher= of `spadelab sweep` -> hydra/launcher choice (conf/hydra/launcher/ and the plugins')
LAUNCHERS = {
    "basic": "basic",
    "joblib": "local_joblib",
    "submitit_local": "local_submitit",
    "slurm": "slurm",
}
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
# Sections of a run's config that decide what its numbers mean: a run dir saved with other values
# belongs to another experiment and is never skipped or resumed as if it were this one.
IDENTITY_KEYS = ("model", "norm", "modulation", "encoder", "loss", "seed")
OPTIONS = {"launcher", "seeds", "rows", "sweep_dir", "dry_run", "strict", "wandb"}
SWEEP_OWNED = {"hydra.sweep.dir", "hydra.sweep.subdir", "hydra/launcher", "hydra.searchpath"}


# ---- experiment files ---------------------------------------------------------------------
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


def _param_row(label: str, path: Path, where: str) -> Any:
    """The paper's generator rows live in ``spadelab.params.ROWS``; tables reuse them by label."""
    from spadelab.params import ROWS

    for row in ROWS:
        if row.label == label:
            return row
    raise ConfigError(
        f"{path}: {where}: params_row {label!r} is not in spadelab.params.ROWS; "
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


# ---- row configs --------------------------------------------------------------------------
def is_group(key: str) -> bool:
    return (CONF_DIR / key).is_dir()


def row_config(row: Row, experiment: Experiment, context: dict[str, Any]) -> dict[str, Any]:
    """The Hydra config of one row: its group choices as defaults-list overrides, keys as values.

    ``context``: ``group``, ``scale``, ``data``, ``sweep_dir``, ``eval_overrides``.
    """
    assert row.overrides is not None, row
    parser = OverridesParser.create()
    groups: dict[str, tuple[str, bool]] = {}
    values = OmegaConf.create({})
    tags = [f"table={experiment.name}", f"row={row.name}"]
    for text in (*experiment.base_overrides, *row.overrides):
        where = f"{experiment.path}: row {row.name}: override {text!r}"
        try:
            override = parser.parse_override(text)
        except Exception as error:  # noqa: BLE001
            raise ConfigError(f"{where} is not a Hydra override: {error}") from error
        key = override.key_or_group
        if override.is_delete() or override.is_sweep_override() or override.package:
            raise ConfigError(
                f"{where}: rows take plain `key=value` / `group=choice` overrides (no ~, no "
                "sweeps, no @package); make a sweep a list of rows or seeds instead"
            )
        if key.startswith("hydra.") or key in ("seed", "run_dir"):
            raise ConfigError(
                f"{where}: {key} is set by the sweep; pass hydra.* settings to `spadelab sweep` "
                "and seeds in the experiment's `seeds`"
            )
        value = override.value()
        if is_group(key):
            if not isinstance(value, str):
                raise ConfigError(f"{where}: group {key} needs one choice name")
            groups[key] = (value, override.is_add())
        else:
            OmegaConf.update(values, key, value, merge=False, force_add=True)
        tag = text.lstrip("+")[:64]
        if tag not in tags:
            tags.append(tag)
    tags += [f"scale={context['scale']}", f"data={context['data']}"]
    defaults: list[Any] = [
        {f"{'' if added else 'override '}/{group}": choice}
        for group, (choice, added) in groups.items()
    ]
    row_values = OmegaConf.to_container(values)
    assert isinstance(row_values, dict)
    for reserved in ("ckpt_path", "experiment", "sweep", "defaults"):
        if reserved in row_values:
            raise ConfigError(
                f"{experiment.path}: row {row.name} sets {reserved}, which the sweep sets"
            )
    config: dict[str, Any] = {"defaults": [*defaults, "_self_"], **row_values}
    config["ckpt_path"] = "auto"
    config["experiment"] = {
        "table": experiment.name,
        "row": row.name,
        "group": context["group"],
        "tags": tags,
        "run_name": f"{row.name}-seed${{seed}}",
    }
    config["sweep"] = {
        "dir": str(context["sweep_dir"]),
        "eval_overrides": list(context["eval_overrides"]),
    }
    return config


def write_row_configs(
    experiment: Experiment, rows: Sequence[Row], rows_root: Path, context: dict[str, Any]
) -> dict[str, str]:
    """Write ``rows_root/row/<name>.yaml`` for every row; returns compose errors by row name."""
    folder = rows_root / "row"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.yaml"):
        stale.unlink()
    errors = {}
    for row in rows:
        try:
            config = row_config(row, experiment, context)
        except ConfigError as error:
            errors[row.name] = str(error)
            continue
        header = (
            "# @package _global_\n"
            f"# Generated by `spadelab sweep` from {experiment.path} (row {row.name}); "
            "rewritten on every run.\n"
        )
        text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=99)
        (folder / f"{row.name}.yaml").write_text(header + text)
    return errors


# ---- run dirs ----------------------------------------------------------------------------
def run_dir_name(row: str, seed: int) -> str:
    return f"{row}-seed{seed}"


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    """The run's metrics.json when evaluation finished (it is written last), else None."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    section = metrics.get("generator") if isinstance(metrics, dict) else None
    return metrics if isinstance(section, dict) and "miou" in section else None


def identity(cfg: dict[str, Any]) -> dict[str, Any]:
    identity_ = {key: cfg.get(key) for key in IDENTITY_KEYS}
    identity_["scale"] = (cfg.get("scale") or {}).get("name")
    identity_["data"] = (cfg.get("data") or {}).get("name")
    return identity_


def config_differences(run_dir: Path, cfg: dict[str, Any]) -> list[str]:
    """Sections in which ``run_dir/config.yaml`` (a previous run) differs from ``cfg``."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return []
    saved = OmegaConf.to_container(OmegaConf.load(saved_path), resolve=False)
    assert isinstance(saved, dict)
    old, new = identity(saved), identity(cfg)
    return [key for key in new if old.get(key) != new[key]]


def stale_message(run_dir: Path, differences: list[str]) -> str:
    return (
        f"{run_dir} holds a run with a different {', '.join(differences)} (the experiment file "
        "or the overrides changed since it ran); delete that run dir to rerun the row, or pass "
        "sweep_dir=NEW_DIR for a separate sweep"
    )


def run_state(run_dir: Path, cfg: dict[str, Any]) -> tuple[str, str]:
    """``(state, message)``: ``complete`` (skip), ``stale`` (another config's run) or ``todo``."""
    differences = config_differences(run_dir, cfg)
    if differences:
        return "stale", stale_message(run_dir, differences)
    if read_metrics(run_dir) is not None:
        return "complete", ""
    return "todo", ""


# ---- planning -----------------------------------------------------------------------------
@dataclass
class Plan:
    experiment: Experiment
    sweep_dir: Path
    scale: str
    data: str
    logger: str
    launcher: str
    seeds: tuple[int, ...]
    rows: tuple[Row, ...]  # the rows of this invocation that run
    overrides: list[str]  # passed to every job on the command line
    eval_overrides: list[str]
    jobs: dict[tuple[str, int], str] = field(default_factory=dict)  # (row, seed) -> state
    errors: dict[str, str] = field(default_factory=dict)  # row -> why it cannot run
    wandb_project: str = "spadelab"

    @property
    def group(self) -> str:
        return f"{self.experiment.name}-{self.scale}-{self.data}"

    @property
    def rows_root(self) -> Path:
        return self.sweep_dir / ".rows"

    def to_launch(self) -> tuple[list[str], list[int]]:
        todo = [key for key, state in self.jobs.items() if state == "todo"]
        names = [row.name for row in self.rows if any(r == row.name for r, _ in todo)]
        seeds = [seed for seed in self.seeds if any(s == seed for _, s in todo)]
        return names, seeds

    def command(self) -> list[str]:
        names, seeds = self.to_launch()
        launcher = [f"hydra/launcher={LAUNCHERS[self.launcher]}"]
        return [
            sys.executable,
            "-m",
            "spadelab.sweep",
            "--multirun",
            f"hydra.searchpath=[{_quote('file://' + str(self.rows_root))}]",
            f"hydra.sweep.dir={_quote(str(self.sweep_dir))}",
            "hydra.sweep.subdir=${experiment.row}-seed${seed}",
            *launcher,
            f"+row={','.join(names)}",
            f"seed={','.join(str(s) for s in seeds)}",
            *self.overrides,
        ]


def _quote(text: str) -> str:
    if re.fullmatch(r"[\w/.:+-]+", text):
        return text
    if "'" in text or "\\" in text:
        raise ConfigError(f"path {text!r} contains quotes or backslashes; use a plainer path")
    return f"'{text}'"


def parse_arguments(argv: Sequence[str]) -> tuple[str, dict[str, Any], list[str], list[str]]:
    """``(experiment, options, train overrides, eval overrides)`` from the command line."""
    if not argv or argv[0].startswith("-") or "=" in argv[0]:
        raise ConfigError(
            "the first argument is the experiment file, e.g. `spadelab sweep "
            "experiments/table4.yaml scale=smoke`"
        )
    options: dict[str, Any] = {}
    overrides: list[str] = []
    eval_overrides: list[str] = []
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(f"argument {arg!r} is not key=value (a Hydra override or option)")
        if key in OPTIONS:
            options[key] = yaml.safe_load(value) if value else None
        elif key == "seed":
            raise ConfigError("seeds are swept by the sweep: pass seeds=[0,1,2], not seed=")
        elif key.lstrip("+~") in SWEEP_OWNED:
            raise ConfigError(
                f"{key} is set by the sweep; use sweep_dir=PATH for where runs go and "
                f"launcher={'|'.join(LAUNCHERS)} (then hydra.launcher.KEY=VALUE) for how"
            )
        elif key.startswith("eval."):
            eval_overrides.append(arg)
        else:
            overrides.append(arg)
    return argv[0], options, overrides, eval_overrides


def compose_train(overrides: Sequence[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def choices(overrides: Sequence[str], launcher: str = "basic") -> dict[str, str]:
    """The group choices (scale, data, logger...) that ``overrides`` give ``conf/train.yaml``."""
    cfg = compose_train(["run_dir=.", f"hydra/launcher={LAUNCHERS[launcher]}", *overrides])
    return {str(k): str(v) for k, v in cfg.hydra.runtime.choices.items()}


def default_sweep_dir(experiment: Experiment, scale: str, data: str) -> Path:
    return (Path("multirun") / experiment.name / f"{scale}-{data}").resolve()


def plan(
    experiment: Experiment,
    options: dict[str, Any],
    overrides: list[str],
    eval_overrides: list[str],
) -> Plan:
    """Resolve names and dirs, write the row configs and compose every row to check it."""
    unknown = set(options) - OPTIONS
    if unknown:
        raise ConfigError(f"unknown sweep option(s) {sorted(unknown)}")
    launcher = str(options.get("launcher") or "basic")
    if launcher not in LAUNCHERS:
        raise ConfigError(f"launcher={launcher} is not one of: {', '.join(LAUNCHERS)}")
    seeds = options.get("seeds", list(experiment.seeds))
    seeds = [seeds] if isinstance(seeds, int) else seeds
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"seeds={seeds!r}: pass a list of integers, e.g. seeds=[0,1,2]")
    wanted = options.get("rows")
    rows = list(experiment.run_rows)
    if wanted is not None:
        wanted = [wanted] if isinstance(wanted, str) else [str(name) for name in wanted]
        # Unknown names fail here, naming the valid ones; a same_as row runs as its source.
        wanted = [experiment.row(name).same_as or name for name in wanted]
        rows = [row for row in rows if row.name in wanted]
    if not rows:
        raise ConfigError(f"{experiment.path}: no row to run (rows={wanted})")
    try:
        picked = choices(overrides, launcher)
    except Exception as error:  # noqa: BLE001
        raise ConfigError(
            f"the sweep's overrides do not compose: {describe_error(error)}"
        ) from error
    scale, data, logger = picked["scale"], picked["data"], picked.get("logger", "none")
    sweep_dir = options.get("sweep_dir")
    sweep_dir = (
        Path(str(sweep_dir)).expanduser().resolve()
        if sweep_dir
        else default_sweep_dir(experiment, scale, data)
    )
    result = Plan(
        experiment=experiment,
        sweep_dir=sweep_dir,
        scale=scale,
        data=data,
        logger=logger,
        launcher=launcher,
        seeds=tuple(seeds),
        rows=tuple(rows),
        overrides=overrides,
        eval_overrides=eval_overrides,
    )
    context = {
        "group": result.group,
        "scale": scale,
        "data": data,
        "sweep_dir": sweep_dir,
        "eval_overrides": eval_overrides,
    }
    result.errors = write_row_configs(experiment, rows, result.rows_root, context)
    for row in rows:
        if row.name in result.errors:
            result.jobs.update({(row.name, seed): "invalid" for seed in seeds})
            continue
        try:
            cfg = compose_train(
                [
                    f"hydra.searchpath=[{_quote('file://' + str(result.rows_root))}]",
                    f"+row={row.name}",
                    f"seed={seeds[0]}",
                    f"run_dir={_quote(str(sweep_dir / run_dir_name(row.name, seeds[0])))}",
                    f"hydra/launcher={LAUNCHERS[launcher]}",
                    *overrides,
                ]
            )
            plain = job_config(cfg)
            validate_targets(plain)
        except Exception as error:  # noqa: BLE001 - reported per row, the others still run
            result.errors[row.name] = describe_error(error)
            result.jobs.update({(row.name, seed): "invalid" for seed in seeds})
            continue
        check_launch(cfg, launcher)  # the same for every row: fails the whole sweep
        result.wandb_project = str(
            (plain.get("logger") or {}).get("wandb", {}).get("project", result.wandb_project)
        )
        for seed in seeds:
            run_dir = sweep_dir / run_dir_name(row.name, seed)
            state, message = run_state(run_dir, {**plain, "seed": seed})
            result.jobs[row.name, seed] = state
            if state == "stale":
                result.errors[row.name] = message
    return result


def job_config(cfg: DictConfig) -> dict[str, Any]:
    """A composed config (with its ``hydra`` node) as the plain, resolved dict a job sees."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(plain, dict)
    plain.pop("hydra", None)
    resolved = OmegaConf.to_container(OmegaConf.create(plain), resolve=True)
    assert isinstance(resolved, dict)
    return resolved


def check_launch(cfg: DictConfig, launcher: str) -> None:
    """Refuse combinations that cannot work, before any job starts."""
    strategy = str(cfg.trainer.get("strategy", "auto"))
    devices = cfg.trainer.get("devices", 1)
    processes = devices * int(cfg.trainer.get("num_nodes", 1)) if isinstance(devices, int) else 2
    spawned = "spawn" in strategy or "fork" in strategy
    if launcher != "slurm" and strategy.startswith("ddp") and not spawned and processes > 1:
        raise ConfigError(
            f"trainer.strategy={strategy} starts its processes by re-running the command, which "
            "inside a Hydra multirun re-runs the whole sweep; use launcher=slurm (one task per "
            "GPU) or trainer.strategy=ddp_spawn_find_unused_parameters_true for a local sweep"
        )
    if launcher == "slurm":
        if not isinstance(devices, int) or devices < 1:
            raise ConfigError(
                f"trainer.devices={devices}: launcher=slurm needs a number of GPUs per node "
                "(it becomes gpus_per_node and tasks_per_node)"
            )
        try:
            queue = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
        except Exception as error:  # noqa: BLE001
            raise ConfigError(f"hydra.launcher does not resolve: {error}") from error
        assert isinstance(queue, dict)
        if not queue["tasks_per_node"] == queue["gpus_per_node"] == devices:
            raise ConfigError(
                f"hydra.launcher.tasks_per_node={queue['tasks_per_node']} and gpus_per_node="
                f"{queue['gpus_per_node']} must both equal trainer.devices={devices} (one process "
                "per GPU); set trainer.devices instead of the launcher's fields"
            )


def record_states(plan_: Plan) -> None:
    """Runs that cannot start get their FAILED.json now (they are not launched); complete runs
    lose one left by an earlier attempt (e.g. a config change that was since undone)."""
    for (row, seed), state in plan_.jobs.items():
        failed = plan_.sweep_dir / run_dir_name(row, seed) / "FAILED.json"
        if state in ("invalid", "stale"):
            write_json(failed, {"error": plan_.errors[row], "traceback": None, "stage": "plan"})
        elif state == "complete":
            failed.unlink(missing_ok=True)


def describe_plan(plan_: Plan) -> str:
    counts: dict[str, int] = {}
    for state in plan_.jobs.values():
        counts[state] = counts.get(state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    lines = [
        f"sweep {plan_.experiment.name}: {len(plan_.rows)} rows x seeds {list(plan_.seeds)} "
        f"at scale={plan_.scale} data={plan_.data} logger={plan_.logger} "
        f"launcher={plan_.launcher} ({summary})",
        f"sweep dir: {plan_.sweep_dir}",
    ]
    for row, message in plan_.errors.items():
        lines.append(f"  row {row} will not run: {message}")
    return "\n".join(lines)


# ---- the command --------------------------------------------------------------------------
USAGE = """usage: spadelab sweep EXPERIMENT [scale=smoke] [data=synthetic] [logger=csv]
           [launcher=basic|joblib|submitit_local|slurm] [seeds=[0,1,2]] [rows=[a,b]]
           [sweep_dir=PATH] [dry_run=true] [strict=true] [wandb=true] [eval.KEY=VALUE...]
           [OVERRIDE...]

EXPERIMENT is experiments/<table>.yaml or its name (table4). Runs every row x seed as one Hydra
multirun into multirun/<table>/<scale>-<data>/<row>-seed<k>, skipping complete runs and resuming
interrupted ones, then prints the report. eval.* go to `spadelab evaluate`, everything else to
every run's `spadelab train`. strict=true exits 1 when a run failed. logger=wandb groups the runs
in wandb and logs the report as a wandb.Table (wandb=true: only the report)."""


def cli(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    try:
        spec, options, overrides, eval_overrides = parse_arguments(argv)
        experiment = load_experiment(spec)
        plan_ = plan(experiment, options, overrides, eval_overrides)
    except (ConfigError, FileNotFoundError) as error:
        print(f"spadelab sweep: error: {error}", file=sys.stderr)
        return 2
    print(describe_plan(plan_), flush=True)
    if options.get("dry_run"):
        names, _ = plan_.to_launch()
        print(" ".join(plan_.command()) if names else "nothing to launch")
        return 0
    record_states(plan_)
    names, _ = plan_.to_launch()
    code = 0
    if names:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        code = subprocess.run(plan_.command(), env=env, check=False).returncode
        if code != 0:
            print(f"spadelab sweep: the multirun exited with code {code}", file=sys.stderr)
    else:
        print("every run of this sweep is complete or cannot run; nothing to launch")
    from spadelab import report

    results = report.gather(experiment, plan_.sweep_dir)
    print()
    print(
        report.publish(
            experiment,
            results,
            plan_.sweep_dir,
            scale=plan_.scale,
            data=plan_.data,
            use_wandb=plan_.logger == "wandb" or bool(options.get("wandb")),
            wandb_project=plan_.wandb_project,
        )
    )
    failed = sum(1 for r in results for run in r.runs if run.status == "failed")
    if code == 0 and failed and options.get("strict"):
        return 1
    return code


def main() -> int:
    return cli(sys.argv[1:])


# ---- one job of the multirun ---------------------------------------------------------------
def run_row(cfg: DictConfig) -> dict[str, Any] | None:
    """Train (resuming) and evaluate one row x seed, unless its run dir is complete."""
    run_dir = Path(str(cfg.run_dir))
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    state, message = run_state(run_dir, plain)
    if state == "stale":
        raise ConfigError(message)
    if state == "complete":
        (run_dir / "FAILED.json").unlink(missing_ok=True)
        log.info("%s is complete (metrics.json); skipped", run_dir)
        return read_metrics(run_dir)
    from spadelab.train import train

    summary = train(cfg)
    if not summary.get("is_global_zero", True):
        return summary  # other DDP ranks: rank 0 evaluates
    from spadelab.evaluate import evaluate

    sweep = cfg.get("sweep") or {}
    cache_dir = Path(str(sweep.get("dir") or run_dir.parent)) / ".cache"
    eval_cfg = compose_evaluate(
        [
            f"ckpt={_quote(str(run_dir))}",
            f"eval.judge.steps={int(cfg.scale.judge_steps)}",
            f"eval.cache_dir={_quote(str(cache_dir))}",
            *(["device=cuda"] if _cuda() else []),
            *list(sweep.get("eval_overrides") or []),
        ]
    )
    with judge_lock(cache_dir):
        return evaluate(eval_cfg)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def compose_evaluate(overrides: list[str]) -> DictConfig:
    """``conf/evaluate.yaml`` with overrides, from inside a running Hydra app or outside one."""
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return hydra.compose(config_name="evaluate", overrides=overrides)
    from spadelab.config import compose_config

    return compose_config("evaluate", overrides)


@contextmanager
def judge_lock(cache_dir: Path) -> Iterator[None]:
    """Parallel jobs wait while the first one trains the sweep's judge, then load it."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    if any(cache_dir.glob("judge-*.pt")):
        yield
        return
    with (cache_dir / "judge.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
def job_main(cfg: DictConfig) -> Any:
    return run_command("sweep", run_row, cfg)


if __name__ == "__main__":
    # Call the copy imported under its module name: launchers pickle the task function, and a
    # function of ``spadelab.sweep`` pickles by reference where one of ``__main__`` would not.
    from spadelab.sweep import job_main as importable_job_main

    importable_job_main()
