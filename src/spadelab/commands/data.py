"""``spadelab data preview|check|export-synthetic`` with Hydra-style overrides.

Examples::

    spadelab data preview data=synthetic out=preview.png n=8
    spadelab data check data=ade20k data.dataset.root=/data/ADEChallengeData2016
    spadelab data export-synthetic format=cityscapes out=/tmp/cityscapes n=16

The arguments compose ``conf/data_tool.yaml`` (a ``data`` group plus the tool's keys), so any
override that works for training (``data.crop_size=128``, ``data.dataset.root=...``) works here.
Exit codes: 0 success, 1 the data has problems (bad, unpaired or unreadable files), 2 bad
command line, config or path. Errors are one line without a traceback; set SPADELAB_DEBUG=1 to
get the traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spadelab.commands.args import split_overrides
from spadelab.runtime import command_error

COMMANDS = ("preview", "check", "export-synthetic")
USAGE = """usage: spadelab data {preview,check,export-synthetic} [key=value ...]

  preview           write a grid of (colourised label | image) pairs
                    data=NAME [data.dataset.root=DIR] out=preview.png n=8 split=val
  check             scan every file of a dataset and report every problem at once
                    data=NAME data.dataset.root=DIR [split=train|val] [all=true] [report=FILE]
  export-synthetic  write the synthetic landscapes in a real dataset's layout
                    format=ade20k|cityscapes|coco_stuff|coco_stuff_stuffthingmaps|folder
                    out=DIR n=16 [n_val=4] [height=64] [width=W] [seed=0] [overwrite=true]

Keys and defaults: conf/data_tool.yaml; data configs: conf/data/*.yaml."""

EXIT_OK, EXIT_DATA, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """A command-line or config problem (exit code 2)."""


def compose(overrides: Sequence[str]) -> Any:
    from spadelab.config import compose_config

    return compose_config("data_tool", overrides)


def _require(cfg: Any, key: str, example: str) -> Any:
    value = cfg.get(key)
    if value is None or value == "":
        raise UsageError(f"{key}= is required, e.g. {example}")
    return value


def _require_data_settings(cfg: Any) -> None:
    """Fail before building anything when a data config still has ``???`` values."""
    from spadelab.data.check import missing_keys

    missing = missing_keys(cfg.data)
    if missing:
        listed = " ".join(f"{key}=..." for key in missing)
        raise UsageError(f"data={cfg.data.get('name', '?')} needs {listed}")


def _datamodule(cfg: Any) -> Any:
    import hydra.utils

    _require_data_settings(cfg)
    return hydra.utils.instantiate(cfg.data)


# --- preview -----------------------------------------------------------------------------------
def preview(cfg: Any) -> int:
    import numpy as np
    import torch
    from torchvision.utils import make_grid, save_image

    from spadelab.data.labels import colorize, instance_edges

    out = Path(_require(cfg, "out", "out=preview.png")).expanduser()
    n = int(cfg.n)
    if n < 1:
        raise UsageError(f"n={n} must be >= 1")
    split = cfg.split or "val"
    datamodule = _datamodule(cfg)
    dataset = datamodule.build_split(split)
    palette = getattr(dataset, "palette", None)
    tiles: list[torch.Tensor] = []
    for index in range(min(n, len(dataset))):
        sample = dataset[index]
        colours = colorize(sample["label"][0], palette)
        if datamodule.spec.use_instance:
            # Instance boundaries in black: what the generator's edge channel will see.
            edges = instance_edges(sample["instance"][None])[0, 0].numpy() > 0
            colours = np.where(edges[..., None], 0, colours).astype(np.uint8)
        tiles.append(torch.from_numpy(colours).permute(2, 0, 1).float() / 255.0)
        tiles.append((sample["image"].float() + 1.0) / 2.0)
    columns = min(4, len(tiles) // 2)
    grid = make_grid(tiles, nrow=2 * columns, padding=2, pad_value=1.0)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, out)
    print(
        f"wrote {out}: {len(tiles) // 2} {split} samples of data={datamodule.name} (label | image)"
    )
    return EXIT_OK


# --- check -------------------------------------------------------------------------------------
def check(cfg: Any) -> int:
    from spadelab.data.check import check_dataset

    splits = ("train", "val") if cfg.split in (None, "all") else (str(cfg.split),)
    progress = None
    if sys.stderr.isatty():

        def progress(split: str, done: int, total: int) -> None:
            if done == total or done % 500 == 0:
                end = "\n" if done == total else "\r"
                print(f"  {split}: {done}/{total} pairs", end=end, file=sys.stderr, flush=True)

    _require_data_settings(cfg)
    report = check_dataset(cfg.data, splits=splits, workers=cfg.workers, progress=progress)
    print(report.summary(limit_per_kind=None if cfg.all else 20))
    if cfg.report:
        path = Path(cfg.report).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report.to_dict(), indent=1) + "\n")
        print(f"report written to {path}")
    return EXIT_OK if report.ok else EXIT_DATA


# --- export-synthetic --------------------------------------------------------------------------
def export(cfg: Any) -> int:
    from spadelab.data.export import FORMATS, export_synthetic

    fmt = _require(cfg, "format", f"format={FORMATS[0]} (one of {', '.join(FORMATS)})")
    out = _require(cfg, "out", "out=/tmp/synthetic_ade20k")
    n = int(cfg.n)
    n_val = int(cfg.n_val) if cfg.n_val is not None else max(1, n // 4)
    root = export_synthetic(
        fmt,
        out,
        n_train=n,
        n_val=n_val,
        height=int(cfg.height),
        width=int(cfg.width) if cfg.width else None,
        seed=int(cfg.seed),
        overwrite=bool(cfg.overwrite),
    )
    config = {"coco_stuff_stuffthingmaps": "coco_stuff_stuffthingmaps"}.get(fmt, fmt)
    extra = " data.label_nc=10 data.dataset.palette_file=palette.json" if fmt == "folder" else ""
    print(
        f"wrote {n} train + {n_val} val synthetic scenes as {fmt} to {root}\n"
        f"use: data={config} data.dataset.root={root}{extra}"
    )
    return EXIT_OK


HANDLERS = {"preview": preview, "check": check, "export-synthetic": export}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``spadelab data ...``; ``argv`` excludes the ``data`` word."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return EXIT_OK if argv else EXIT_USAGE
    command, rest = argv[0], argv[1:]
    try:
        if command not in HANDLERS:
            raise UsageError(f"unknown command; choose one of {', '.join(COMMANDS)}")
        _, overrides = split_overrides(rest, f"data {command}", ())
        return HANDLERS[command](compose(overrides))
    except Exception as error:  # noqa: BLE001 - the one error path re-raises bugs
        return command_error(f"data {command}", error)


def cli(argv: Sequence[str]) -> int:
    """Entry for ``spadelab data ...`` (the dispatcher passes the words after ``data``)."""
    return main(list(argv))


if __name__ == "__main__":
    sys.exit(main())
