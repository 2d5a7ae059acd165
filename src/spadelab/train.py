"""``spadelab train``: compose the config, build everything from it, fit."""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from spadelab.atomic import atomic_path
from spadelab.config import CONF_DIR
from spadelab.module import SemanticSynthesis
from spadelab.perf import performance_callbacks
from spadelab.runtime import ConfigError, run_command, save_config, validate_targets, write_json

log = logging.getLogger("spadelab.train")

# Config groups whose change makes a checkpoint belong to a different network.
ARCHITECTURE_KEYS = ("model", "norm", "modulation", "encoder")


def resolve_checkpoint(ckpt_path: str | None, run_dir: Path) -> str | None:
    """``None`` | ``auto`` (resume run_dir if it has a last.ckpt) | a run dir | a .ckpt file."""
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path == "auto":
        last = run_dir / "checkpoints" / "last.ckpt"
        return str(last) if last.is_file() else None
    path = Path(ckpt_path).expanduser()
    if ckpt_path == "last":
        path = run_dir
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt" if (path / "checkpoints").is_dir() else path
        path = path / "last.ckpt" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(
            f"ckpt_path={ckpt_path}: no checkpoint at {path}; pass a .ckpt file or a run dir "
            "that has checkpoints/last.ckpt"
        )
    return str(path)


def check_checkpoint_matches(ckpt: str, cfg: dict[str, Any]) -> None:
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    saved_cfg = saved.get("hyper_parameters", {}).get("cfg", {})
    differences = [key for key in ARCHITECTURE_KEYS if saved_cfg.get(key) != cfg.get(key)]
    for key in ("label_nc", "contain_dontcare_label", "use_instance", "crop_size"):
        if saved_cfg.get("data", {}).get(key) != cfg["data"].get(key):
            differences.append(f"data.{key}")
    if differences:
        raise ConfigError(
            f"checkpoint {ckpt} was trained with a different {', '.join(differences)}; "
            "use the same config overrides as that run, or start without ckpt_path"
        )


def configure_wandb(cfg: DictConfig) -> None:
    if "wandb" not in (cfg.get("logger") or {}):
        return
    has_key = os.environ.get("WANDB_API_KEY") or (Path.home() / ".netrc").is_file()
    if not has_key and "WANDB_MODE" not in os.environ:
        os.environ["WANDB_MODE"] = "offline"
        log.info("wandb: no login found, logging offline (sync later with `wandb sync`)")


def finish_wandb(loggers: list[Any], failed: bool) -> None:
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            import wandb

            if wandb.run is not None:
                wandb.finish(exit_code=1 if failed else 0)


def csv_histories(loggers: list[Any]) -> dict[Path, str]:
    """The metrics.csv files of CSV loggers as they are before a resumed fit.

    Lightning's CSVLogger deletes an existing metrics.csv when it starts writing, so resuming
    a run (``ckpt_path=auto``/``last``) would lose the curves logged before the checkpoint.
    """
    histories = {}
    for logger in loggers:
        if type(logger).__name__ == "CSVLogger":
            path = Path(logger.log_dir) / "metrics.csv"
            if path.is_file():
                histories[path] = path.read_text()
    return histories


def restore_csv_histories(histories: dict[Path, str]) -> None:
    """Put the rows logged before the resume back in front of the resumed run's rows.

    Rows of the old file at or after the resumed run's first step (logged after the checkpoint
    by the interrupted run) are dropped: the resumed run logged those steps again.
    """
    for path, old_text in histories.items():
        old_rows = list(csv.DictReader(io.StringIO(old_text)))
        new_rows = list(csv.DictReader(path.open(newline=""))) if path.is_file() else []
        steps = [int(float(row["step"])) for row in new_rows if row.get("step")]
        if steps:
            first = min(steps)
            old_rows = [r for r in old_rows if r.get("step") and int(float(r["step"])) < first]
        keys = sorted({key for row in old_rows + new_rows for key in row})
        with atomic_path(path) as tmp, tmp.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=keys)
            writer.writeheader()
            writer.writerows(old_rows + new_rows)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit one run; returns its final metrics. The run dir holds config, checkpoints, samples."""
    run_dir = Path(str(cfg.run_dir))
    validate_targets(cfg)
    configure_wandb(cfg)
    plain = OmegaConf.to_container(cfg, resolve=True)
    ckpt = resolve_checkpoint(cfg.get("ckpt_path"), run_dir)
    if ckpt is not None:
        check_checkpoint_matches(ckpt, plain)
        log.info("resuming from %s", ckpt)
    save_config(cfg, run_dir)
    (run_dir / "FAILED.json").unlink(missing_ok=True)  # a retried run starts clean
    pl.seed_everything(int(cfg.seed), workers=True)
    datamodule = instantiate(cfg.data)
    module = SemanticSynthesis(plain)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    callbacks += performance_callbacks(plain)  # precision + perf.*: checked now, applied in setup
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        default_root_dir=str(run_dir),
    )
    histories = csv_histories(loggers) if ckpt is not None else {}
    failed = True
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
        failed = False
    finally:
        finish_wandb(loggers, failed)
        restore_csv_histories(histories)
    summary = {
        "run_dir": str(run_dir),
        "global_step": trainer.global_step,
        "iterations": trainer.global_step // 2,
        "epochs": trainer.current_epoch,
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
        "last_checkpoint": str(run_dir / "checkpoints" / "last.ckpt"),
        # Under DDP every rank returns here; only rank 0 writes files and evaluates.
        "is_global_zero": trainer.is_global_zero,
    }
    if trainer.is_global_zero:
        write_json(run_dir / "train_summary.json", summary)
    return summary


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> Any:
    return run_command("train", train, cfg)


if __name__ == "__main__":
    main()
