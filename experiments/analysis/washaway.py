"""Is the paper's wash-away visible? Each generator on label maps of ONE class everywhere.

    .venv/bin/python experiments/analysis/washaway.py RUN_DIR [RUN_DIR ...] [--cache DIR]

The paper's argument (SPADE, Section 3 and Fig. 2) is about flat label maps: a conv of a uniform
one-hot map is constant, InstanceNorm subtracts it, and every class gives the same activations.
For each run (a `spadelab train` run dir with checkpoints/last.ckpt), this feeds one uniform map
per class to the raw and the EMA generator (running BatchNorm statistics, as at inference) and
asks the run's own judge (the cached evaluation segmenter, `--cache` = the `eval.cache_dir` the
run was scored with) which class it sees. It prints per run the share of pixels the judge labels
as the map's class, averaged over classes ("uniform-map accuracy"; chance is about 1/classes),
and the mean distance between the images of two different classes (0 = every class gives the
same image: washed away). Rows are grouped by the run-dir name without its ``-seedN`` with the
mean and 95% t-interval over seeds.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from spadelab.checkpoints import load_checkpoint
from spadelab.config import JudgeConfig
from spadelab.metrics.protocol import judge_for
from spadelab.tables.stats import mean_ci, paired_difference


@torch.no_grad()
def uniform_scores(run: Path, cache: Path) -> dict[str, tuple[float, float]]:
    """{generator: (uniform-map accuracy %, mean between-class image distance)}."""
    module = load_checkpoint(run)
    module.eval()
    cfg = module.cfg
    datamodule = instantiate(OmegaConf.create(cfg["data"]))
    datamodule.setup("fit")
    eval_cfg = {
        "judge": asdict(JudgeConfig(steps=int(cfg["scale"]["judge_steps"]))),
        "cache_dir": str(cache),
    }
    judge, _ = judge_for(datamodule, eval_cfg, "cpu")
    batch = next(iter(datamodule.val_dataloader()))
    label_map = module.label_map(batch)
    classes = int(datamodule.spec.label_nc)
    uniform = torch.zeros(classes, label_map.shape[1], *label_map.shape[-2:])
    for c in range(classes):
        uniform[c, c] = 1
    generators = {"raw": module.generator}
    if module.generator_ema is not None:
        generators["EMA"] = module.generator_ema
    out = {}
    for name, generator in generators.items():
        generator.eval()
        images = generator(uniform)
        predicted = judge(images).argmax(1)
        target = torch.arange(classes).view(-1, 1, 1)
        accuracy = (predicted == target).float().mean().item() * 100
        flat = images.flatten(1)
        distance = torch.cdist(flat, flat).sum().item() / (classes * (classes - 1))
        distance /= flat.shape[1] ** 0.5  # per-pixel RMS difference, images in [-1, 1]
        out[name] = (accuracy, distance)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/spadelab")
    args = parser.parse_args()
    torch.set_num_threads(1)
    grouped: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    by_seed: dict[tuple[str, str, int], tuple[float, float]] = {}
    print("| run | generator | uniform-map accuracy % | between-class RMS distance |")
    print("|---|---|---:|---:|")
    for run in args.runs:
        scores = uniform_scores(run, args.cache)
        row = re.sub(r"-seed\d+$", "", run.name)
        seed = int(run.name.rsplit("-seed", 1)[1]) if "-seed" in run.name else -1
        for name, (accuracy, distance) in scores.items():
            grouped[row][name].append((accuracy, distance))
            by_seed[row, name, seed] = (accuracy, distance)
            print(f"| {run.name} | {name} | {accuracy:.1f} | {distance:.3f} |")
    print("\n| row | generator | n | uniform-map accuracy % | between-class RMS distance |")
    print("|---|---|---:|---:|---:|")
    for row, by_generator in grouped.items():
        for name, values in by_generator.items():
            accuracy = mean_ci([v[0] for v in values])
            distance = mean_ci([v[1] for v in values])
            print(
                f"| {row} | {name} | {len(values)} | {_cell(accuracy, 1)} | {_cell(distance, 3)} |"
            )
    print_paired(by_seed)


def print_paired(by_seed: dict[tuple[str, str, int], tuple[float, float]]) -> None:
    """SPADE - concat per norm (rows spade_X and concat_X), paired by seed."""
    rows = {row for row, _, _ in by_seed}
    print("\n| SPADE - concat | generator | seeds | uniform-map accuracy | distance |")
    print("|---|---|---|---:|---:|")
    for spade in sorted(r for r in rows if r.startswith("spade_")):
        concat = "concat_" + spade.removeprefix("spade_")
        for name in ("raw", "EMA"):
            seeds = sorted(
                s
                for (r, g, s) in by_seed
                if r == spade and g == name and (concat, name, s) in by_seed
            )
            if not seeds:
                continue
            cells = []
            for i in (0, 1):
                a = {s: by_seed[spade, name, s][i] for s in seeds}
                b = {s: by_seed[concat, name, s][i] for s in seeds}
                cells.append(_cell(paired_difference(a, b), 1 if i == 0 else 3))
            print(f"| {spade} - {concat} | {name} | {seeds} | {cells[0]} | {cells[1]} |")


def _cell(estimate, digits: int) -> str:
    if estimate.half_width is None:
        return f"{estimate.mean:.{digits}f} (1 seed)"
    return f"{estimate.mean:.{digits}f} ± {estimate.half_width:.{digits}f}"


if __name__ == "__main__":
    main()
