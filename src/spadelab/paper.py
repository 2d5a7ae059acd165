"""The paper's generator parameter rows (Tables 3 and 4, CLADE) and how they are counted.

Data for ``spadelab params`` (which prints them next to ours) and for the results tables
(``params_row:`` in ``experiments/*.yaml`` names a row by its label, and ``spadelab report``
counts each row's generator at the same setting). A library module, so ``tables`` does not
import a command.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# The paper states its parameter counts at the COCO-Stuff setting: 182 labels + don't-care +
# instance edge = 184 input channels, 256x256, ngf 64.
COCO_SETTING = (
    "scale=paper",
    "data.label_nc=182",
    "data.contain_dontcare_label=true",
    "data.use_instance=true",
    "data.crop_size=256",
    "data.aspect_ratio=1.0",
    "data.preprocess_mode=resize_and_crop",
)


@dataclass(frozen=True)
class ParamRow:
    table: str
    label: str
    overrides: tuple[str, ...]
    paper_millions: float
    tolerance: float | None  # relative; None = no target (the paper's description is loose)


ROWS = (
    ParamRow("3", "decoder w/ SPADE", ("model=spade_decoder",), 96, 0.02),
    ParamRow(
        "3",
        "compact decoder w/ SPADE",
        ("model=spade_decoder", "model.generator.width_multiplier=0.75"),
        61,
        0.02,
    ),
    ParamRow("3", "decoder w/ Concat", ("model=spade_decoder", "modulation=concat"), 79, None),
    ParamRow("3", "pix2pixHD++ w/ SPADE", ("model=pix2pixhd_pp", "modulation=spade"), 237, None),
    ParamRow("3", "pix2pixHD++ w/ Concat", ("model=pix2pixhd_pp", "modulation=concat"), 195, None),
    ParamRow("3", "pix2pixHD++", ("model=pix2pixhd_pp",), 183, 0.03),
    ParamRow(
        "3",
        "compact pix2pixHD++",
        ("model=pix2pixhd_pp", "model.generator.width_multiplier=0.75"),
        103,
        0.03,
    ),
    ParamRow("3", "pix2pixHD", ("model=pix2pixhd",), 183, 0.03),
    ParamRow(
        "4",
        "capacity 141M",
        ("model=spade_decoder", "model.generator.width_multiplier=1.25"),
        141,
        0.02,
    ),
    ParamRow("4", "capacity 96M", ("model=spade_decoder",), 96, 0.02),
    ParamRow(
        "4",
        "capacity 61M",
        ("model=spade_decoder", "model.generator.width_multiplier=0.75"),
        61,
        0.02,
    ),
    # CLADE's generator is the SPADE decoder with class-wise norms. The reference is the
    # official code's count at this setting (tzt101/CLADE SPADEGenerator, norm_mode=clade,
    # instantiated on the meta device; see tests/nets/test_fidelity.py): the paper states the
    # overhead as a share (ADE20K: +4.57% parameters for CLADE, +39.21% for SPADE), not a size.
    # The official layer also feeds a 1x1 conv of the instance-edge map to every conv as an
    # extra channel; ours ignores the edge channel, 0.05M (0.07%) fewer at this setting.
    ParamRow(
        "CLADE", "decoder w/ CLADE (official code 72.51M)", ("modulation=clade",), 72.51, 0.01
    ),
    ParamRow(
        "CLADE",
        "decoder w/ CLADE-ICPE (official code 72.51M)",
        ("modulation=clade_icpe",),
        72.51,
        0.01,
    ),
)


def generator_parameters(overrides: Sequence[str]) -> int:
    """Generator parameters of the train config under ``overrides``, built on the meta device
    (no memory, so the 238M networks cost nothing)."""
    # Imported here: the rows are read when an experiment file loads, which needs no torch.
    import torch
    from omegaconf import OmegaConf

    from spadelab.builders import build_generator
    from spadelab.config import compose_config
    from spadelab.nets.build import count_parameters

    cfg = compose_config("train", ["run_dir=.", *overrides])
    with torch.device("meta"):
        generator = build_generator(OmegaConf.to_container(cfg, resolve=True))
    return count_parameters(generator)
