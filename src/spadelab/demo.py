"""``make demo``: train SPADE on the synthetic landscapes, synthesize, evaluate, show the paths.

Everything runs in this process at the ``cpu`` scale (64x64). Overrides on the command line
(``python -m spadelab.demo trainer.max_epochs=2``) go to the training config.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf
from PIL import Image
from torchvision.utils import save_image

from spadelab.callbacks import sample_grid
from spadelab.config import REPO_ROOT, compose_config
from spadelab.runtime import describe_error, is_user_error

NUM_SAMPLES = 16


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
    from spadelab.train import train

    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    run_dir = REPO_ROOT / "runs" / "demo" / stamp
    started = time.time()
    cfg = compose_config("train", [f"run_dir={run_dir}", *overrides])
    print(
        f"[demo] training {cfg.model.name} ({cfg.norm._target_.rsplit('.', 1)[-1]} + "
        f"{cfg.modulation._target_.rsplit('.', 1)[-1]}) on {cfg.data.name} at "
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

    from spadelab.evaluate import evaluate
    from spadelab.synthesize import synthesize

    datamodule = instantiate(cfg.data)
    batch = write_inputs(datamodule, run_dir / "demo")
    synth_cfg = OmegaConf.merge(
        OmegaConf.load(REPO_ROOT / "conf" / "synthesize.yaml"),
        {
            "ckpt": str(run_dir),
            "input": str(run_dir / "demo" / "labels"),
            "instance": str(run_dir / "demo" / "instances"),
            "output": str(run_dir / "demo" / "synthesized"),
        },
    )
    synth_cfg.pop("hydra")
    synthesize(synth_cfg)
    fakes = [
        Image.open(run_dir / "demo" / "synthesized" / f"{i:02d}.png")
        for i in range(len(batch["label"]))
    ]
    import numpy as np
    import torch

    fake = torch.stack(
        [torch.from_numpy(np.array(f)).permute(2, 0, 1).float() / 127.5 - 1 for f in fakes]
    )
    grid = sample_grid(batch["label"], batch["image"], [fake], datamodule.palette)
    grid_path = run_dir / "demo" / "grid.png"
    save_image(grid, grid_path)
    synthesized = time.time()

    eval_cfg = OmegaConf.load(REPO_ROOT / "conf" / "evaluate.yaml")
    eval_cfg.pop("hydra")
    eval_cfg.pop("defaults")
    eval_cfg.ckpt = str(run_dir)
    eval_cfg.data = None
    metrics = evaluate(eval_cfg)
    return metrics, synthesized, grid_path


def main() -> int:
    try:
        run(sys.argv[1:])
    except Exception as error:  # noqa: BLE001
        if not is_user_error(error):
            raise
        print(f"spadelab demo: error: {describe_error(error)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
