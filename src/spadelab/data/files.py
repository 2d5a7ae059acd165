"""The file-pairing machinery every on-disk dataset shares, and its base class.

:class:`PairedFileDataset` is the base of the real-dataset loaders (ADE20K, Cityscapes,
COCO-Stuff, plain folders). A subclass only decides *which* files pair up (``pairs``) and how a
raw label/instance image becomes integers (``convert_label`` / ``convert_instance``); loading,
size checks, range checks naming the file and the transform live here once.
"""

from __future__ import annotations

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
