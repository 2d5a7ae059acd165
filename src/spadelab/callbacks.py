"""Training callbacks and the run's CSV log: verified checkpoints (last.ckpt every epoch),
fixed-batch sample grids, a metrics.csv that survives kills, a report of skipped files, and the
in-training evaluation (``callbacks=with_eval``)."""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from torchvision.utils import make_grid, save_image

from spadelab.atomic import atomic_path
from spadelab.config import JudgeConfig, StyleConfig
from spadelab.data.labels import colorize
from spadelab.loggers import log_evaluation, summary_metrics
from spadelab.metrics.judge import JudgeSegmenter
from spadelab.metrics.protocol import (
    add_style_fidelity,
    evaluate_generator,
    generators_to_score,
    judge_for,
    style_fidelity_setting,
)
from spadelab.nets.generators import draws_noise
from spadelab.runtime import CheckpointWriteError, TrainingDiverged

if TYPE_CHECKING:
    from spadelab.module import SemanticSynthesis

log = logging.getLogger("spadelab.train")


class VerifiedCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint that never writes non-finite weights and checks that its file landed.

    Lightning's ``_atomic_save`` swallows a PermissionError: without the check an unwritable
    checkpoints dir trains to the end with no checkpoint. Non-finite weights are refused so a
    diverged run keeps its last finite checkpoint (what ``ckpt_path=auto`` resumes from).
    """

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        module = trainer.lightning_module
        for name, value in module.state_dict().items():
            if value.is_floating_point() and not torch.isfinite(value).all():
                raise TrainingDiverged(
                    f"diverged at step {trainer.global_step // 2} (non-finite weights in {name}); "
                    f"the last finite checkpoint in {self.dirpath} is kept"
                )
        for logger in trainer.loggers:
            logger.save()  # rows up to this checkpoint are on disk before it is
        path = Path(filepath)
        before = path.stat().st_mtime_ns if path.is_file() else None
        super()._save_checkpoint(trainer, filepath)
        if not trainer.is_global_zero:
            return
        if not path.is_file() or path.stat().st_size == 0 or path.stat().st_mtime_ns == before:
            raise CheckpointWriteError(
                f"could not write checkpoint {path.name} to {path.parent} (not writable, or the "
                "disk is full); fix the directory and resume with ckpt_path=auto"
            )


class LastCheckpoint(VerifiedCheckpoint):
    """``last.ckpt`` at the end of every ``every_n_epochs``-th epoch, overwritten in place.

    What ``ckpt_path=auto`` resumes from, next to a ModelCheckpoint that keeps numbered copies.
    Two plain ModelCheckpoints cannot do this: ``save_top_k=0, save_last=true`` writes last.ckpt
    only when a top-k file is written, i.e. once at the end of training, and two unmonitored
    ModelCheckpoints with the same period share a state key, which the Trainer refuses.
    """

    def __init__(self, dirpath: str | Path, every_n_epochs: int = 1) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=self.CHECKPOINT_NAME_LAST,
            save_top_k=1,
            save_last=False,
            every_n_epochs=every_n_epochs,
            enable_version_counter=False,
        )

    @property
    def state_key(self) -> str:
        return f"LastCheckpoint{{'every_n_epochs': {self._every_n_epochs}}}"


def label_to_rgb(label: torch.Tensor, palette: Any = None) -> torch.Tensor:
    """(N, 1, H, W) label indices -> (N, 3, H, W) float in [0, 1]."""
    images = [torch.from_numpy(colorize(item[0], palette)).permute(2, 0, 1) for item in label]
    return torch.stack(images).float() / 255


def sample_grid(
    label: torch.Tensor, real: torch.Tensor, fakes: list[torch.Tensor], palette: Any = None
) -> torch.Tensor:
    """One row per sample: label map in colour | real | fake(s). Returns (3, H, W) in [0, 1]."""
    columns = [label_to_rgb(label.cpu(), palette), (real.cpu() + 1) / 2]
    columns += [(fake.detach().float().cpu().clamp(-1, 1) + 1) / 2 for fake in fakes]
    rows = torch.stack(columns, dim=1).flatten(0, 1)
    return make_grid(rows, nrow=len(columns), padding=2, pad_value=1.0)


class SampleGrid(pl.Callback):
    """Every ``every_n_steps`` steps, a grid on a fixed validation batch with fixed noise."""

    def __init__(self, every_n_steps: int = 500, num_samples: int = 8, seed: int = 1234) -> None:
        self.every_n_steps = every_n_steps
        self.num_samples = num_samples
        self.seed = seed
        self._batch: dict[str, Any] | None = None
        self._z: torch.Tensor | None = None

    def _fixed_inputs(self, trainer: pl.Trainer, module: pl.LightningModule) -> dict[str, Any]:
        if self._batch is None:
            self._batch = trainer.datamodule.fixed_batch(self.num_samples)
            generator = torch.Generator().manual_seed(self.seed)
            z_dim = getattr(module.generator, "z_dim", 256)
            self._z = torch.randn(len(self._batch["image"]), z_dim, generator=generator)
        return {
            k: v.to(module.device) if torch.is_tensor(v) else v for k, v in self._batch.items()
        }

    @torch.no_grad()
    def write(self, trainer: pl.Trainer, module: pl.LightningModule, tag: str) -> Path | None:
        if not trainer.is_global_zero or trainer.datamodule is None:
            return None
        batch = self._fixed_inputs(trainer, module)
        if module.generator_ema is not None:
            module.recalibrate_ema_norms([batch])
        z = self._z.to(module.device)
        fake = module.synthesize(batch, z=z if draws_noise(module.generator) else None)
        grid = sample_grid(batch["label"], batch["image"], [fake], trainer.datamodule.palette)
        out_dir = Path(trainer.default_root_dir) / "samples"
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{tag}.png"
        save_image(grid, path)
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key="samples", images=[str(path)], step=trainer.global_step)
            elif hasattr(getattr(logger, "experiment", None), "add_image"):
                logger.experiment.add_image("samples", grid, trainer.global_step)
        return path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step // 2  # two optimizers step per iteration
        if self.every_n_steps > 0 and step > 0 and step % self.every_n_steps == 0:
            self.write(trainer, pl_module, f"step_{step:07d}")

    def on_train_end(self, trainer, pl_module) -> None:
        self.write(trainer, pl_module, "final")


class AppendingCSVWriter(ExperimentWriter):
    """Lightning's CSV writer, made safe for resumes and kills.

    Lightning deletes metrics.csv when a writer starts and rewrites it in place when a column
    appears. This one keeps the file, appends each row as it is logged, drops a row torn by a
    kill, and on the first save of a resumed run drops the rows at or after its first step
    (logged after the checkpoint by the killed run, logged again now): every step once.
    Rewrites are atomic, so a kill at any moment leaves a complete file.
    """

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        self._old_rows: list[dict[str, str]] | None = None
        path = Path(self.metrics_file_path)
        if path.is_file():
            text = path.read_text()
            if text and not text.endswith("\n"):
                text = text[: text.rfind("\n") + 1]  # a row torn by a kill
            reader = csv.DictReader(io.StringIO(text))
            self._old_rows = list(reader)
            self.metrics_keys = sorted(reader.fieldnames or [])

    def _check_log_dir_exists(self) -> None:
        pass  # the history of a resumed run stays

    def _write_all(self, rows: list[dict[str, Any]]) -> None:
        with atomic_path(self.metrics_file_path) as tmp, tmp.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows(rows)

    def save(self) -> None:
        if not self.metrics:
            return
        new_keys = self._record_new_keys()
        if self._old_rows is not None:
            first = min(float(row["step"]) for row in self.metrics)
            kept = [r for r in self._old_rows if r.get("step") and float(r["step"]) < first]
            self._old_rows = None
            self._write_all(kept)
        elif new_keys and os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as file:
                self._write_all(list(csv.DictReader(file)))
        exists = os.path.isfile(self.metrics_file_path)
        with open(self.metrics_file_path, "a" if exists else "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
            if not exists:
                writer.writeheader()
            writer.writerows(self.metrics)
        self.metrics = []


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` whose metrics.csv keeps every logged step exactly once across any
    sequence of kills and resumes (see :class:`AppendingCSVWriter`); rows reach the file as
    they are logged (``flush_logs_every_n_steps=1``)."""

    def __init__(
        self,
        save_dir: str | Path,
        name: str = "logs",
        version: str | int | None = "",
        prefix: str = "",
        flush_logs_every_n_steps: int = 1,
    ) -> None:
        super().__init__(
            save_dir,
            name=name,
            version=version,
            prefix=prefix,
            flush_logs_every_n_steps=flush_logs_every_n_steps,
        )

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingCSVWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingCSVWriter(log_dir=self.log_dir)
        return self._experiment


