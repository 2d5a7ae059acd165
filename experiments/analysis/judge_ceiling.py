"""The judge's ceiling (its mIoU / accuracy on real validation images) for one data config.

    .venv/bin/python experiments/analysis/judge_ceiling.py DATA [override ...]
    e.g. synthetic_hard scale=smoke scale.judge_steps=300 data.max_train_samples=64 \
         data.max_val_samples=32

Trains the evaluation judge exactly as `spadelab evaluate` does (the `JudgeConfig` defaults,
seed 0, `scale.judge_steps` steps) without needing a trained generator, so two data configs can
be compared by how hard their label maps are to read from their images.
"""

from __future__ import annotations

import sys
from dataclasses import asdict

import hydra.utils
import torch

from spadelab.config import JudgeConfig, compose_config
from spadelab.data.datamodule import collate
from spadelab.metrics.judge import train_judge


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    data, *overrides = sys.argv[1:]
    cfg = compose_config("train", ["run_dir=/tmp/unused", f"data={data}", *overrides])
    steps = int(cfg.scale.judge_steps)
    judge = asdict(JudgeConfig(steps=steps))
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("fit")
    kw = {"batch_size": judge.pop("batch_size"), "collate_fn": collate}
    train = torch.utils.data.DataLoader(dm.train_set, shuffle=True, **kw)
    val = torch.utils.data.DataLoader(dm.val_set, shuffle=False, **kw)
    judge.pop("steps")
    _, report = train_judge(train, val, dm.spec.label_nc, None, steps=steps, **judge)
    print(
        f"data={data} steps={steps} train={len(dm.train_set)} val={len(dm.val_set)} "
        f"size={dm.image_size}: ceiling mIoU {report['val_miou']:.1f} "
        f"accuracy {report['val_accuracy']:.1f}"
    )


if __name__ == "__main__":
    main()
