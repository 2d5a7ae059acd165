"""``spadelab params``: generator parameter counts of the paper's rows, next to the paper's.

Counted at the paper's COCO-Stuff setting (182 labels + don't-care + instance edge = 184 input
channels, 256x256, ngf 64) on the meta device, so even the 238M networks cost no memory.
``spadelab params data=ade20k [model=...]`` counts one network at that dataset's own setting.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from spadelab.commands.args import split_overrides
from spadelab.paper import COCO_SETTING, ROWS, ParamRow, generator_parameters
from spadelab.runtime import command_error


def setting_for(overrides: Sequence[str]) -> list[str]:
    """The paper's setting under ``overrides``: scale=paper, and COCO-Stuff's labels and
    geometry unless the overrides choose a dataset (``data=``) or set those keys themselves."""
    keys = {override.lstrip("+~").split("=", 1)[0] for override in overrides}
    if "data" in keys:  # the data config holds that dataset's own labels and geometry
        return [s for s in COCO_SETTING if s.startswith("scale=") and "scale" not in keys]
    return [s for s in COCO_SETTING if s.split("=", 1)[0] not in keys]


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
