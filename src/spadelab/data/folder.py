"""Paired image/label folders: the "bring your own data" layout.

:class:`FolderDataset` reads::

    root/images/*.jpg|png     root/labels/*.png     root/instances/*.png (optional)

matched by file stem, optionally split into ``root/train/...`` and ``root/val/...``. Labels are
either single-channel class indices or colour-coded RGB PNGs decoded with a palette file. The
pairing machinery and the :class:`~spadelab.data.files.PairedFileDataset` base live in
:mod:`spadelab.data.files`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from spadelab.data.check import DataError
from spadelab.data.files import (
    COLOR_LABEL_MODES,
    IMAGE_EXTENSIONS,
    LABEL_EXTENSIONS,
    LIST_LIMIT,
    PairedFileDataset,
    Transform,
    index_files,
    match_pairs,
    require_dir,
)


# --- colour-coded labels -----------------------------------------------------------------------
def _parse_color(value: Any, source: Path) -> tuple[int, int, int]:
    if isinstance(value, str):
        text = value.lstrip("#")
        if len(text) == 6:
            return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
    elif (
        isinstance(value, Sequence) and len(value) == 3 and all(0 <= int(c) <= 255 for c in value)
    ):
        return int(value[0]), int(value[1]), int(value[2])
    raise ValueError(
        f"palette file {source}: colour {value!r} is not [r, g, b] (0-255) or '#rrggbb'"
    )


def load_palette_file(
    path: str | Path,
) -> tuple[dict[tuple[int, int, int], int], list[str | None]]:
    """Read a colour -> class-index table.

    JSON: ``{"classes": [{"index": 0, "color": [r, g, b], "name": "sky"}, ...]}``, a list of
    colours (position = index) or ``{"0": [r, g, b], ...}``. Text: one ``index r g b [name]`` per
    line, ``#`` starts a comment. Returns the colour map and the names by index.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"palette file {path} does not exist; check data.dataset.palette_file"
        )
    entries: list[tuple[int, tuple[int, int, int], str | None]] = []
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"palette file {path} is not valid JSON: {error}") from None
        if isinstance(data, dict) and "classes" in data:
            for item in data["classes"]:
                entries.append(
                    (int(item["index"]), _parse_color(item["color"], path), item.get("name"))
                )
        elif isinstance(data, list):
            entries = [(i, _parse_color(c, path), None) for i, c in enumerate(data)]
        elif isinstance(data, dict):
            entries = [(int(k), _parse_color(c, path), None) for k, c in data.items()]
        else:
            raise ValueError(f"palette file {path}: expected a JSON object or list")
    else:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            try:
                index, r, g, b = (int(f) for f in fields[:4])
            except ValueError:
                raise ValueError(
                    f"palette file {path} line {number}: expected 'index r g b [name]', "
                    f"got {line!r}"
                ) from None
            name = " ".join(fields[4:]) or None
            entries.append((index, _parse_color((r, g, b), path), name))
    colors: dict[tuple[int, int, int], int] = {}
    for index, color, _ in entries:
        if color in colors and colors[color] != index:
            raise ValueError(
                f"palette file {path}: colour {color} is used for classes {colors[color]} and "
                f"{index}; each colour must name one class"
            )
        colors[color] = index
    size = max((index for index, _, _ in entries), default=-1) + 1
    names: list[str | None] = [None] * size
    for index, _, name in entries:
        names[index] = name
    return colors, names


def decode_colors(
    rgb: np.ndarray, colors: Mapping[tuple[int, int, int], int], path: Path, palette_path: Path
) -> np.ndarray:
    """(H, W, 3) uint8 colours -> int64 class indices; unknown colours are an error."""
    packed = (
        (rgb[..., 0].astype(np.int64) << 16)
        | (rgb[..., 1].astype(np.int64) << 8)
        | rgb[..., 2].astype(np.int64)
    )
    keys = np.array(sorted((r << 16) | (g << 8) | b for r, g, b in colors), dtype=np.int64)
    values = np.array(
        [colors[((k >> 16) & 255, (k >> 8) & 255, k & 255)] for k in keys.tolist()],
        dtype=np.int64,
    )
    position = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
    known = keys[position] == packed
    if not bool(known.all()):
        unknown, counts = np.unique(packed[~known], return_counts=True)
        listed = ", ".join(
            f"({(k >> 16) & 255}, {(k >> 8) & 255}, {k & 255}) x{c}"
            for k, c in zip(unknown[:LIST_LIMIT].tolist(), counts[:LIST_LIMIT].tolist())
        )
        more = len(unknown) - LIST_LIMIT
        y, x = (int(v[0]) for v in np.nonzero(~known))
        raise DataError(
            f"{path}: {len(unknown)} colour(s) not in palette file {palette_path}: {listed}"
            + (f" ... and {more} more" if more > 0 else "")
            + f" (first at pixel x={x}, y={y}); add them to the palette file, or re-save the "
            "label losslessly (PNG, no anti-aliasing)"
        )
    return values[position]


