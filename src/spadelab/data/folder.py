"""Paired image/label folders, and the file-pairing machinery every on-disk dataset shares.

:class:`PairedFileDataset` is the base of the real-dataset loaders (ADE20K, Cityscapes,
COCO-Stuff, plain folders). A subclass only decides *which* files pair up (``pairs``) and how a
raw label/instance image becomes integers (``convert_label`` / ``convert_instance``); loading,
size checks, range checks naming the file and the transform live here once.

:class:`FolderDataset` is the "bring your own data" layout::

    root/images/*.jpg|png     root/labels/*.png     root/instances/*.png (optional)

matched by file stem, optionally split into ``root/train/...`` and ``root/val/...``. Labels are
either single-channel class indices or colour-coded RGB PNGs decoded with a palette file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from spadelab.data.check import DataError
from spadelab.data.labels import LabelSpec, check_label_range
from spadelab.data.transforms import image_to_tensor

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
LABEL_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")
# Single-channel integer modes PIL reports for index PNGs (8-bit, palette, 16-bit, 32-bit).
INDEX_MODES = frozenset({"L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N"})
COLOR_LABEL_MODES = frozenset({"RGB", "RGBA", "P"})
IMAGE_MODES = frozenset({"RGB", "RGBA", "L", "LA", "P", "CMYK", "YCbCr"})
# How many unmatched files an error message lists before "... and N more".
LIST_LIMIT = 5

Pair = tuple[Path, Path, Path | None]
Transform = Callable[..., dict[str, torch.Tensor]]


class PairingError(DataError):
    """Images and labels (or instances) do not pair up one to one."""


def format_paths(paths: Sequence[Path], limit: int = LIST_LIMIT) -> str:
    """First few paths + how many more, so a 20k-file mismatch stays one readable line."""
    shown = ", ".join(str(p) for p in paths[:limit])
    more = len(paths) - limit
    return shown + (f" ... and {more} more" if more > 0 else "")


def require_dir(path: Path, what: str, setting: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} folder {path} does not exist; check {setting}")
    return path


def index_files(
    directory: Path,
    extensions: Iterable[str],
    suffix: str = "",
    recursive: bool = False,
) -> dict[str, Path]:
    """Map a pairing key to each file in ``directory``.

    The key is the path relative to ``directory`` without the extension and without ``suffix``
    (Cityscapes' ``_leftImg8bit`` / ``_gtFine_labelIds``), so ``aachen/aachen_000000_000019``
    pairs across the image and annotation trees. ``os.scandir`` via ``iterdir`` keeps this cheap
    for 20k-file folders: no file is opened here.
    """
    extensions = tuple(e.lower() for e in extensions)
    candidates = directory.rglob("*") if recursive else directory.iterdir()
    found: dict[str, Path] = {}
    for path in candidates:
        name = path.name
        if name.startswith(".") or path.suffix.lower() not in extensions:
            continue
        stem = name[: -len(path.suffix)]
        if suffix:
            if not stem.endswith(suffix):
                continue
            stem = stem[: -len(suffix)]
        parent = path.parent.relative_to(directory).as_posix()
        key = stem if parent == "." else f"{parent}/{stem}"
        found[key] = path
    return found


def match_pairs(
    images: Mapping[str, Path],
    labels: Mapping[str, Path],
    instances: Mapping[str, Path] | None = None,
) -> tuple[list[Pair], dict[str, list[Path]]]:
    """Pair files by key; returns the sorted pairs and every file left without a partner."""
    unmatched: dict[str, list[Path]] = {
        "image without label": sorted(images[k] for k in images.keys() - labels.keys()),
        "label without image": sorted(labels[k] for k in labels.keys() - images.keys()),
    }
    common = sorted(images.keys() & labels.keys())
    if instances is not None:
        unmatched["image without instance map"] = sorted(
            images[k] for k in common if k not in instances
        )
        unmatched["instance map without image"] = sorted(
            instances[k] for k in instances.keys() - images.keys()
        )
        common = [k for k in common if k in instances]
    pairs: list[Pair] = [
        (images[k], labels[k], instances[k] if instances is not None else None) for k in common
    ]
    return pairs, {kind: paths for kind, paths in unmatched.items() if paths}


def describe_unmatched(unmatched: Mapping[str, Sequence[Path]]) -> list[str]:
    return [
        f"{len(paths)} {kind}{'' if len(paths) == 1 else ' (files)'}: {format_paths(paths)}"
        for kind, paths in unmatched.items()
        if paths
    ]


def open_image(path: Path) -> Image.Image:
    """Open and fully decode a file, turning PIL's terse errors into ones naming the file."""
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist; was the dataset moved?") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise OSError(
            f"cannot read {path}: {error}; the file is corrupt or truncated "
            "(run `spadelab data check` to list every broken file)"
        ) from None
    return image


