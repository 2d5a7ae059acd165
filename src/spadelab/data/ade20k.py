"""ADE20K (the SceneParsing challenge release, ``ADEChallengeData2016``) and its subsets.

On-disk layout, as downloaded::

    ADEChallengeData2016/images/{training,validation}/ADE_train_00000001.jpg
    ADEChallengeData2016/annotations/{training,validation}/ADE_train_00000001.png
    ADEChallengeData2016/sceneCategories.txt      # "ADE_train_00000001 airport_terminal"

Annotations are 8-bit PNGs with values 0..150 where 0 is "other" (unlabelled). By default the
values are kept as they are: ``label_nc=151`` with channel 0 = "other" and mIoU ignoring 0
(``eval_ignore_index: 0``). That is the order the official SPADE networks were trained with:
the official ADE20K dataset defines a ``postprocess`` that shifts the classes to 0..149 and moves
"other" last, but ``Pix2pixDataset.__getitem__`` discards its result. ``other_last=True`` gives
that intended-but-unused order (with ``data.label_nc=150 data.contain_dontcare_label=true
data.eval_ignore_index=150``); official checkpoints need the default.

Subsets, all by the same class:

- ADE20K-outdoor (SPADE paper, following CRN/SIMS): images whose scene category is outdoor,
  selected with ``scenes: outdoor`` (the :data:`OUTDOOR_SCENES` patterns below).
- Landscapes: natural scene categories plus a minimum number of landscape classes present,
  every other class relabelled to 0 ("other") — ``conf/data/ade20k_landscape.yaml``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from spadelab.data.files import (
    IMAGE_EXTENSIONS,
    PairedFileDataset,
    Transform,
    index_files,
    match_pairs,
    open_image,
    require_dir,
)
from spadelab.data.labels import default_palette

# The 150 SceneParsing classes (objectInfo150), index = label value; 0 is "other".
ADE20K_CLASSES: tuple[str, ...] = (
    "other", "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane",
    "grass", "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant",
    "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror",
    "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier",
    "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track",
    "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer",
    "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave",
    "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate",
    "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip
ADE20K_LABEL_NC = len(ADE20K_CLASSES)  # 151
ADE_INDEX = {name: index for index, name in enumerate(ADE20K_CLASSES)}

# Outdoor scene categories, as fnmatch patterns over the names in sceneCategories.txt.
#
# Source and honesty note: the SPADE paper's ADE20K-outdoor follows CRN/SIMS ("outdoor scenes",
# 9,649 train / 943 val images) but neither paper publishes its category list. This list was
# written by hand for spadelab from the SUN/Places convention that scene names are explicitly
# suffixed ``_outdoor``/``_indoor`` where ambiguous, plus natural and urban outdoor categories
# by name. It is an approximation: image counts will differ somewhat from the paper's. Override
# with ``data.dataset.scenes=[...]`` or ``data.dataset.scene_file=FILE`` (one name per line) to
# reproduce another selection exactly.
OUTDOOR_SCENES: tuple[str, ...] = (
    # Anything the scene taxonomy itself marks outdoor.
    "*_outdoor", "*outdoor*",
    # Natural scenes.
    "badlands", "bamboo_forest", "beach*", "butte", "canyon*", "cliff*", "coast*", "corn_field",
    "creek", "crevasse", "desert*", "field*", "forest*", "glacier", "hayfield", "hill*",
    "hot_spring", "ice_floe", "ice_shelf", "iceberg", "islet", "lagoon", "lake*", "marsh",
    "mountain*", "ocean", "orchard", "pasture", "pond", "rainforest", "rice_paddy", "river*",
    "rock_arch", "sandbar", "sky", "snowfield", "swamp", "tree_farm", "tundra", "valley",
    "vegetable_garden", "vineyard", "volcano", "waterfall*", "wave", "wheat_field", "wild*",
    # Built outdoor scenes.
    "airfield", "airport", "alley", "amusement_park", "apartment_building*", "aqueduct", "arch",
    "army_base", "baseball_field", "bazaar*", "boardwalk", "boat_deck", "boathouse",
    "botanical_garden", "bridge", "building_complex", "building_facade", "bullring",
    "campsite", "canal*", "castle", "cemetery", "construction_site", "corral",
    "cottage_garden", "courthouse", "courtyard", "covered_bridge*", "crosswalk", "dam", "dock",
    "downtown", "driveway", "excavation", "farm", "fire_escape", "fishpond", "football_field",
    "formal_garden", "fountain", "garbage_dump", "garden", "gas_station", "gazebo*",
    "golf_course", "harbor", "heliport", "highway", "house", "hunting_lodge*", "industrial_area",
    "japanese_garden", "junkyard", "kasbah", "lighthouse", "loading_dock", "mansion",
    "manufactured_home", "medina", "moat*", "monument", "oast_house", "oilrig", "pagoda",
    "palace", "park", "parking_lot", "patio", "pavilion", "picnic_area", "pier", "plantation*",
    "playground", "plaza", "porch", "promenade*", "racecourse", "raceway", "railroad_track",
    "residential_neighborhood", "rope_bridge", "ruin", "runway", "schoolhouse", "shed",
    "shopfront", "ski_resort", "ski_slope", "skyscraper", "slum", "soccer_field", "stadium*",
    "street", "temple*", "toll_plaza", "topiary_garden", "tower", "train_railway", "trench",
    "viaduct", "village", "water_tower", "wind_farm", "windmill", "yard", "zen_garden",
)  # fmt: skip
# Patterns that win over the include list (e.g. "bazaar_indoor", "stadium_interior").
INDOOR_SCENES: tuple[str, ...] = ("*_indoor", "*indoor*", "*_interior", "*interior*")

SPLIT_FOLDERS = {"train": "training", "val": "validation"}
SPLIT_FOLDERS.update({v: v for v in list(SPLIT_FOLDERS.values())})


def find_ade_root(root: str | Path) -> Path:
    """Accept the folder that holds ADEChallengeData2016 or that folder itself."""
    base = Path(root).expanduser()
    for candidate in (base, base / "ADEChallengeData2016"):
        if (candidate / "images").is_dir() and (candidate / "annotations").is_dir():
            return candidate
    raise FileNotFoundError(
        f"no ADE20K data under {base}: expected {base}/ADEChallengeData2016/images and "
        "annotations (or images/ and annotations/ directly); set data.dataset.root"
    )


def read_scene_categories(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: selecting ADE20K images by scene needs sceneCategories.txt "
            "(shipped with ADEChallengeData2016); set data.dataset.scene_file or drop "
            "data.dataset.scenes"
        )
    scenes: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ValueError(
                f"{path} line {number}: expected 'ADE_train_00000001 scene_name', got {line!r}"
            )
        scenes[fields[0]] = fields[1]
    return scenes


def scene_matches(scene: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if any(fnmatch.fnmatchcase(scene, pattern) for pattern in exclude):
        return False
    return any(fnmatch.fnmatchcase(scene, pattern) for pattern in include)


def resolve_classes(classes: Sequence[int | str]) -> list[int]:
    """Class indices from indices or ADE names, so configs may say ``sky`` instead of ``3``."""
    resolved = []
    for item in classes:
        if isinstance(item, str) and not item.isdigit():
            if item not in ADE_INDEX:
                raise ValueError(
                    f"data.dataset.keep_classes: {item!r} is not an ADE20K class name; "
                    "use a name from spadelab.data.ade20k.ADE20K_CLASSES or an index 1..150"
                )
            resolved.append(ADE_INDEX[item])
        else:
            index = int(item)
            if not 1 <= index < ADE20K_LABEL_NC:
                raise ValueError(
                    f"data.dataset.keep_classes: index {index} is outside 1..150 (0 is 'other')"
                )
            resolved.append(index)
    return sorted(set(resolved))


class ADE20K(PairedFileDataset):
    """ADE20K SceneParsing; ``split`` is ``train``/``val`` (or ``training``/``validation``).

    Subset options:
      scenes: ``None`` (all), ``"outdoor"`` (:data:`OUTDOOR_SCENES`) or a list of scene-name
        patterns (fnmatch, e.g. ``mountain*``); ``exclude_scenes`` patterns always win.
      scene_file: a text file of scene names (one per line) used instead of ``scenes``.
      keep_classes: class indices or names kept; all others become 0 ("other").
      compact_labels: renumber kept classes to 1..K (then set ``data.label_nc=K+1``).
      min_keep_classes / min_keep_fraction: keep only images where at least this many kept
        classes appear / kept classes cover this fraction of pixels. This reads every
        candidate label once; ``selection_cache`` (a JSON path) stores the result.
      other_last: classes 0..149 with "other" last (see the module docstring).
    """

    name = "ade20k"
    label_nc = ADE20K_LABEL_NC

    def __init__(
        self,
        root: str,
        split: str,
        transform: Transform | None = None,
        *,
        scenes: str | Sequence[str] | None = None,
        exclude_scenes: Sequence[str] | None = None,
        scene_file: str | None = None,
        keep_classes: Sequence[int | str] | None = None,
        compact_labels: bool = False,
        min_keep_classes: int = 0,
        min_keep_fraction: float = 0.0,
        selection_cache: str | None = None,
        other_last: bool = False,
        strict: bool = True,
    ) -> None:
        if split not in SPLIT_FOLDERS:
            raise ValueError(f"ADE20K split {split!r} is unknown; use train or val")
        base = find_ade_root(root)
        folder = SPLIT_FOLDERS[split]
        image_dir = require_dir(base / "images" / folder, "ADE20K image", "data.dataset.root")
        label_dir = require_dir(
            base / "annotations" / folder, "ADE20K annotation", "data.dataset.root"
        )
        pairs, unmatched = match_pairs(
            index_files(image_dir, IMAGE_EXTENSIONS), index_files(label_dir, (".png",))
        )

        # Relabelling table: value -> value, with dropped classes sent to 0 ("other").
        self.lut = np.arange(256, dtype=np.int64)
        names = list(ADE20K_CLASSES)
        palette = default_palette(ADE20K_LABEL_NC)
        if keep_classes is not None:
            kept = resolve_classes(keep_classes)
            self.lut[:] = 0
            if compact_labels:
                self.lut[kept] = np.arange(1, len(kept) + 1)
                names = ["other"] + [ADE20K_CLASSES[k] for k in kept]
                palette = palette[[0, *kept]]
                self.label_nc = len(kept) + 1
            else:
                self.lut[kept] = kept
            self.kept: list[int] | None = kept
        else:
            if compact_labels:
                raise ValueError(
                    "data.dataset.compact_labels=true needs data.dataset.keep_classes"
                )
            self.kept = None
        if other_last:
            # Classes 1..K -> 0..K-1, "other" -> K (the don't-care channel).
            classes = self.label_nc - 1
            self.lut = np.where(self.lut == 0, classes, self.lut - 1)
            names = [*names[1:], names[0]]
            palette = np.concatenate([palette[1:], palette[:1]])
            self.label_nc = classes
            self.contain_dontcare_label = True
        self.remap = keep_classes is not None or other_last
        # Values above 150 must still reach the range check, not be silently relabelled.
        self.lut[ADE20K_LABEL_NC:] = np.arange(ADE20K_LABEL_NC, 256)
        self.class_names = names
        self.palette = palette

        if scenes is not None or scene_file is not None:
            pairs = self._select_scenes(base, pairs, scenes, exclude_scenes, scene_file)
        if min_keep_classes > 0 or min_keep_fraction > 0:
            if self.kept is None:
                raise ValueError(
                    "data.dataset.min_keep_classes / min_keep_fraction need "
                    "data.dataset.keep_classes (the classes to count)"
                )
            pairs = self._select_by_content(
                pairs, min_keep_classes, min_keep_fraction, selection_cache
            )
        super().__init__(pairs, split, transform, unmatched, strict, where=str(base))

    def _select_scenes(
        self,
        base: Path,
        pairs: list,
        scenes: str | Sequence[str] | None,
        exclude: Sequence[str] | None,
        scene_file: str | None,
    ) -> list:
        if scene_file is not None:
            path = Path(scene_file).expanduser()
            include = [s.strip() for s in path.read_text().splitlines() if s.strip()]
            exclude = list(exclude or [])
        elif scenes == "outdoor":
            include, exclude = list(OUTDOOR_SCENES), [*INDOOR_SCENES, *(exclude or [])]
        elif isinstance(scenes, str):
            raise ValueError(
                f"data.dataset.scenes={scenes!r}: use 'outdoor', a list of scene names/patterns "
                "or null"
            )
        else:
            include, exclude = list(scenes or []), list(exclude or [])
        categories = read_scene_categories(base / "sceneCategories.txt")
        missing = [p[0] for p in pairs if p[0].stem not in categories]
        if missing:
            raise ValueError(
                f"{base / 'sceneCategories.txt'} has no scene for {len(missing)} image(s), e.g. "
                f"{missing[0].name}; the file does not match the images"
            )
        return [p for p in pairs if scene_matches(categories[p[0].stem], include, exclude)]

    def _select_by_content(
        self, pairs: list, min_classes: int, min_fraction: float, cache: str | None
    ) -> list:
        stems = [p[0].stem for p in pairs]
        key = hashlib.sha1(
            json.dumps([stems, self.kept, min_classes, min_fraction]).encode()
        ).hexdigest()
        cache_path = Path(cache).expanduser() if cache else None
        if cache_path is not None and cache_path.is_file():
            stored = json.loads(cache_path.read_text())
            if stored.get("key") == key:
                chosen = set(stored["stems"])
                return [p for p in pairs if p[0].stem in chosen]
        kept = np.zeros(256, dtype=bool)
        kept[self.kept] = True
        selected = []
        for pair in pairs:
            raw = np.asarray(open_image(pair[1]))
            counts = np.bincount(raw.ravel().astype(np.int64), minlength=256)[:256]
            present = int(((counts > 0) & kept).sum())
            fraction = counts[kept].sum() / max(1, raw.size)
            if present >= min_classes and fraction >= min_fraction:
                selected.append(pair)
        if cache_path is not None:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps({"key": key, "stems": [p[0].stem for p in selected]}))
        return selected

    def convert_label(self, image: Image.Image, path: Path) -> np.ndarray:
        label = super().convert_label(image, path)
        if not self.remap or label.max(initial=0) > 255:
            return label
        return self.lut[label]
