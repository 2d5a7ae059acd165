"""A run's evaluation in the run's own loggers, as summary metrics next to its ablation axes.

Called by the in-training ``EvaluationCallback`` (with the trainer's loggers) and by
``spadelab evaluate`` of a run (which reopens the run's TensorBoard dir and wandb run), so a
sweep's runs can be compared in the loggers' own dashboards:

- TensorBoard: an HParams session ``<run>/tensorboard/evaluation`` holding the axes as hparams
  and the latest evaluation as scalars; ``tensorboard --logdir <sweep dir>`` lists every run in
  its HParams tab (table, parallel coordinates, scatter plots).
- wandb: the axes as top-level config keys (group by / parallel coordinates) and the latest
  evaluation in ``run.summary`` (sortable run table).
- CSV: the callback's rows in ``logs/metrics.csv``; ``spadelab evaluate`` writes metrics.json.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from spadelab.config import group_name

log = logging.getLogger("spadelab.loggers")

# Scored generators -> metric prefix (the callback's curves use the same names).
PREFIXES = {"generator": "eval", "generator_ema": "eval_ema"}
# Metrics of an evaluation that become summary metrics; the value: is higher better?
METRICS = {
    "miou": True,
    "accuracy": True,
    "fd_judge": False,
    "fid": False,
    "kid": False,
    "style_fidelity": True,
}
# Image encoders by class (conf/encoder/<choice>.yaml).
ENCODERS = {"ConvEncoder": "vae"}
# The HParams session's subdir of a run's TensorBoard dir: only summary scalars go there, so
# the HParams tab's metric columns are the evaluation's, not every training curve.
SESSION = "evaluation"

Scalar = str | int | float | bool


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _target_name(section: Any) -> str:
    """The class or function name of a config section's ``_target_`` (``none`` for null)."""
    if not isinstance(section, Mapping) or not section.get("_target_"):
        return "none"
    return str(section["_target_"]).rsplit(".", 1)[-1]


def _scalar(value: Any) -> Scalar | None:
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple) and all(
        isinstance(v, bool | int | float | str) for v in value
    ):
        return "+".join(str(v) for v in value)  # modulation.sites: [block_input, inner]
    return None


def _name(cfg: Mapping[str, Any], group: str) -> str:
    """A group's chosen file: its ``name``; for a config saved before groups had names, derived
    from ``_target_`` (the norm functions and the snake-cased modulation classes are named as
    their files; CLADE-ICPE then reads ``clade``, the class it shares with CLADE)."""
    name = group_name(cfg, group)
    if name is not None:
        return name
    node = cfg.get(group) or {}
    if group == "model":
        return _snake(_target_name(node.get("generator")))
    target = _target_name(node)
    return ENCODERS.get(target, target) if group == "encoder" else _snake(target)


def run_axes(cfg: Mapping[str, Any]) -> dict[str, Scalar]:
    """The ablation axes of a run's (resolved) config: the hparams of a sweep's comparison.

    Names are read from the config itself (not Hydra's choices), so a run evaluated long
    after training, from its config.yaml alone, gets the same names as during training.
    """
    model = cfg.get("model") or {}
    modulation = cfg.get("modulation") or {}
    axes: dict[str, Scalar | None] = {
        "model": _name(cfg, "model"),
        "norm": _name(cfg, "norm"),
        "modulation": _name(cfg, "modulation"),
    }
    for key, value in modulation.items():
        if not key.startswith("_") and key != "name":
            axes[f"modulation_{key}"] = _scalar(value)  # kernel_size, hidden_channels, sites...
    axes["encoder"] = _name(cfg, "encoder")
    axes["width_multiplier"] = _scalar((model.get("generator") or {}).get("width_multiplier"))
    axes["seed"] = _scalar(cfg.get("seed"))
    axes["scale"] = _scalar((cfg.get("scale") or {}).get("name"))
    axes["data"] = _scalar((cfg.get("data") or {}).get("name"))
    experiment = cfg.get("experiment") or {}
    axes["table"] = _scalar(experiment.get("table"))
    axes["row"] = _scalar(experiment.get("row"))
    return {key: value for key, value in axes.items() if value is not None}


def summary_metrics(results: Mapping[str, Any]) -> dict[str, float]:
    """``eval/miou``, ``eval_ema/fd_judge``, ... of an evaluation's per-generator results."""
    metrics = {}
    for generator, prefix in PREFIXES.items():
        scores = results.get(generator) or {}
        for name in METRICS:
            value = scores.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                metrics[f"{prefix}/{name}"] = float(value)
    return metrics


def higher_is_better(key: str) -> bool:
    return METRICS[key.rsplit("/", 1)[-1]]


# ---- TensorBoard ----------------------------------------------------------------------------
def write_tensorboard(
    log_dir: Path, axes: Mapping[str, Scalar], metrics: Mapping[str, float], step: int
) -> Path:
    """Append an HParams session (axes + metrics at ``step``) to ``log_dir/evaluation``.

    Only the session start/end records are written, never the experiment record
    (``SummaryWriter.add_hparams`` writes all three): the HParams plugin takes one run's
    experiment record as the whole dashboard's, which would hide the hparams and metrics
    (FID, EMA) that only other runs have. Without it the plugin collects every run's.
    """
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    session_dir = log_dir / SESSION
    _, start, end = hparams(dict(axes), dict(metrics))
    writer = SummaryWriter(log_dir=str(session_dir))
    try:
        file_writer = writer._get_file_writer()  # as Lightning's TensorBoardLogger does
        file_writer.add_summary(start)
        file_writer.add_summary(end)
        for key, value in metrics.items():
            writer.add_scalar(key, value, step)
    finally:
        writer.close()
    return session_dir


