"""``make demo``: train SPADE on the synthetic landscapes, synthesize, evaluate, show the paths.

Everything runs in this process at the ``cpu`` scale (64x64). Overrides on the command line
(``python -m spadelab.commands.demo trainer.max_epochs=2``) go to the training config.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.utils import make_grid, save_image

from spadelab.callbacks import label_to_rgb
from spadelab.config import REPO_ROOT, compose_config, override_value
from spadelab.runtime import command_error

NUM_SAMPLES = 16
TRIPLETS_PER_ROW = 4


def triplet_grid(
    label: torch.Tensor,
    real: torch.Tensor,
    fake: torch.Tensor,
    palette: Any = None,
    per_row: int = TRIPLETS_PER_ROW,
) -> torch.Tensor:
    """(3, H', W') in [0, 1]: samples as (label | real | generated) triplets, ``per_row`` a row.

    Images of a triplet touch (1 px apart) and triplets are 6 px apart, so 16 samples make a
    compact 4x4 block whose triplets are still told apart at a glance.
    """
    n = label.shape[0]
    if not real.shape[0] == fake.shape[0] == n:
        raise ValueError(
            f"label, real and fake must hold the same samples, got {n}, "
            f"{real.shape[0]}, {fake.shape[0]}"
        )
    triplets = [
        make_grid(torch.stack(images), nrow=3, padding=1, pad_value=1.0)
        for images in zip(
            label_to_rgb(label.cpu(), palette),
            (real.detach().float().cpu().clamp(-1, 1) + 1) / 2,
            (fake.detach().float().cpu().clamp(-1, 1) + 1) / 2,
        )
    ]
    return make_grid(torch.stack(triplets), nrow=per_row, padding=6, pad_value=1.0)


def write_inputs(datamodule, out_dir: Path) -> dict:
    """The first validation label maps as PNGs: the files a user would pass to synthesize."""
    batch = datamodule.fixed_batch(NUM_SAMPLES)
    labels_dir, instances_dir = out_dir / "labels", out_dir / "instances"
    labels_dir.mkdir(parents=True, exist_ok=True)
    instances_dir.mkdir(parents=True, exist_ok=True)
    for i, (label, instance) in enumerate(zip(batch["label"], batch["instance"])):
        Image.fromarray(label[0].numpy().astype("uint8")).save(labels_dir / f"{i:02d}.png")
        # 16-bit PNG: the format instance maps are stored in (e.g. Cityscapes instanceIds).
        Image.fromarray(instance[0].numpy().astype("uint16")).save(instances_dir / f"{i:02d}.png")
    return batch


def run(overrides: list[str]) -> dict:
    from spadelab.commands.train import train

    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    run_dir = REPO_ROOT / "runs" / "demo" / stamp
    started = time.time()
    cfg = compose_config(
        "train", [f"run_dir={override_value(str(run_dir), 'run_dir')}", *overrides]
    )
    print(
        f"[demo] training {cfg.model.name} (norm={cfg.norm.name} + "
        f"modulation={cfg.modulation.name}) on {cfg.data.name} at "
        f"{cfg.data.crop_size}x{cfg.data.crop_size}, {cfg.trainer.max_epochs} epochs -> {run_dir}"
    )
    train(cfg)
    trained = time.time()
    metrics, synthesized, grid_path = showcase(cfg, run_dir)
    done = time.time()
    print(
        f"\n[demo] done in {done - started:.0f} s (train {trained - started:.0f} s, synthesize "
        f"{synthesized - trained:.0f} s, evaluate {done - synthesized:.0f} s)\n"
        f"  grid (label | real | generated): {grid_path}\n"
        f"  checkpoints:                     {run_dir / 'checkpoints'}\n"
        f"  training samples:                {run_dir / 'samples'}\n"
        f"  metrics:                         {run_dir / 'metrics.json'}\n"
        f"  logs:                            {run_dir / 'logs' / 'metrics.csv'}"
    )
    return metrics


def showcase(cfg, run_dir: Path) -> tuple[dict, float, Path]:
    """After training: synthesize the first validation label maps, draw the grid, evaluate."""
    from hydra.utils import instantiate

    from spadelab.commands.evaluate import evaluate
    from spadelab.commands.synthesize import synthesize

    datamodule = instantiate(cfg.data)
    batch = write_inputs(datamodule, run_dir / "demo")
    demo = run_dir / "demo"
    paths = {
        "ckpt": run_dir,
        "input": demo / "labels",
        "instance": demo / "instances",
        "output": demo / "synthesized",
    }
    synthesize(
        compose_config(
            "synthesize", [f"{k}={override_value(str(v), 'run_dir')}" for k, v in paths.items()]
        )
    )
    fakes = [
        Image.open(run_dir / "demo" / "synthesized" / f"{i:02d}.png")
        for i in range(len(batch["label"]))
    ]
    import numpy as np

    fake = torch.stack(
        [torch.from_numpy(np.array(f)).permute(2, 0, 1).float() / 127.5 - 1 for f in fakes]
    )
    grid = triplet_grid(batch["label"], batch["image"], fake, datamodule.palette)
    grid_path = run_dir / "demo" / "grid.png"
    save_image(grid, grid_path)
    synthesized = time.time()

    # The run's own dataset (data: null) and judge (eval.judge.steps: null = its scale's).
    metrics = evaluate(
        compose_config("evaluate", [f"ckpt={override_value(str(run_dir), 'run_dir')}"])
    )
    return metrics, synthesized, grid_path


def main() -> int:
    try:
        run(sys.argv[1:])
    except Exception as error:  # noqa: BLE001 - the one error path re-raises bugs
        return command_error("demo", error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
