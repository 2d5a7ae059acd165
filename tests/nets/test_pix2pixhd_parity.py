"""pix2pixHD's generator has exactly the official parameter count at the paper's datasets.

Reference numbers: the official NVlabs/SPADE ``Pix2PixHDGenerator`` (models/networks/
generator.py, norm_G=instance: bias-free convs before ``InstanceNorm2d(affine=False)``), built
with each dataset's official options (ngf 64, 4 downsamplings, 9 res-blocks) and counted with
``sum(p.numel() for p in netG.parameters())``.
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from spadelab.builders import build_generator
from spadelab.config import compose_config

OFFICIAL_PIX2PIXHD = {
    # data choice -> (input channels, official parameter count)
    "ade20k": (151, 182_886_019),  # 150 classes + don't-care, no instance map
    "coco_stuff": (184, 182_989_507),  # 182 classes + don't-care + instance edge
    "cityscapes": (36, 182_525_379),  # 35 label ids + instance edge
}


def _generator(*overrides: str) -> torch.nn.Module:
    cfg = compose_config("train", ["run_dir=.", "scale=paper", *overrides])
    with torch.device("meta"):
        return build_generator(OmegaConf.to_container(cfg, resolve=True))


@pytest.mark.parametrize("data", sorted(OFFICIAL_PIX2PIXHD))
def test_pix2pixhd_matches_the_official_count(data: str) -> None:
    channels, official = OFFICIAL_PIX2PIXHD[data]
    generator = _generator(f"data={data}", "model=pix2pixhd")
    assert generator.semantic_nc == channels
    assert sum(p.numel() for p in generator.parameters()) == official


def test_conv_bias_option_keeps_the_older_layout() -> None:
    """conv_bias=true + affine adds a bias per conv and a scale/bias per norm: +64,128 (ADE20K)."""
    generator = _generator(
        "data=ade20k", "model=pix2pixhd", "modulation=affine", "model.generator.conv_bias=true"
    )
    assert sum(p.numel() for p in generator.parameters()) == 182_886_019 + 64_128
