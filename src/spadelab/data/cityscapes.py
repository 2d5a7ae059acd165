"""Cityscapes, fine annotations, in the layout of the official download::

    leftImg8bit/{train,val,test}/CITY/CITY_000000_000019_leftImg8bit.png
    gtFine/{train,val,test}/CITY/CITY_000000_000019_gtFine_labelIds.png      # 8-bit, 0..33
    gtFine/{train,val,test}/CITY/CITY_000000_000019_gtFine_instanceIds.png   # 16-bit

``labelIds`` hold the full label ids 0..33 (the license plate's id -1 is never drawn). As in the
official SPADE code the generator sees them unchanged with ``label_nc=35``; the 19 evaluation
classes come from the ``cityscapes_train_ids`` mapping at metric time. ``instanceIds`` hold the
class id for stuff and crowd regions (< 1000) and ``class * 1000 + k`` for the k-th object, and
are passed on unchanged: only instance *boundaries* reach the network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spadelab.data.files import (
    PairedFileDataset,
    Transform,
    index_files,
    match_pairs,
    require_dir,
)

# label id -> (name, colour) from the Cityscapes label definition; 34 is unused (label_nc=35
# matches the official SPADE setting).
CITYSCAPES_LABELS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("unlabeled", (0, 0, 0)), ("ego vehicle", (0, 0, 0)), ("rectification border", (0, 0, 0)),
    ("out of roi", (0, 0, 0)), ("static", (0, 0, 0)), ("dynamic", (111, 74, 0)),
    ("ground", (81, 0, 81)), ("road", (128, 64, 128)), ("sidewalk", (244, 35, 232)),
    ("parking", (250, 170, 160)), ("rail track", (230, 150, 140)), ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)), ("fence", (190, 153, 153)), ("guard rail", (180, 165, 180)),
    ("bridge", (150, 100, 100)), ("tunnel", (150, 120, 90)), ("pole", (153, 153, 153)),
    ("polegroup", (153, 153, 153)), ("traffic light", (250, 170, 30)),
    ("traffic sign", (220, 220, 0)), ("vegetation", (107, 142, 35)), ("terrain", (152, 251, 152)),
    ("sky", (70, 130, 180)), ("person", (220, 20, 60)), ("rider", (255, 0, 0)),
    ("car", (0, 0, 142)), ("truck", (0, 0, 70)), ("bus", (0, 60, 100)), ("caravan", (0, 0, 90)),
    ("trailer", (0, 0, 110)), ("train", (0, 80, 100)), ("motorcycle", (0, 0, 230)),
    ("bicycle", (119, 11, 32)), ("license plate (unused)", (0, 0, 142)),
)  # fmt: skip
CITYSCAPES_LABEL_NC = len(CITYSCAPES_LABELS)  # 35
CITYSCAPES_INDEX = {name: index for index, (name, _) in enumerate(CITYSCAPES_LABELS)}

IMAGE_SUFFIX = "_leftImg8bit"
LABEL_SUFFIX = "_gtFine_labelIds"
INSTANCE_SUFFIX = "_gtFine_instanceIds"


def find_cityscapes_root(root: str | Path) -> Path:
    base = Path(root).expanduser()
    if (base / "leftImg8bit").is_dir() and (base / "gtFine").is_dir():
        return base
    raise FileNotFoundError(
        f"no Cityscapes data under {base}: expected {base}/leftImg8bit and {base}/gtFine "
        "(from leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip); set data.dataset.root"
    )


class Cityscapes(PairedFileDataset):
    """Cityscapes fine annotations; pairs match on ``CITY/CITY_seq_frame`` across both trees."""

    name = "cityscapes"
    label_nc = CITYSCAPES_LABEL_NC
    class_names = [name for name, _ in CITYSCAPES_LABELS]
    palette = np.array([color for _, color in CITYSCAPES_LABELS], dtype=np.uint8)

    def __init__(
        self,
        root: str,
        split: str,
        transform: Transform | None = None,
        *,
        load_instances: bool = True,
        annotation_dir: str = "gtFine",
        strict: bool = True,
    ) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"Cityscapes split {split!r} is unknown; use train, val or test")
        base = find_cityscapes_root(root)
        image_dir = require_dir(
            base / "leftImg8bit" / split, "Cityscapes image", "data.dataset.root"
        )
        label_dir = require_dir(
            base / annotation_dir / split, "Cityscapes annotation", "data.dataset.annotation_dir"
        )
        # The annotation tree names the annotation type in the suffix (gtFine_ / gtCoarse_).
        kind = annotation_dir.rstrip("/").split("/")[-1]
        label_suffix = LABEL_SUFFIX.replace("gtFine", kind)
        instance_suffix = INSTANCE_SUFFIX.replace("gtFine", kind)
        pairs, unmatched = match_pairs(
            index_files(image_dir, (".png",), IMAGE_SUFFIX, recursive=True),
            index_files(label_dir, (".png",), label_suffix, recursive=True),
            index_files(label_dir, (".png",), instance_suffix, recursive=True)
            if load_instances
            else None,
        )
        super().__init__(
            pairs,
            split,
            transform,
            unmatched,
            strict,
            has_instances=load_instances,
            where=str(base),
        )
