"""Run dirs of a sweep: where they are, what state they are in, what they measured or why not.

``<sweep_dir>/<row>-seed<k>/`` holds one run: ``config.yaml`` (what it ran), ``metrics.json``
(written last by its evaluation: the run is complete) or ``FAILED.json`` (its latest attempt
failed). ``<sweep_dir>/.sweep.lock`` is held by the ``spadelab sweep`` working on the dir.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from omegaconf import OmegaConf

from spadelab.atomic import LockHeld, try_pid_lock
from spadelab.checkpoints import ARCHITECTURE_KEYS
from spadelab.config import compose_config, same_section, upgrade_saved_config
from spadelab.runtime import ConfigError
from spadelab.tables.spec import Experiment

# Sections of a run's config that decide what its numbers mean: a run dir saved with other values
# belongs to another experiment and is never skipped or resumed as if it were this one. Wider
# than the checkpoint's ARCHITECTURE_KEYS on purpose: another loss or seed trains the same
# network (a checkpoint may resume under it) but measures another table cell.
IDENTITY_KEYS = (*ARCHITECTURE_KEYS, "loss", "seed")
LOCK_NAME = ".sweep.lock"


def choices(overrides: Sequence[str]) -> dict[str, str]:
    """The group choices (scale, data, logger...) that ``overrides`` give ``conf/train.yaml``."""
    cfg = compose_config("train", ["run_dir=.", *overrides], with_hydra=True)
    return {str(k): str(v) for k, v in cfg.hydra.runtime.choices.items()}


def default_sweep_dir(experiment: Experiment, scale: str, data: str) -> Path:
    return (Path("multirun") / experiment.name / f"{scale}-{data}").resolve()


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
    """Sections in which ``run_dir/config.yaml`` (a previous run) differs from ``cfg``.

    A config saved by an older spadelab is read in today's keys (renamed keys moved, a group
    ``name`` it lacks left out), so a run dir stays complete across such a change.
    """
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return []
    saved = upgrade_saved_config(OmegaConf.load(saved_path))
    old, new = identity(saved), identity(cfg)
    return [key for key in new if not same_section(old.get(key), new[key])]


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


# ---- results of finished runs -------------------------------------------------------------
@dataclass
class RunResult:
    seed: int
    status: str  # ok | failed | missing
    metrics: dict[str, Any] | None = None
    error: str = ""


def error_line(error: str) -> str:
    """The first line of an error, without the config search path Hydra appends to it."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    line = lines[0] if lines else "unknown error"
    # describe_error joins Hydra's lines with spaces; its search path lists every provider.
    return line.split("Config search path:")[0].strip() or "unknown error"


def read_failure(run_dir: Path) -> str | None:
    path = run_dir / "FAILED.json"
    if not path.is_file():
        return None
    try:
        error = str(json.loads(path.read_text()).get("error") or "unknown error")
    except (OSError, json.JSONDecodeError, AttributeError):
        error = "unreadable FAILED.json"
    return error_line(error)


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


# ---- one sweep at a time per sweep dir ------------------------------------------------------
@contextmanager
def sweep_lock(sweep_dir: Path) -> Iterator[IO[str]]:
    """Hold ``<sweep_dir>/.sweep.lock`` (fcntl) or refuse, naming the process that holds it.

    The kernel drops the lock when its holders exit, so a lock left by a dead process does not
    block. The handle is yielded so that the multirun it launches can inherit it (``pass_fds``):
    a killed ``spadelab sweep`` whose jobs still run keeps the dir locked.
    """
    sweep_dir.mkdir(parents=True, exist_ok=True)
    path = sweep_dir / LOCK_NAME
    try:
        handle = try_pid_lock(path)
    except LockHeld as held:
        raise ConfigError(
            f"{sweep_dir} is being swept by process {held.holder} (lock {path}); wait for it "
            "to finish, or pass sweep_dir=OTHER_DIR for a separate sweep"
        ) from None
    try:
        yield handle
    finally:
        handle.seek(0)
        handle.truncate()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
