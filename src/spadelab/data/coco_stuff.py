"""COCO-Stuff (164k) in its two common layouts.

``layout: spade`` — the layout the official SPADE code reads (what ``datasets/coco_stuff``
holds after its preparation scripts)::

    train_img/000000000009.jpg   train_label/000000000009.png   train_inst/000000000009.png
    val_img/...                  val_label/...                  val_inst/...

``layout: stuffthingmaps`` — the official COCO-Stuff download (``stuffthingmaps_trainval2017``)
next to the COCO 2017 images::

    images/{train2017,val2017}/000000000009.jpg
    stuffthingmaps_trainval2017/{train2017,val2017}/000000000009.png

Labels are 8-bit PNGs with 0..181 (COCO category id - 1: 0..90 things incl. 11 unused ids,
91..181 stuff) and 255 = unlabelled. With ``contain_dontcare_label`` the 255 pixels become
value 182, the extra "don't care" channel, exactly as the official code does; metrics ignore 182.
The stuffthingmaps download has no instance maps: point ``instance_dir`` at a folder with
``{train2017,val2017}/*.png`` maps if you made some, else train with ``use_instance=false``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from spadelab.data.files import (
    IMAGE_EXTENSIONS,
    LABEL_EXTENSIONS,
    PairedFileDataset,
    Transform,
    index_files,
    match_pairs,
    require_dir,
)
from spadelab.data.labels import default_palette

# COCO category ids 1..91 (things; "(unused)" ids have no annotations) and 92..182 (stuff);
# label value = id - 1.
COCO_STUFF_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "street sign (unused)", "stop sign", "parking meter",
    "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra",
    "giraffe", "hat (unused)", "backpack", "umbrella", "shoe (unused)", "eye glasses (unused)",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "plate (unused)", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "mirror (unused)", "dining table", "window (unused)",
    "desk (unused)", "toilet", "door (unused)", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "blender (unused)",
    "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
    "hair brush (unused)",
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage",
    "cardboard", "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds",
    "counter", "cupboard", "curtain", "desk-stuff", "dirt", "door-stuff", "fence",
    "floor-marble", "floor-other", "floor-stone", "floor-tile", "floor-wood", "flower", "fog",
    "food-other", "fruit", "furniture-other", "grass", "gravel", "ground-other", "hill",
    "house", "leaves", "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud",
    "napkin", "net", "paper", "pavement", "pillow", "plant-other", "plastic", "platform",
    "playingfield", "railing", "railroad", "river", "road", "rock", "roof", "rug", "salad",
    "sand", "sea", "shelf", "sky-other", "skyscraper", "snow", "solid-other", "stairs", "stone",
    "straw", "structural-other", "table", "tent", "textile-other", "towel", "tree", "vegetable",
    "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile",
    "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood",
)  # fmt: skip
COCO_STUFF_LABEL_NC = len(COCO_STUFF_CLASSES)  # 182
COCO_STUFF_INDEX = {name: index for index, name in enumerate(COCO_STUFF_CLASSES)}
UNLABELED = 255
LAYOUTS = ("spade", "stuffthingmaps")


class COCOStuff(PairedFileDataset):
    """COCO-Stuff; ``split`` is ``train`` or ``val``; see the module docstring for layouts."""

    name = "coco_stuff"
    label_nc = COCO_STUFF_LABEL_NC
    contain_dontcare_label = True
    class_names = [*COCO_STUFF_CLASSES, "unlabeled"]
    palette = default_palette(COCO_STUFF_LABEL_NC + 1)

    def __init__(
        self,
        root: str,
        split: str,
        transform: Transform | None = None,
        *,
        layout: str = "spade",
        load_instances: bool = True,
        instance_dir: str | None = None,
        strict: bool = True,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"COCO-Stuff split {split!r} is unknown; use train or val")
        if layout not in LAYOUTS:
            raise ValueError(
                f"data.dataset.layout={layout!r} is unknown; use one of {', '.join(LAYOUTS)}"
            )
        base = require_dir(Path(root).expanduser(), "COCO-Stuff root", "data.dataset.root")
        setting = "data.dataset.root (and data.dataset.layout)"
        instances: Path | None = None
        if layout == "spade":
            image_dir = require_dir(base / f"{split}_img", "COCO-Stuff image", setting)
            label_dir = require_dir(base / f"{split}_label", "COCO-Stuff label", setting)
            if load_instances:
                instances = Path(instance_dir).expanduser() if instance_dir else base
                instances = instances / f"{split}_inst"
        else:
            image_dir = require_dir(base / "images" / f"{split}2017", "COCO image", setting)
            label_dir = require_dir(
                base / "stuffthingmaps_trainval2017" / f"{split}2017", "stuffthingmaps", setting
            )
            if load_instances:
                if instance_dir is None:
                    raise ValueError(
                        "COCO-Stuff stuffthingmaps layout has no instance maps: set "
                        "data.use_instance=false, or data.dataset.instance_dir=DIR holding "
                        f"{split}2017/*.png instance maps"
                    )
                instances = Path(instance_dir).expanduser() / f"{split}2017"
        if instances is not None:
            require_dir(
                instances,
                "COCO-Stuff instance map",
                "data.dataset.instance_dir (or set data.use_instance=false)",
            )
        pairs, unmatched = match_pairs(
            index_files(image_dir, IMAGE_EXTENSIONS),
            index_files(label_dir, LABEL_EXTENSIONS),
            index_files(instances, LABEL_EXTENSIONS) if instances is not None else None,
        )
        self.layout = layout
        super().__init__(
            pairs,
            split,
            transform,
            unmatched,
            strict,
            has_instances=instances is not None,
            where=str(base),
        )

    def convert_label(self, image: Image.Image, path: Path) -> np.ndarray:
        label = super().convert_label(image, path)
        # 255 "unlabeled" -> the don't-care value label_nc; 182..254 stay out of range on purpose.
        return np.where(label == UNLABELED, COCO_STUFF_LABEL_NC, label)
