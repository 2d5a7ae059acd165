"""Parameter-count anchors: our OASIS and CLADE networks at the published configurations have
exactly the parameter counts of the official implementations.

How the reference numbers were obtained (2026-11-30): snapshots of boschresearch/OASIS and
tzt101/CLADE were read outside this repository and their model classes instantiated on the meta
device with torch, no weights and no data (OASIS: ``OASIS_Generator`` / ``OASIS_Discriminator``
with config.py's defaults, ``semantic_nc`` from dataloaders/*Dataset.py; CLADE:
``models.networks.generator.SPADEGenerator`` with ``norm_G=spectralspadesyncbatch3x3``, ngf 64,
``norm_mode=spade|clade``, ``--add_dist`` for CLADE-ICPE). Nothing of their code is in spadelab.
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from spadelab.builders import build_discriminator, build_generator
from spadelab.config import compose_config
from spadelab.nets.build import count_parameters

PAPER_256 = ["scale=paper", "data.crop_size=256", "data.aspect_ratio=1.0"]
# OASIS's semantic_nc: label classes + "unknown", no instance map.
OASIS_DATA = {
    "ade20k": ["data.label_nc=150", "data.contain_dontcare_label=true"],
    "coco_stuff": ["data.label_nc=182", "data.contain_dontcare_label=true"],
    "cityscapes": ["data.label_nc=35", "data.contain_dontcare_label=false"],
}
# boschresearch/OASIS, models/generator.py and models/discriminator.py (channels_G 64, z_dim 64,
# num_res_blocks 6, spectral norm), counted with sum(p.numel() for p in net.parameters()).
OASIS_OFFICIAL = {
    "ade20k": {"G": 74_314_691, "G_no_3dnoise": 72_545_219, "D": 22_258_904},
    "coco_stuff": {"G": 75_199_427, "G_no_3dnoise": 73_429_955, "D": 22_260_984},
    "cityscapes": {"G": 71_107_523, "G_no_3dnoise": 69_338_051, "D": 22_251_364},
}
# tzt101/CLADE at ADE20K (label_nc 150 + don't-care, no instance map), 256x256, ngf 64.
CLADE_OFFICIAL_ADE20K = {"spade": 96_492_483, "clade": 71_427_267, "clade_icpe": 71_427_375}
# ... and at COCO-Stuff with the instance map: the official CLADE layer concatenates a 1x1 conv
# of the edge map as one more channel into every conv; ours ignores the edge channel.
CLADE_OFFICIAL_COCO_INSTANCE = 72_505_383


def _count(*overrides: str, discriminator: bool = False) -> int:
    cfg = compose_config("train", ["run_dir=.", *PAPER_256, *overrides])
    plain = OmegaConf.to_container(cfg, resolve=True)
    with torch.device("meta"):
        net = build_discriminator(plain) if discriminator else build_generator(plain)
    return count_parameters(net)


@pytest.mark.parametrize("dataset", list(OASIS_OFFICIAL))
def test_oasis_networks_equal_the_official_counts(dataset: str) -> None:
    data = [*OASIS_DATA[dataset], "data.use_instance=false", "model=oasis"]
    official = OASIS_OFFICIAL[dataset]
    assert _count(*data) == official["G"]
    assert _count(*data, "model.generator.noise_3d=false") == official["G_no_3dnoise"]
    assert _count(*data, discriminator=True) == official["D"]


@pytest.mark.parametrize("modulation", list(CLADE_OFFICIAL_ADE20K))
def test_clade_generators_equal_the_official_counts(modulation: str) -> None:
    ade = [*OASIS_DATA["ade20k"], "data.use_instance=false", "model=spade_decoder"]
    assert _count(*ade, f"modulation={modulation}") == CLADE_OFFICIAL_ADE20K[modulation]


def test_clade_with_instance_map_is_within_a_tenth_of_a_percent() -> None:
    coco = [*OASIS_DATA["coco_stuff"], "data.use_instance=true", "modulation=clade"]
    ours = _count(*coco)
    assert ours < CLADE_OFFICIAL_COCO_INSTANCE
    assert abs(ours / CLADE_OFFICIAL_COCO_INSTANCE - 1) < 1e-3
