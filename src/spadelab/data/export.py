"""Write the synthetic landscapes in the on-disk layouts of the real datasets.

The point is end-to-end coverage without downloads: CI exports a few scenes per layout and runs
the real loaders, the checker and training on them. Every file follows the real dataset's
naming, bit depth and id convention:

- ``ade20k``: ``ADEChallengeData2016/{images,annotations}/{training,validation}/ADE_*_%08d``,
  JPEG images, 8-bit PNG labels where synthetic class ``k`` is stored as ``k + 1`` so that 0
  stays "other" (ADE20K has no cloud or snow class, so the real ADE ids would merge classes),
  plus ``sceneCategories.txt`` with an outdoor scene name derived from the scene content.
- ``cityscapes``: ``leftImg8bit`` PNGs and ``gtFine`` ``*_labelIds.png`` (8-bit label ids) and
  ``*_instanceIds.png`` (16-bit: ``id * 1000 + k`` for the k-th tree/rock, the label id
  elsewhere). Classes map to plausible Cityscapes ids (:data:`CITYSCAPES_IDS`); Cityscapes has
  no cloud, water or snow, so this mapping is lossy on purpose.
- ``coco_stuff``: the SPADE layout (``train_img``, ``train_label``, ``train_inst``) with
  12-digit COCO-style names, labels as COCO-Stuff indices (:data:`COCO_STUFF_IDS`) and 255
  ("unlabeled") along the borders of trees and rocks, as crowd-sourced polygons leave them.
- ``coco_stuff_stuffthingmaps``: the same data in the official download layout
  (``images/train2017``, ``stuffthingmaps_trainval2017/train2017``), no instance maps.
- ``folder``: ``train/`` and ``val/`` with ``images``, colour-coded ``labels`` (the synthetic
  palette), 16-bit ``instances`` and ``palette.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from spadelab.data import synthetic
from spadelab.data.cityscapes import CITYSCAPES_INDEX
from spadelab.data.coco_stuff import COCO_STUFF_INDEX, UNLABELED

FORMATS = ("ade20k", "cityscapes", "coco_stuff", "coco_stuff_stuffthingmaps", "folder")

# Synthetic class name -> id in each target convention.
ADE20K_IDS = {name: k + 1 for k, name in enumerate(synthetic.CLASSES)}
CITYSCAPES_IDS = {
    "sky": CITYSCAPES_INDEX["sky"],
    "cloud": CITYSCAPES_INDEX["sky"],  # Cityscapes annotates clouds as sky.
    "mountain": CITYSCAPES_INDEX["terrain"],
    "snow": CITYSCAPES_INDEX["ground"],
    "water": CITYSCAPES_INDEX["ground"],  # no water class; flat non-road ground is closest
    "grass": CITYSCAPES_INDEX["terrain"],
    "tree": CITYSCAPES_INDEX["vegetation"],
    "rock": CITYSCAPES_INDEX["static"],
    "sand": CITYSCAPES_INDEX["sidewalk"],
    "path": CITYSCAPES_INDEX["road"],
}
COCO_STUFF_IDS = {
    "sky": COCO_STUFF_INDEX["sky-other"],
    "cloud": COCO_STUFF_INDEX["clouds"],
    "mountain": COCO_STUFF_INDEX["mountain"],
    "snow": COCO_STUFF_INDEX["snow"],
    "water": COCO_STUFF_INDEX["water-other"],
    "grass": COCO_STUFF_INDEX["grass"],
    "tree": COCO_STUFF_INDEX["tree"],
    "rock": COCO_STUFF_INDEX["rock"],
    "sand": COCO_STUFF_INDEX["sand"],
    "path": COCO_STUFF_INDEX["dirt"],
}
CITYSCAPES_CITIES = {"train": ("aachen", "bochum"), "val": ("frankfurt",)}
JPEG_QUALITY = 95


def class_lut(ids: dict[str, int]) -> np.ndarray:
    """Synthetic class index -> target id, failing loudly if the synthetic classes change."""
    missing = [name for name in synthetic.CLASSES if name not in ids]
    if missing:
        raise ValueError(
            f"spadelab.data.export has no mapping for synthetic classes {missing}; "
            "add them to the *_IDS tables in spadelab/data/export.py"
        )
    return np.array([ids[name] for name in synthetic.CLASSES], dtype=np.int64)


def scene_name(label: np.ndarray) -> str:
    """An ADE-style outdoor scene category describing the rendered content."""
    share = np.bincount(label.ravel(), minlength=synthetic.LABEL_NC) / label.size
    if share[synthetic.SNOW] > 0.02:
        return "mountain_snowy"
    if share[synthetic.SAND] > 0.05 and share[synthetic.WATER] > 0.05:
        return "coast"
    if share[synthetic.WATER] > 0.05:
        return "lake_natural"
    if share[synthetic.TREE] > 0.15:
        return "forest_path" if share[synthetic.PATH] > 0.01 else "forest_broadleaf"
    if share[synthetic.MOUNTAIN] > 0.1:
        return "mountain"
    return "field_wild"


def thing_boundaries(instance: np.ndarray) -> np.ndarray:
    """Pixels of an object whose 4-neighbour belongs to another id (the instance edge)."""
    edge = np.zeros(instance.shape, dtype=bool)
    horizontal = instance[:, 1:] != instance[:, :-1]
    vertical = instance[1:, :] != instance[:-1, :]
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    return edge & (instance > 0)


def cityscapes_instance_ids(label_ids: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """Cityscapes encoding: label id for stuff, ``id * 1000 + k`` (k from 0) per object."""
    encoded = label_ids.astype(np.int64).copy()
    for class_id in np.unique(label_ids[instance > 0]):
        in_class = (label_ids == class_id) & (instance > 0)
        ids = np.unique(instance[in_class])
        ranks = np.searchsorted(ids, instance[in_class])
        encoded[in_class] = int(class_id) * 1000 + ranks
    return encoded


def renumber_instances(instance: np.ndarray, dtype: type = np.uint8) -> np.ndarray:
    """Renumber ids to 1..N per image (0 stays "none") so they fit the PNG's bit depth."""
    ids, inverse = np.unique(instance, return_inverse=True)
    numbered = inverse.reshape(instance.shape) + (0 if ids[0] == 0 else 1)
    if numbered.max(initial=0) > np.iinfo(dtype).max:
        raise ValueError(
            f"{numbered.max()} instances in one image do not fit a {np.dtype(dtype).name} PNG"
        )
    return numbered.astype(dtype)


