"""What a synthetic scene is made of: classes, palette, styles, index ranges, argument checks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES: tuple[str, ...] = (
    "sky",
    "cloud",
    "mountain",
    "snow",
    "water",
    "grass",
    "tree",
    "rock",
    "sand",
    "path",
)
SKY, CLOUD, MOUNTAIN, SNOW, WATER, GRASS, TREE, ROCK, SAND, PATH = range(len(CLASSES))
LABEL_NC = len(CLASSES)
# Only these classes carry instance ids; everything else is "stuff" with instance 0.
THING_CLASSES: tuple[int, ...] = (TREE, ROCK)

PALETTE: np.ndarray = np.array(
    [
        (135, 200, 250),  # sky: light blue
        (215, 215, 230),  # cloud: pale lavender grey (kept apart from snow's pure white)
        (125, 105, 95),  # mountain: brown-grey
        (255, 255, 255),  # snow: white
        (30, 90, 200),  # water: deep blue
        (100, 190, 60),  # grass: light green
        (20, 95, 35),  # tree: dark green
        (140, 140, 140),  # rock: grey
        (235, 210, 140),  # sand: beige
        (165, 110, 60),  # path: brown
    ],
    dtype=np.uint8,
)
PALETTE.setflags(write=False)

STYLES: tuple[str, ...] = ("noon", "sunset", "overcast", "winter")

# Validation indices start here so train and val never share a scene for any num_train allowed.
VAL_INDEX_OFFSET = 10_000_000
SPLITS: tuple[str, ...] = ("train", "val")

# Stream tags for the random sub-streams of one sample; distinct so they are independent.
STREAM_SCENE, STREAM_TILE, STREAM_STYLE, STREAM_IMAGE, STREAM_NOISE = 1, 2, 3, 4, 5
# The hard variant's extras draw from their own stream, so the easy variant's draws (and hence
# its output, bit for bit) do not change.
STREAM_HARD = 6

# ---- the hard variant ------------------------------------------------------------------------
# Extra small-object classes come after the easy ones: easy class ids never move and every easy
# label map is a valid hard one.
HARD_CLASSES: tuple[str, ...] = (*CLASSES, "bush", "flower", "house")
BUSH, FLOWER, HOUSE = range(len(CLASSES), len(HARD_CLASSES))
HARD_THING_CLASSES: tuple[int, ...] = (TREE, ROCK, BUSH, HOUSE)
HARD_PALETTE: np.ndarray = np.concatenate(
    [
        PALETTE,
        np.array(
            [
                (150, 160, 30),  # bush: olive
                (240, 90, 190),  # flower: magenta
                (200, 55, 45),  # house: brick red
            ],
            dtype=np.uint8,
        ),
    ]
)
HARD_PALETTE.setflags(write=False)


@dataclass(frozen=True)
class Variant:
    """A benchmark variant: which classes its label maps use and how previews colour them."""

    name: str
    classes: tuple[str, ...]
    palette: np.ndarray
    thing_classes: tuple[int, ...]  # classes with instance ids

    @property
    def label_nc(self) -> int:
        return len(self.classes)


VARIANTS: dict[str, Variant] = {
    # easy: the label map determines each pixel's appearance up to texture noise and style.
    "easy": Variant("easy", CLASSES, PALETTE, THING_CLASSES),
    # hard: three more classes (small objects) and colours that depend on a pixel's neighbours
    # (trees by water, trampled grass, wet sand, snow under the sky, roofs among trees).
    "hard": Variant("hard", HARD_CLASSES, HARD_PALETTE, HARD_THING_CLASSES),
}


def get_variant(name: str) -> Variant:
    if not isinstance(name, str) or name not in VARIANTS:
        raise ValueError(
            f"data.dataset.variant={name!r} is unknown; choose one of {', '.join(VARIANTS)} "
            "(data=synthetic_hard selects hard with its label_nc)"
        )
    return VARIANTS[name]


def check_size(height: int, width: int) -> None:
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer (pixels)")


def check_seed_index(seed: int, index: int) -> None:
    for name, value in (("seed", seed), ("index", index)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name}={value!r} must be a non-negative integer")


def check_style(style: int | None) -> None:
    if style is None:
        return
    if not isinstance(style, (int, np.integer)) or isinstance(style, bool):
        raise ValueError(f"style={style!r} must be an int index into STYLES={STYLES} or None")
    if not 0 <= style < len(STYLES):
        options = ", ".join(f"{i}={name}" for i, name in enumerate(STYLES))
        raise ValueError(f"style={style} is out of range; choose one of {options} or None")