# ---- wandb ----------------------------------------------------------------------------------
def wandb_mode() -> str:
    """Offline unless the user is logged in (or chose a mode), as for training runs."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    logged_in = os.environ.get("WANDB_API_KEY") or (Path.home() / ".netrc").is_file()
    return "online" if logged_in else "offline"


def update_wandb(run: Any, axes: Mapping[str, Scalar], metrics: Mapping[str, float]) -> None:
    """Axes as top-level config keys; ``metrics`` as the run's summary.

    ``summary="none"``: the summary holds exactly the latest evaluation, set here, as a plain
    number. wandb's min/max/last aggregations would turn it into ``{"max": ...}`` and take
    the best of the callback's per-epoch values on a validation subset, which favours lucky
    epochs; the final ``spadelab evaluate`` on the whole split is the run's result.
    """
    run.config.update(dict(axes), allow_val_change=True)
    for key in metrics:
        run.define_metric(key, summary="none")
    run.summary.update(dict(metrics))


def wandb_run_id(save_dir: Path) -> str | None:
    """The id of the latest wandb run under ``save_dir/wandb`` (online or offline)."""
    root = save_dir / "wandb"
    latest = root / "latest-run"
    if latest.exists():
        name = latest.resolve().name
    else:
        runs = sorted(root.glob("*run-*-*"), key=lambda p: p.name.split("run-", 1)[-1])
        if not runs:
            return None
        name = runs[-1].name
    return name.rsplit("-", 1)[-1]


def resume_wandb(logger_cfg: Mapping[str, Any], save_dir: Path, run_id: str) -> Any:
    """Reopen a finished run: online, wandb appends to it; offline, a new offline-run dir with
    the same id that ``wandb sync`` uploads after the training's, into the same run."""
    import wandb

    return wandb.init(
        project=logger_cfg.get("project"),
        entity=logger_cfg.get("entity"),
        group=logger_cfg.get("group"),
        name=logger_cfg.get("name"),
        job_type=logger_cfg.get("job_type"),
        id=run_id,
        resume="allow",
        dir=str(save_dir),
        mode=wandb_mode(),  # type: ignore[arg-type]
        reinit="finish_previous",
    )


# ---- entry points ---------------------------------------------------------------------------
def _kind(target: str) -> str | None:
    name = target.rsplit(".", 1)[-1]
    return {"TensorBoardLogger": "tensorboard", "WandbLogger": "wandb"}.get(name)


def with_run_axes(logger_cfg: Any, cfg: Mapping[str, Any]) -> Any:
    """A logger's config, for wandb with the axes as ``config`` (``wandb.init(config=...)``):
    the run starts with them as top-level keys, in whichever process Lightning starts it, so
    the training curves can be grouped by them before any evaluation."""
    if _kind(str(logger_cfg.get("_target_", ""))) != "wandb":
        return logger_cfg
    from omegaconf import DictConfig, OmegaConf

    # Resolved first: a merged copy would lose the root that ${run_dir} etc. refer to.
    if isinstance(logger_cfg, DictConfig):
        logger_cfg = OmegaConf.to_container(logger_cfg, resolve=True)
    # _convert_: wandb gets a plain dict, not an OmegaConf node it cannot serialize.
    return {**logger_cfg, "config": run_axes(cfg), "_convert_": "all"}


def log_evaluation(
    loggers: Iterable[Any], cfg: Mapping[str, Any], metrics: Mapping[str, float], step: int
) -> None:
    """The in-training evaluation into the trainer's loggers (the curves are logged apart)."""
    axes = run_axes(cfg)
    for logger in loggers:
        kind = _kind(type(logger).__name__)
        if kind == "tensorboard":
            write_tensorboard(Path(logger.log_dir), axes, metrics, step)
        elif kind == "wandb":
            update_wandb(logger.experiment, axes, metrics)


def log_run_evaluation(run_dir: Path, cfg: Mapping[str, Any], results: Mapping[str, Any]) -> None:
    """``spadelab evaluate`` of a run: its results into the loggers the run was trained with."""
    metrics = summary_metrics(results)
    axes = run_axes(cfg)
    step = int(results.get("global_step") or 0)
    for logger_cfg in (cfg.get("logger") or {}).values():
        if not isinstance(logger_cfg, Mapping):
            continue
        kind = _kind(str(logger_cfg.get("_target_", "")))
        save_dir = _save_dir(run_dir, cfg, logger_cfg)
        try:
            if kind == "tensorboard":
                name, version = (str(logger_cfg.get(k) or "") for k in ("name", "version"))
                write_tensorboard(save_dir / name / version, axes, metrics, step)
            elif kind == "wandb":
                run_id = wandb_run_id(save_dir)
                if run_id is None:
                    log.warning("wandb: no run under %s/wandb; evaluation not logged", save_dir)
                    continue
                run = resume_wandb(logger_cfg, save_dir, run_id)
                try:
                    update_wandb(run, axes, metrics)
                finally:
                    run.finish()
        except Exception as error:  # noqa: BLE001 - the result is safe in metrics.json
            log.warning(
                "%s: the evaluation of %s was not logged (%s: %s); metrics.json has it",
                kind,
                run_dir,
                type(error).__name__,
                str(error).splitlines()[0] if str(error) else "",
            )


def _save_dir(run_dir: Path, cfg: Mapping[str, Any], logger_cfg: Mapping[str, Any]) -> Path:
    """A logger's save dir, following the run dir when the run was moved (save_dir=run_dir)."""
    save_dir = str(logger_cfg.get("save_dir") or run_dir)
    return run_dir if save_dir == str(cfg.get("run_dir")) else Path(save_dir)
