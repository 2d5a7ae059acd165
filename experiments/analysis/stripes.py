"""Where do the horizontal stripes in SPADE's CPU-scale samples come from?

    .venv/bin/python experiments/analysis/stripes.py RUN_DIR [RUN_DIR ...] [--out uniform.png]

For each run (a `spadelab train` run dir with checkpoints/last.ckpt) it prints the mean absolute
second difference of the generated images along y (row to row) and along x (column to column):
horizontal stripes raise the first and not the second. It measures this on the validation label
maps (raw and EMA generator, BatchNorm running statistics and batch statistics) and on label maps
of ONE class everywhere: stripes that survive a uniform map do not come from the label path.
The uniform-map images of every run are saved side by side to --out.
"""

from __future__ import annotations

import argparse

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torchvision.utils import save_image

from spadelab.checkpoints import load_checkpoint


def second_differences(images: torch.Tensor) -> tuple[float, float]:
    """Mean |2nd difference| of the grey images along y and along x."""
    grey = images.mean(1)
    along_y = (grey[:, 2:] - 2 * grey[:, 1:-1] + grey[:, :-2]).abs().mean().item()
    along_x = (grey[:, :, 2:] - 2 * grey[:, :, 1:-1] + grey[:, :, :-2]).abs().mean().item()
    return along_y, along_x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--out", default="uniform_maps.png")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    print("| run | images | y 2nd diff | x 2nd diff | y / x |")
    print("|---|---|---:|---:|---:|")
    for run in args.runs:
        module = load_checkpoint(run)
        datamodule = instantiate(OmegaConf.create(module.cfg["data"]))
        datamodule.setup("fit")
        batch = next(iter(datamodule.val_dataloader()))
        label_map = module.label_map(batch)
        with torch.no_grad():
            measured = {"real": batch["image"], "raw": module.synthesize(batch, use_ema=False)}
            if module.generator_ema is not None:
                measured["ema"] = module.synthesize(batch, use_ema=True)
            module.generator.train()
            measured["raw, batch statistics"] = module.generator(label_map)
            module.generator.eval()
            channels = label_map.shape[1]
            uniform = torch.zeros(channels, channels, *label_map.shape[-2:])
            for c in range(channels):
                uniform[c, c] = 1
            measured["raw, one class everywhere"] = module.generator(uniform)
        rows.append(measured["raw, one class everywhere"])
        for name, images in measured.items():
            y, x = second_differences(images)
            print(f"| {run} | {name} | {y:.4f} | {x:.4f} | {y / max(x, 1e-12):.1f} |")
    save_image(torch.cat(rows) * 0.5 + 0.5, args.out, nrow=rows[0].shape[0])
    print(f"uniform-map images (one row per run, one column per class): {args.out}")


if __name__ == "__main__":
    main()
