"""``spadelab params``: generator parameter counts of the paper's rows, next to the paper's.

Counted at the paper's COCO-Stuff setting (182 labels + don't-care + instance edge = 184 input
channels, 256x256, ngf 64) on the meta device, so even the 238M networks cost no memory.
``spadelab params data=ade20k [model=...]`` counts one network at that dataset's own setting.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from omegaconf import OmegaConf

from spadelab.builders import build_generator
from spadelab.commands.args import split_overrides
from spadelab.config import compose_config
from spadelab.nets.build import count_parameters
from spadelab.runtime import command_error

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


def setting_for(overrides: Sequence[str]) -> list[str]:
    """The paper's setting under ``overrides``: scale=paper, and COCO-Stuff's labels and
    geometry unless the overrides choose a dataset (``data=``) or set those keys themselves."""
    keys = {override.lstrip("+~").split("=", 1)[0] for override in overrides}
    if "data" in keys:  # the data config holds that dataset's own labels and geometry
        return [s for s in COCO_SETTING if s.startswith("scale=") and "scale" not in keys]
    return [s for s in COCO_SETTING if s.split("=", 1)[0] not in keys]


def generator_parameters(overrides: tuple[str, ...] | list[str]) -> int:
    cfg = compose_config("train", ["run_dir=.", *overrides])
    with torch.device("meta"):
        generator = build_generator(OmegaConf.to_container(cfg, resolve=True))
    return count_parameters(generator)


def table(rows: tuple[ParamRow, ...] = ROWS, extra: tuple[str, ...] = ()) -> list[dict]:
    results = []
    for row in rows:
        ours = generator_parameters([*COCO_SETTING, *row.overrides, *extra]) / 1e6
        gap = ours / row.paper_millions - 1
        results.append(
            {
                "table": row.table,
                "row": row.label,
                "ours_m": ours,
                "paper_m": row.paper_millions,
                "gap": gap,
                "tolerance": row.tolerance,
                "ok": None if row.tolerance is None else abs(gap) <= row.tolerance,
            }
        )
    return results


def format_table(results: list[dict]) -> str:
    lines = [
        "| table | generator | ours (M) | paper (M) | gap | target |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in results:
        target = "-" if r["tolerance"] is None else f"±{r['tolerance']:.0%}"
        status = "" if r["ok"] is None else (" ok" if r["ok"] else " MISSED")
        lines.append(
            f"| {r['table']} | {r['row']} | {r['ours_m']:.1f} | {r['paper_m']:g} "
            f"| {r['gap']:+.1%} | {target}{status} |"
        )
    return "\n".join(lines)


def cli(argv: list[str]) -> int:
    if argv:
        # Any Hydra overrides: one count for that composition (COCO-Stuff unless data= is given).
        try:
            _, overrides = split_overrides(argv, "params", ())
            setting = setting_for(overrides)
            count = generator_parameters([*setting, *overrides])
        except Exception as error:  # noqa: BLE001 - the one error path re-raises bugs
            return command_error("params", error)
        chosen = any(a.lstrip("+~").startswith("data=") for a in argv)
        where = ", ".join([*argv, *setting] if chosen else [*argv, "paper's COCO-Stuff setting"])
        print(f"generator parameters ({where}): {count:,} ({count / 1e6:.2f}M)")
        return 0
    print("Generator parameters at the paper's COCO-Stuff setting (184 input channels, 256x256)")
    print(format_table(table()))
    return 0


def main() -> int:
    return cli(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