class FolderDataset(PairedFileDataset):
    """``images/`` + ``labels/`` (+ ``instances/``) matched by file stem.

    Splits: ``root/train/images`` and ``root/val/images`` when those folders exist; otherwise
    one ``root/images`` folder whose sorted pairs are split deterministically, the last
    ``val_fraction`` going to ``val`` (``val_fraction=0`` uses every pair for both splits).
    """

    name = "folder"

    def __init__(
        self,
        root: str,
        split: str,
        transform: Transform | None = None,
        *,
        label_nc: int,
        contain_dontcare_label: bool = False,
        dontcare_value: int | None = None,
        palette_file: str | None = None,
        class_names: list[str] | None = None,
        images_dir: str = "images",
        labels_dir: str = "labels",
        instances_dir: str = "instances",
        load_instances: bool = True,
        val_fraction: float = 0.1,
        strict: bool = True,
    ) -> None:
        if label_nc < 1:
            raise ValueError(f"data.label_nc={label_nc} must be >= 1 for data=folder")
        if dontcare_value is not None and not contain_dontcare_label:
            raise ValueError(
                f"data.dataset.dontcare_value={dontcare_value} needs "
                "data.contain_dontcare_label=true (the value becomes class label_nc)"
            )
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"data.dataset.val_fraction={val_fraction} must be in [0, 1)")
        self.label_nc = label_nc
        self.contain_dontcare_label = contain_dontcare_label
        self.dontcare_value = dontcare_value
        base = require_dir(Path(root).expanduser(), "dataset root", "data.dataset.root")
        split_base = base / split
        split_by_folder = (split_base / images_dir).is_dir()
        folder = split_base if split_by_folder else base
        image_dir = require_dir(folder / images_dir, "image", "data.dataset.root / images_dir")
        label_dir = require_dir(folder / labels_dir, "label", "data.dataset.root / labels_dir")
        instance_dir = folder / instances_dir
        use_instances = load_instances and instance_dir.is_dir()

        self.palette_path: Path | None = None
        self.colors: dict[tuple[int, int, int], int] | None = None
        names: list[str | None] = list(class_names) if class_names else []
        if palette_file is not None:
            self.palette_path = Path(palette_file).expanduser()
            if not self.palette_path.is_absolute() and not self.palette_path.exists():
                self.palette_path = base / self.palette_path
            self.colors, file_names = load_palette_file(self.palette_path)
            if any(file_names) and not names:
                names = file_names
            self.label_modes = COLOR_LABEL_MODES
            palette = np.zeros((max(label_nc, len(file_names)), 3), dtype=np.uint8)
            for color, index in self.colors.items():
                if index < len(palette):
                    palette[index] = color
            self.palette = palette
        if names:
            self.class_names = [n if n else f"class {i}" for i, n in enumerate(names)]

        pairs, unmatched = match_pairs(
            index_files(image_dir, IMAGE_EXTENSIONS),
            index_files(label_dir, LABEL_EXTENSIONS),
            index_files(instance_dir, LABEL_EXTENSIONS) if use_instances else None,
        )
        if not split_by_folder and val_fraction > 0 and len(pairs) > 1:
            n_val = max(1, round(len(pairs) * val_fraction))
            pairs = pairs[-n_val:] if split == "val" else pairs[:-n_val]
        super().__init__(
            pairs,
            split,
            transform,
            unmatched,
            strict,
            has_instances=use_instances,
            where=str(folder),
        )

    def convert_label(self, image: Image.Image, path: Path) -> np.ndarray:
        if self.colors is None:
            label = super().convert_label(image, path)
        else:
            self.check_mode(image, path, self.label_modes, "colour label")
            rgb = np.asarray(image.convert("RGB"))
            assert self.palette_path is not None
            label = decode_colors(rgb, self.colors, path, self.palette_path)
        if self.dontcare_value is not None:
            label = np.where(label == self.dontcare_value, self.label_nc, label)
        return label
