"""Training callbacks: last.ckpt every epoch, fixed-batch sample grids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torchvision.utils import make_grid, save_image

from spadelab.data.labels import colorize


class LastCheckpoint(ModelCheckpoint):
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
        uses_noise = getattr(module.generator, "input", None) is not None and (
            module.generator.input.value == "noise"
        )
        fake = module.synthesize(batch, z=z if uses_noise else None)
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