class SkippedFilesReport(pl.Callback):
    """Counts the files ``data.on_bad_file=skip`` left out and reports them at the end."""

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if isinstance(batch, dict):
            self.skipped += list(batch.get("skipped") or [])

    def on_train_end(self, trainer, pl_module) -> None:
        if self.skipped:
            unique = sorted(set(self.skipped))
            log.warning(
                "data.on_bad_file=skip: skipped %d unreadable sample(s) (%d distinct), e.g. %s",
                len(self.skipped),
                len(unique),
                unique[0],
            )


class EvaluationCallback(pl.Callback):
    """A cheap version of the protocol every N epochs, logged as ``eval/*`` curves and as the
    run's summary metrics (``spadelab.loggers``).

    The judge is trained (or loaded from its cache) on first use and kept on this callback,
    never on the LightningModule, so metric networks never enter training checkpoints.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        max_images: int = 64,
        judge_steps: int = 1500,
        cache_dir: str = "~/.cache/spadelab",
        resolution_mode: str = "generated",
        style_fidelity: str = "auto",
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"callbacks.evaluation.every_n_epochs={every_n_epochs} must be >= 1")
        self.every_n_epochs = every_n_epochs
        self.max_images = max_images
        self.resolution_mode = resolution_mode
        self.eval_cfg = {
            "segmenter": "judge",
            "cache_dir": str(Path(cache_dir).expanduser()),
            # The same judge as `spadelab evaluate` of this run (eval.judge.steps: null).
            "judge": dataclasses.asdict(JudgeConfig(steps=judge_steps)),
            # Style-fidelity curves for VAE runs on data with known styles (auto), with the
            # classifier and guiding images of `spadelab evaluate`, on max_images label maps.
            "style": dataclasses.asdict(
                StyleConfig(
                    fidelity=style_fidelity_setting(
                        style_fidelity, "callbacks.evaluation.style_fidelity"
                    ),
                    max_images=max_images,
                )
            ),
        }
        self.segmenter: JudgeSegmenter | None = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: SemanticSynthesis) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.every_n_epochs or not trainer.is_global_zero:
            return
        datamodule, device = trainer.datamodule, str(pl_module.device)
        if self.segmenter is None:
            self.segmenter, _ = judge_for(datamodule, self.eval_cfg, device)
        results: dict[str, dict[str, Any]] = {}
        for name, use_ema in generators_to_score(pl_module, ["raw", "ema"]).items():
            results[name] = evaluate_generator(
                lambda batch, use_ema=use_ema: pl_module.synthesize(batch, use_ema=use_ema),
                datamodule.val_dataloader(),
                datamodule.spec,
                self.segmenter,
                eval_mapping=datamodule.eval_mapping,
                resolution_mode=self.resolution_mode,
                judge_features=self.segmenter.features,
                max_images=self.max_images,
                device=device,
            )
        add_style_fidelity(
            results,
            pl_module,
            datamodule,
            self.eval_cfg["style"],
            self.eval_cfg["cache_dir"],
            device,
        )
        scores = summary_metrics(results)  # eval/miou, eval_ema/style_fidelity, ...
        for logger in trainer.loggers:
            logger.log_metrics(scores, step=trainer.global_step)  # the curves
        # The latest evaluation as the run's summary: TensorBoard HParams, wandb summary.
        log_evaluation(trainer.loggers, pl_module.cfg, scores, trainer.global_step)
        log.info("epoch %d: %s", epoch, scores)
