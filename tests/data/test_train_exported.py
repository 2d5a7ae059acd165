"""Export the synthetic landscapes in every real layout, then train on each: the real-format
code paths (file pairing, ID conventions, instance maps, remapping) run on every CI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spadelab.commands.train import train
from spadelab.config import compose_config

FORMATS = (
    "ade20k",
    "ade20k_landscape",
    "ade20k_outdoor",
    "cityscapes",
    "coco_stuff",
    "coco_stuff_stuffthingmaps",
    "folder",
)


def test_every_exported_format_is_trained(format_configs: dict) -> None:
    assert sorted(format_configs) == sorted(FORMATS)


@pytest.mark.slow
@pytest.mark.parametrize("key", FORMATS)
def test_training_smoke_run_on_exported_format(
    key: str, exported: dict[str, Path], format_configs: dict, tmp_path: Path
) -> None:
    config, fmt, overrides = format_configs[key]
    cfg = compose_config(
        "train",
        [
            f"run_dir={tmp_path / 'run'}",
            "scale=smoke",
            f"data={config}",
            f"data.dataset.root={exported[fmt]}",
            *overrides,
            "data.num_workers=0",
            "data.batch_size=2",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "callbacks.progress=null",
        ],
    )
    summary = train(cfg)
    assert summary["iterations"] >= 1
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    saved = checkpoint["hyper_parameters"]["cfg"]["data"]
    assert saved["name"] == cfg.data.name
    # The generator was built for this dataset's label convention.
    semantic_nc = saved["label_nc"] + saved["contain_dontcare_label"] + saved["use_instance"]
    fc = checkpoint["state_dict"]["generator.fc.weight"]
    assert fc.shape[1] == semantic_nc
