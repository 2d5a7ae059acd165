"""``spadelab train``: compose the config, build everything from it, fit."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from spadelab.callbacks import SkippedFilesReport
from spadelab.checkpoints import check_checkpoint_matches, resume_checkpoint
from spadelab.config import CONF_DIR, group_components, without_name
from spadelab.loggers import wandb_mode, with_run_axes
from spadelab.module import SemanticSynthesis
from spadelab.perf import performance_callbacks
from spadelab.runtime import (
    ConfigError,
    check_overrides,
    check_unknown_keys,
    claim_run_dir,
    release_run_dir,
    run_command,
    save_config,
    validate_targets,
    write_json,
)

log = logging.getLogger("spadelab.train")


def configure_wandb(cfg: DictConfig) -> None:
    if "wandb" not in (cfg.get("logger") or {}):
        return
    if wandb_mode() == "offline" and "WANDB_MODE" not in os.environ:
        os.environ["WANDB_MODE"] = "offline"
        log.info("wandb: no login found, logging offline (sync later with `wandb sync`)")


def finish_wandb(loggers: list[Any], failed: bool) -> None:
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            import wandb

            if wandb.run is not None:
                wandb.finish(exit_code=1 if failed else 0)


def check_devices(cfg: DictConfig) -> None:
    """Several CPU processes need a spawning strategy (trainer=ddp_cpu); anything else starts
    N copies of the whole command that fail with pages of tracebacks."""
    trainer = cfg.get("trainer") or {}
    accelerator = str(trainer.get("accelerator", "auto"))
    devices = trainer.get("devices", 1)
    strategy = str(trainer.get("strategy", "auto"))
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    count = len(devices) if isinstance(devices, list | tuple) else devices
    if isinstance(count, int) and not isinstance(count, bool) and count < 1 and count != -1:
        raise ConfigError(f"trainer.devices={devices} must be >= 1 (or -1: all)")
    if on_cpu and isinstance(count, int) and count > 1 and "spawn" not in strategy:
        raise ConfigError(
            f"trainer.devices={devices} on CPU needs a spawning strategy: use trainer=ddp_cpu "
            f"trainer.devices={devices}, or trainer.devices=1"
        )


def _is_main_process() -> bool:
    """False in the extra ranks a DDP launcher starts; they share rank 0's run dir."""
    return all(os.environ.get(name, "0") == "0" for name in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit one run; returns its final metrics. The run dir holds config, checkpoints, samples."""
    run_dir = Path(str(cfg.run_dir))
    validate_targets(cfg)
    check_unknown_keys(cfg)
    check_devices(cfg)
    if not isinstance(cfg.get("seed"), int) or isinstance(cfg.get("seed"), bool):
        raise ConfigError(f"seed={cfg.get('seed')!r} must be an integer")
    configure_wandb(cfg)
    plain = OmegaConf.to_container(cfg, resolve=True)
    checkpoint = resume_checkpoint(cfg.get("ckpt_path"), run_dir)
    ckpt = None if checkpoint is None else str(checkpoint)
    if checkpoint is not None:
        check_checkpoint_matches(checkpoint, plain)
        log.info("resuming from %s", ckpt)
    main_process = _is_main_process()
    if main_process:
        claim_run_dir(run_dir)  # one run per run dir, held until this function returns
        print(f"spadelab train: run dir {run_dir}", flush=True)
    try:
        summary = _fit(cfg, plain, run_dir, ckpt)
    except BaseException:
        if main_process:
            release_run_dir(run_dir)
        raise
    if main_process:
        release_run_dir(run_dir, succeeded=True)
    if main_process:
        print(f"spadelab train: finished; run dir {run_dir}", flush=True)
    return summary


def _fit(
    cfg: DictConfig, plain: dict[str, Any], run_dir: Path, ckpt: str | None
) -> dict[str, Any]:
    save_config(cfg, run_dir)
    (run_dir / "FAILED.json").unlink(missing_ok=True)  # a retried run starts clean
    pl.seed_everything(int(cfg.seed), workers=True)
    datamodule = instantiate(cfg.data)
    module = SemanticSynthesis(plain)
    callbacks = [instantiate(c) for c in group_components(cfg.get("callbacks"))]
    callbacks += performance_callbacks(plain)  # precision + perf.*: checked now, applied in setup
    skipped = SkippedFilesReport()
    callbacks.append(skipped)
    loggers = [instantiate(with_run_axes(c, plain)) for c in group_components(cfg.get("logger"))]
    trainer: pl.Trainer = instantiate(
        without_name(cfg.trainer),
        callbacks=callbacks,
        logger=loggers or False,
        default_root_dir=str(run_dir),
    )
    failed = True
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
        failed = False
    finally:
        finish_wandb(loggers, failed)
    summary = {
        "run_dir": str(run_dir),
        "global_step": trainer.global_step,
        "iterations": trainer.global_step // 2,
        "epochs": trainer.current_epoch,
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
        "last_checkpoint": str(run_dir / "checkpoints" / "last.ckpt"),
        "skipped_files": len(skipped.skipped),
        # Under DDP every rank returns here; only rank 0 writes files and evaluates.
        "is_global_zero": trainer.is_global_zero,
    }
    if trainer.is_global_zero:
        write_json(run_dir / "train_summary.json", summary)
    return summary


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
def hydra_main(cfg: DictConfig) -> Any:
    return run_command("train", train, cfg)


def main() -> Any:
    """``spadelab train``: typo'd keys fail in one line before Hydra starts, and Hydra's own
    files (.hydra/, train.log) go into the run dir instead of ./runs/<date>/<time>/."""
    args = sys.argv[1:]
    check_overrides("train", "train", args)
    run_dirs = [a.split("=", 1)[1] for a in args if a.startswith("run_dir=")]
    if run_dirs and not any(a.startswith("hydra.run.dir=") for a in args):
        sys.argv.append(f"hydra.run.dir={run_dirs[-1]}")
    return hydra_main()


if __name__ == "__main__":
    main()
