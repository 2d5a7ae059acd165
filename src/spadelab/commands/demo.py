"""``make demo``: train SPADE on the synthetic landscapes, synthesize, evaluate, show the paths.

Everything runs in this process at the ``cpu`` scale (64x64). Overrides on the command line
(``python -m spadelab.commands.demo trainer.max_epochs=2``, or ``make demo DEMO_ARGS=...``) go
to the training config. With ``encoder=vae`` the grid gains a style-guided column and the demo
writes ``styles.png``: label maps synthesized in the style of one real image of each style.
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
SAMPLES_PER_ROW = 4
STYLE_COLUMNS = 4  # label maps per row of styles.png


def _unit(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (any float dtype, any device) as float32 in [0, 1] on the CPU."""
    return (images.detach().float().cpu().clamp(-1, 1) + 1) / 2


def sample_grid(
    label: torch.Tensor,
    *images: torch.Tensor,
    palette: Any = None,
    per_row: int = SAMPLES_PER_ROW,
) -> torch.Tensor:
    """(3, H', W') in [0, 1]: each sample as (label | image | image ...), ``per_row`` a row.

    ``images`` are (N, 3, H, W) in [-1, 1]: the real images, then what was generated. Images
    of a sample touch (1 px apart) and samples are 6 px apart, so 16 samples make a compact 4x4
    block whose samples are still told apart at a glance.
    """
    n = label.shape[0]
    if not images or any(image.shape[0] != n for image in images):
        raise ValueError(
            "the label maps and every image column must hold the same samples, got "
            f"{n} label maps and columns of {[image.shape[0] for image in images]}"
        )
    samples = [
        make_grid(torch.stack(columns), nrow=1 + len(images), padding=1, pad_value=1.0)
        for columns in zip(label_to_rgb(label.cpu(), palette), *(_unit(x) for x in images))
    ]
    return make_grid(torch.stack(samples), nrow=per_row, padding=6, pad_value=1.0)


def style_exemplars(dataset: Any, skip: int = 0, count: int = STYLE_COLUMNS) -> list[dict]:
    """Validation samples to guide by: the first of each known style, else ``count`` of them.

    A dataset with ``styles`` (the synthetic landscapes) gives one sample per style, in style
    order; any other gives its first ``count`` samples. The first ``skip`` samples (the grid's
    own scenes) are passed over, so a guide is never the scene it styles.
    """
    from spadelab.metrics.style import first_of_each_style

    samples = (dataset[index] for index in range(skip, len(dataset)))
    names = getattr(dataset, "styles", None)
    if not names:
        return [sample for _, sample in zip(range(count), samples)]
    picked = first_of_each_style(((sample["style"], sample) for sample in samples), len(names))
    return [picked[key] for key in sorted(picked)]


def style_grid(
    label: torch.Tensor,
    guides: torch.Tensor,
    guided: torch.Tensor,
    palette: Any = None,
) -> torch.Tensor:
    """(3, H', W') in [0, 1]: a header row of label maps, then a row per guiding image.

    ``label`` (M, 1, H, W); ``guides`` (S, 3, H, W); ``guided`` (S, M, 3, H, W), all images in
    [-1, 1]. Row s starts with guide s and shows the M label maps synthesized in its style; the
    header's first cell is white.
    """
    m, s = label.shape[0], guides.shape[0]
    if guided.shape[:2] != (s, m):
        raise ValueError(
            f"guided must be (guides, label maps, 3, H, W) = ({s}, {m}, ...), got "
            f"{tuple(guided.shape)}"
        )
    blank = torch.ones(1, 3, *label.shape[-2:])
    header = torch.cat([blank, label_to_rgb(label.cpu(), palette)])
    rows = [torch.cat([_unit(guides[i : i + 1]), _unit(guided[i])]) for i in range(s)]
    return make_grid(torch.cat([header, *rows]), nrow=m + 1, padding=2, pad_value=1.0)


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


def run(overrides: list[str], runs_root: Path = REPO_ROOT / "runs" / "demo") -> dict:
    from spadelab.commands.train import train

    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    run_dir = Path(runs_root) / stamp
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
    metrics, synthesized, grid_path, styles_path = showcase(cfg, run_dir)
    done = time.time()
    columns = "label | real | generated" + (" | guided by the real image" if styles_path else "")
    styles_line = f"  styles (guide, then label maps): {styles_path}\n" if styles_path else ""
    print(
        f"\n[demo] done in {done - started:.0f} s (train {trained - started:.0f} s, synthesize "
        f"{synthesized - trained:.0f} s, evaluate {done - synthesized:.0f} s)\n"
        f"  grid ({columns}): {grid_path}\n"
        f"{styles_line}"
        f"  checkpoints:                     {run_dir / 'checkpoints'}\n"
        f"  training samples:                {run_dir / 'samples'}\n"
        f"  metrics:                         {run_dir / 'metrics.json'}\n"
        f"  logs:                            {run_dir / 'logs' / 'metrics.csv'}"
    )
    return metrics


def showcase(cfg, run_dir: Path) -> tuple[dict, float, Path, Path | None]:
    """After training: synthesize the first validation label maps, draw the grid, evaluate.

    Returns the metrics, the time synthesis ended, the grid's path and, for a run with an
    image encoder, the path of ``styles.png`` (else None).
    """
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
    guided, styles_path = style_guided(run_dir, datamodule, batch)
    columns = [batch["image"], fake, *([guided] if guided is not None else [])]
    grid = sample_grid(batch["label"], *columns, palette=datamodule.palette)
    grid_path = run_dir / "demo" / "grid.png"
    save_image(grid, grid_path)
    synthesized = time.time()

    # The run's own dataset (data: null) and judge (eval.judge.steps: null = its scale's).
    metrics = evaluate(
        compose_config("evaluate", [f"ckpt={override_value(str(run_dir), 'run_dir')}"])
    )
    return metrics, synthesized, grid_path, styles_path


@torch.no_grad()
def style_guided(
    run_dir: Path, datamodule, batch: dict
) -> tuple[torch.Tensor | None, Path | None]:
    """For a run with an image encoder: each grid sample guided by its own real image, and
    ``demo/styles.png`` (the first label maps in the style of one exemplar per style).

    Uses the generator ``spadelab synthesize`` uses (EMA when the run has one, its norm
    statistics re-estimated on the grid's label maps). Returns (None, None) without an encoder.
    """
    from spadelab.checkpoints import load_checkpoint
    from spadelab.data.datamodule import collate

    module = load_checkpoint(run_dir, map_location="cpu")
    if module.encoder is None:
        return None, None
    module.eval()
    torch.manual_seed(0)  # the encoder samples z = mu + eps * sigma
    if module.generator_ema is not None:
        module.recalibrate_ema_norms([batch])
    guided = module.synthesize(batch, style_image=batch["image"])
    guides = collate(style_exemplars(datamodule.val_set, skip=len(batch["label"])))
    labels = {key: value[:STYLE_COLUMNS] for key, value in batch.items() if key != "path"}
    styled = torch.stack(
        [
            module.synthesize(
                labels, style_image=guide.unsqueeze(0).expand(len(labels["label"]), -1, -1, -1)
            )
            for guide in guides["image"]
        ]
    )
    styles_path = run_dir / "demo" / "styles.png"
    save_image(
        style_grid(labels["label"], guides["image"], styled, datamodule.palette), styles_path
    )
    return guided, styles_path


def main() -> int:
    try:
        run(sys.argv[1:])
    except Exception as error:  # noqa: BLE001 - the one error path re-raises bugs
        return command_error("demo", error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