class PairedFileDataset(Dataset):
    """Base for datasets stored as image/label(/instance) files.

    Subclasses set the class attributes below and call ``super().__init__`` with the pairs.
    ``strict=False`` keeps unmatched files in ``self.unmatched`` instead of raising, so
    :func:`spadelab.data.check.check_dataset` can list them together with every other problem.
    """

    name = "dataset"
    class_names: list[str] | None = None
    palette: np.ndarray | None = None
    # The label convention the files follow after ``convert_label`` (see labels.LabelSpec).
    label_nc = 1
    contain_dontcare_label = False
    label_modes: frozenset[str] = INDEX_MODES
    instance_modes: frozenset[str] = INDEX_MODES

    def __init__(
        self,
        pairs: list[Pair],
        split: str,
        transform: Transform | None = None,
        unmatched: Mapping[str, list[Path]] | None = None,
        strict: bool = True,
        has_instances: bool = False,
        where: str = "",
    ) -> None:
        self.pairs = pairs
        self.split = split
        self.transform = transform
        self.unmatched = dict(unmatched or {})
        self.has_instances = has_instances
        self.where = where
        if strict and self.unmatched:
            problems = "; ".join(describe_unmatched(self.unmatched))
            raise PairingError(
                f"{self.name} {split} split in {where}: files do not pair up: {problems}. "
                "Add or remove the listed files (the pairing rule is by file name), or run "
                "`spadelab data check` for a full report"
            )

    @property
    def num_label_values(self) -> int:
        return self.label_nc + int(self.contain_dontcare_label)

    @property
    def spec(self) -> LabelSpec:
        return LabelSpec(self.label_nc, self.contain_dontcare_label, self.has_instances)

    def __len__(self) -> int:
        return len(self.pairs)

    # --- conversions a subclass may override -------------------------------------------------
    def check_mode(
        self, image: Image.Image, path: Path, allowed: frozenset[str], what: str
    ) -> None:
        if image.mode in allowed:
            return
        channels = len(image.getbands())
        hint = ""
        if what == "label" and channels >= 3:
            hint = (
                "; colour-coded labels need a palette: use data=folder with "
                "data.dataset.palette_file=PALETTE.json"
            )
        raise DataError(
            f"{path}: {what} has {channels} channel(s) (PIL mode {image.mode}); expected one of "
            f"modes {sorted(allowed)}{hint}"
        )

    def convert_label(self, image: Image.Image, path: Path) -> np.ndarray:
        """Raw label image -> int64 (H, W) in this dataset's convention (no range check)."""
        self.check_mode(image, path, self.label_modes, "label")
        return np.asarray(image).astype(np.int64)

    def convert_instance(self, image: Image.Image, path: Path) -> np.ndarray:
        self.check_mode(image, path, self.instance_modes, "instance map")
        return np.asarray(image).astype(np.int64)

    def read_label(self, path: Path) -> np.ndarray:
        return self.convert_label(open_image(path), path)

    def read_instance(self, path: Path) -> np.ndarray:
        return self.convert_instance(open_image(path), path)

    # --- loading -----------------------------------------------------------------------------
    def __getitem__(self, index: int) -> dict[str, Any]:
        image_path, label_path, instance_path = self.pairs[index]
        image = open_image(image_path)
        self.check_mode(image, image_path, IMAGE_MODES, "image")
        image = image.convert("RGB")
        label = self.read_label(label_path)
        # Range is checked on the raw-size map so the error names the file, not a batch index.
        try:
            check_label_range(
                torch.from_numpy(label),
                LabelSpec(self.label_nc, self.contain_dontcare_label),
                source=str(label_path),
            )
        except ValueError as error:
            raise DataError(str(error)) from None
        instance = self.read_instance(instance_path) if instance_path is not None else None
        for path, array in ((label_path, label), (instance_path, instance)):
            if array is not None and array.shape != (image.height, image.width):
                raise DataError(
                    f"{path} is {array.shape[1]}x{array.shape[0]} but its image {image_path} is "
                    f"{image.width}x{image.height}; the pair must have the same size"
                )
        if self.transform is None:
            sample = {
                "image": image_to_tensor(image),
                "label": torch.from_numpy(label).unsqueeze(0),
                "instance": torch.from_numpy(instance).unsqueeze(0)
                if instance is not None
                else torch.zeros((1, image.height, image.width), dtype=torch.int64),
            }
        else:
            # int32 "I" images survive the transform's nearest resize, crop and flip exactly.
            sample = self.transform(
                image,
                Image.fromarray(label.astype(np.int32)),
                Image.fromarray(instance.astype(np.int32)) if instance is not None else None,
                train=self.split == "train",
                index=index,
            )
        sample["path"] = str(image_path)
        return sample


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
