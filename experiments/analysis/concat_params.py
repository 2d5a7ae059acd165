"""Generator parameters of the concat baseline's variants at the paper's COCO-Stuff setting.

    .venv/bin/python experiments/analysis/concat_params.py

Which form of "w/ Concat" did the paper's Table 3 count? It gives 79M for the decoder and 195M
for pix2pixHD++; the variants are fields of `modulation=concat` (sites, affine).
"""

from __future__ import annotations

from spadelab.commands.params import COCO_SETTING, generator_parameters

VARIANTS = {
    "decoder w/ SPADE": ("model=spade_decoder",),
    "decoder w/ Concat, every norm (default)": ("model=spade_decoder", "modulation=concat"),
    "decoder w/ Concat, block input only": (
        "model=spade_decoder",
        "modulation=concat",
        "modulation.sites=[block_input]",
    ),
    "decoder w/ Concat, every norm, no affine": (
        "model=spade_decoder",
        "modulation=concat",
        "modulation.affine=false",
    ),
    "pix2pixHD++": ("model=pix2pixhd_pp",),
    "pix2pixHD++ w/ Concat, every norm": ("model=pix2pixhd_pp", "modulation=concat"),
    "pix2pixHD++ w/ Concat, block input only": (
        "model=pix2pixhd_pp",
        "modulation=concat",
        "modulation.sites=[block_input]",
    ),
}

if __name__ == "__main__":
    print("| variant (COCO-Stuff setting) | parameters |\n|---|---:|")
    for label, overrides in VARIANTS.items():
        print(f"| {label} | {generator_parameters([*COCO_SETTING, *overrides]):,} |")