def _save_png(array: np.ndarray, path: Path, dtype: type) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array.astype(dtype))).save(path)


def _save_image(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jpg":
        Image.fromarray(image).save(path, quality=JPEG_QUALITY)
    else:
        Image.fromarray(image).save(path)


Writer = Callable[[Path, str, int, synthetic.SyntheticSample], None]


def _write_ade20k(root: Path, split: str, i: int, sample: synthetic.SyntheticSample) -> None:
    folder = "training" if split == "train" else "validation"
    stem = f"ADE_{split}_{i + 1:08d}"
    base = root / "ADEChallengeData2016"
    _save_image(sample.image, base / "images" / folder / f"{stem}.jpg")
    _save_png(
        class_lut(ADE20K_IDS)[sample.label],
        base / "annotations" / folder / f"{stem}.png",
        np.uint8,
    )
    with (base / "sceneCategories.txt").open("a") as scenes:
        scenes.write(f"{stem} {scene_name(sample.label)}\n")


def _write_cityscapes(root: Path, split: str, i: int, sample: synthetic.SyntheticSample) -> None:
    cities = CITYSCAPES_CITIES[split]
    city = cities[i % len(cities)]
    stem = f"{city}_{i:06d}_000019"
    label_ids = class_lut(CITYSCAPES_IDS)[sample.label]
    gt = root / "gtFine" / split / city
    _save_image(sample.image, root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
    _save_png(label_ids, gt / f"{stem}_gtFine_labelIds.png", np.uint8)
    _save_png(
        cityscapes_instance_ids(label_ids, sample.instance),
        gt / f"{stem}_gtFine_instanceIds.png",
        np.uint16,
    )


def _coco_label(sample: synthetic.SyntheticSample, index: int) -> np.ndarray:
    label = class_lut(COCO_STUFF_IDS)[sample.label]
    label[thing_boundaries(sample.instance)] = UNLABELED
    # A small unlabelled patch in every image, so every image exercises the 255 -> 182 rule.
    y, x = (index * 7) % max(1, label.shape[0] - 2), (index * 13) % max(1, label.shape[1] - 2)
    label[y : y + 2, x : x + 2] = UNLABELED
    return label


def _write_coco_spade(root: Path, split: str, i: int, sample: synthetic.SyntheticSample) -> None:
    stem = f"{i + 1 + (0 if split == 'train' else 500_000):012d}"
    _save_image(sample.image, root / f"{split}_img" / f"{stem}.jpg")
    _save_png(_coco_label(sample, i), root / f"{split}_label" / f"{stem}.png", np.uint8)
    _save_png(
        renumber_instances(sample.instance), root / f"{split}_inst" / f"{stem}.png", np.uint8
    )


def _write_coco_stuffthingmaps(
    root: Path, split: str, i: int, sample: synthetic.SyntheticSample
) -> None:
    stem = f"{i + 1 + (0 if split == 'train' else 500_000):012d}"
    _save_image(sample.image, root / "images" / f"{split}2017" / f"{stem}.jpg")
    _save_png(
        _coco_label(sample, i),
        root / "stuffthingmaps_trainval2017" / f"{split}2017" / f"{stem}.png",
        np.uint8,
    )


def _write_folder(root: Path, split: str, i: int, sample: synthetic.SyntheticSample) -> None:
    stem = f"{split}_{i:05d}"
    _save_image(sample.image, root / split / "images" / f"{stem}.png")
    colors = np.asarray(synthetic.PALETTE)[sample.label]
    _save_png(colors, root / split / "labels" / f"{stem}.png", np.uint8)
    instances = renumber_instances(sample.instance, np.uint16)
    _save_png(instances, root / split / "instances" / f"{stem}.png", np.uint16)


WRITERS: dict[str, Writer] = {
    "ade20k": _write_ade20k,
    "cityscapes": _write_cityscapes,
    "coco_stuff": _write_coco_spade,
    "coco_stuff_stuffthingmaps": _write_coco_stuffthingmaps,
    "folder": _write_folder,
}
# The top-level entries each format creates: refusing to write over them avoids mixing exports.
TARGETS = {
    "ade20k": ("ADEChallengeData2016",),
    "cityscapes": ("leftImg8bit", "gtFine"),
    "coco_stuff": ("train_img", "train_label", "train_inst", "val_img", "val_label", "val_inst"),
    "coco_stuff_stuffthingmaps": ("images", "stuffthingmaps_trainval2017"),
    "folder": ("train", "val", "palette.json"),
}


def write_palette_file(path: Path) -> None:
    classes = [
        {"index": k, "name": name, "color": [int(c) for c in synthetic.PALETTE[k]]}
        for k, name in enumerate(synthetic.CLASSES)
    ]
    path.write_text(json.dumps({"classes": classes}, indent=1) + "\n")


def export_synthetic(
    format: str,
    out: str | Path,
    n_train: int = 16,
    n_val: int = 4,
    height: int = 64,
    width: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Render ``n_train`` + ``n_val`` synthetic scenes into ``out`` in the given layout.

    Returns the directory to use as ``data.dataset.root`` (``out`` itself for every format).
    Refuses to write into an existing export of the same layout unless ``overwrite``.
    """
    if format not in WRITERS:
        raise ValueError(
            f"export format={format!r} is unknown; choose one of {', '.join(FORMATS)}"
        )
    for name, value in (("n_train", n_train), ("n_val", n_val), ("height", height)):
        if value < 1:
            raise ValueError(f"export {name}={value} must be >= 1")
    width = width or height
    if width < 1:
        raise ValueError(f"export width={width} must be >= 1")
    root = Path(out).expanduser()
    existing = [root / t for t in TARGETS[format] if (root / t).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{existing[0]} already exists; choose another out= or pass overwrite=true"
        )
    if overwrite:
        import shutil

        for path in existing:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    root.mkdir(parents=True, exist_ok=True)
    writer = WRITERS[format]
    dataset = synthetic.SyntheticLandscapes  # for the split -> scene index rule
    for split, count in (("train", n_train), ("val", n_val)):
        scenes = dataset(split=split, num_train=max(1, n_train), num_val=max(1, n_val), seed=seed)
        for i in range(count):
            sample = synthetic.render(seed, scenes.scene_index(i), height, width)
            writer(root, split, i, sample)
    if format == "folder":
        write_palette_file(root / "palette.json")
    return root
