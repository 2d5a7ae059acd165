"""How classes look: albedo pairs, texture and shading gains per class, and the global styles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spadelab.data.synthetic.spec import (
    BUSH,
    FLOWER,
    GRASS,
    HOUSE,
    MOUNTAIN,
    PATH,
    ROCK,
    SAND,
    STREAM_STYLE,
    STYLES,
    TREE,
    WATER,
)


def _rgb(*values: tuple[float, float, float]) -> np.ndarray:
    return np.array(values, dtype=np.float64)


# Albedo pairs per class (colour A, colour B) blended by low-frequency noise. Sky and cloud
# rows are placeholders: those pixels are repainted with the style's own colours.
ALBEDO_A = _rgb(
    (0.5, 0.7, 0.9),
    (0.95, 0.95, 0.97),
    (0.42, 0.42, 0.5),
    (0.97, 0.98, 1.0),
    (0.08, 0.27, 0.42),
    (0.27, 0.52, 0.14),
    (0.07, 0.25, 0.08),
    (0.62, 0.6, 0.56),
    (0.9, 0.82, 0.6),
    (0.6, 0.45, 0.3),
    # The hard variant's classes (bush, flower, house walls; roofs are coloured by context).
    (0.3, 0.38, 0.1),
    (0.95, 0.85, 0.2),
    (0.85, 0.78, 0.62),
)
ALBEDO_B = _rgb(
    (0.5, 0.7, 0.9),
    (0.95, 0.95, 0.97),
    (0.31, 0.31, 0.38),
    (0.66, 0.78, 0.98),
    (0.12, 0.33, 0.46),
    (0.46, 0.6, 0.2),
    (0.14, 0.34, 0.1),
    (0.5, 0.48, 0.45),
    (0.8, 0.7, 0.49),
    (0.5, 0.37, 0.24),
    (0.38, 0.44, 0.14),
    (0.92, 0.35, 0.6),
    (0.72, 0.62, 0.48),
)
# Winter keeps the layout but dresses the ground in snow.
WINTER_A = ALBEDO_A.copy()
WINTER_B = ALBEDO_B.copy()
for _cls, _a, _b in (
    (GRASS, (0.9, 0.92, 0.96), (0.78, 0.82, 0.88)),
    (TREE, (0.08, 0.2, 0.14), (0.12, 0.26, 0.18)),
    (SAND, (0.86, 0.84, 0.8), (0.76, 0.74, 0.7)),
    (PATH, (0.5, 0.46, 0.44), (0.42, 0.38, 0.36)),
    (WATER, (0.3, 0.4, 0.5), (0.42, 0.52, 0.6)),
    (ROCK, (0.34, 0.32, 0.31), (0.26, 0.25, 0.25)),
    (MOUNTAIN, (0.55, 0.56, 0.62), (0.42, 0.43, 0.5)),
    (BUSH, (0.3, 0.33, 0.28), (0.42, 0.45, 0.42)),
    (FLOWER, (0.62, 0.5, 0.45), (0.55, 0.45, 0.52)),
):
    WINTER_A[_cls], WINTER_B[_cls] = _a, _b

# Hard variant: colours that depend on a pixel's neighbours, (class, neighbour classes, target
# colour, strength). A pixel moves towards the target by strength x its closeness to the
# neighbours (the neighbours' share of a small window, saturating at a quarter). The label of a
# pixel alone then no longer fixes its colour: a generator has to look around it.
NEIGHBOUR_TONES: tuple[tuple[int, tuple[int, ...], tuple[float, float, float], float], ...] = (
    (TREE, (WATER,), (0.02, 0.1, 0.12), 0.8),  # trees by the water: dark, blue-green
    (GRASS, (PATH, ROCK, HOUSE), (0.52, 0.46, 0.26), 0.85),  # trampled: dry, brown
    (SAND, (WATER,), (0.45, 0.36, 0.24), 0.8),  # wet sand along the shore
    (FLOWER, (WATER,), (0.4, 0.35, 1.0), 0.9),  # flowers by the water: blue irises
    (BUSH, (TREE,), (0.06, 0.14, 0.05), 0.75),  # bushes under the trees: in shade
)
# Snow lit by the open sky (the summits) stays white; snow away from it turns blue-grey.
SNOW_AWAY_FROM_SKY = ((0.45, 0.52, 0.7), 0.7)
# Roofs: slate among trees, terracotta in the open.
ROOF_OPEN, ROOF_WOODS = (0.72, 0.27, 0.16), (0.3, 0.32, 0.38)
ROOF_SHARE = 0.42  # the upper part of a house (as a fraction of its height) that is roof

# Camera height above the ground in scene units: sets how fast ground texture shrinks.
CAMERA_HEIGHT = 0.3

# How strongly low-frequency noise mixes A/B, and how much fine grain each class gets.
# (The last three entries: the hard variant's bush, flower, house.)
MIX_GAIN = np.array([0.0, 0.0, 2.0, 1.2, 1.0, 2.2, 1.5, 1.5, 1.5, 1.5, 1.5, 3.0, 0.8])
# Directional shading per class: snow is bright enough that full shading would swamp it.
SHADE_GAIN = np.array([0.0, 0.0, 1.0, 0.45, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.6, 1.0])
GRAIN = np.array([0.0, 0.04, 0.25, 0.08, 0.1, 0.3, 0.5, 0.35, 0.16, 0.3, 0.45, 0.3, 0.12])
# Snow cover is smooth: the grass and sand grain would read as dirt on white.
WINTER_GRAIN = GRAIN.copy()
WINTER_GRAIN[[GRASS, SAND]] = 0.08


@dataclass(frozen=True)
class Style:
    sky_top: tuple[float, float, float]
    sky_horizon: tuple[float, float, float]
    cloud_light: tuple[float, float, float]
    cloud_shade: tuple[float, float, float]
    light: tuple[float, float, float]  # multiplies every lit (non-sky) surface
    contrast: float  # strength of directional shading (low sun = strong)
    saturation: float
    haze: float  # aerial perspective strength towards the horizon
    reflection: float  # how mirror-like water is
    glow: tuple[float, float, float]  # sun glow added to the sky near the horizon
    winter: bool


STYLE_TABLE: tuple[Style, ...] = (
    Style(
        sky_top=(0.22, 0.45, 0.85),
        sky_horizon=(0.66, 0.8, 0.95),
        cloud_light=(1.0, 0.99, 0.95),
        cloud_shade=(0.7, 0.68, 0.67),
        light=(1.05, 1.04, 1.0),
        contrast=0.35,
        saturation=1.0,
        haze=0.3,
        reflection=0.35,
        glow=(0.0, 0.0, 0.0),
        winter=False,
    ),
    Style(
        sky_top=(0.2, 0.18, 0.42),
        sky_horizon=(1.0, 0.58, 0.28),
        cloud_light=(1.0, 0.64, 0.45),
        cloud_shade=(0.42, 0.26, 0.4),
        light=(0.96, 0.78, 0.62),
        contrast=0.5,
        saturation=0.95,
        haze=0.3,
        reflection=0.55,
        glow=(0.6, 0.35, 0.1),
        winter=False,
    ),
    Style(
        sky_top=(0.6, 0.63, 0.67),
        sky_horizon=(0.8, 0.82, 0.84),
        cloud_light=(0.5, 0.52, 0.56),
        cloud_shade=(0.33, 0.35, 0.39),
        light=(0.78, 0.8, 0.84),
        contrast=0.1,
        saturation=0.55,
        haze=0.45,
        reflection=0.3,
        glow=(0.0, 0.0, 0.0),
        winter=False,
    ),
    Style(
        sky_top=(0.42, 0.6, 0.85),
        sky_horizon=(0.86, 0.9, 0.96),
        cloud_light=(0.96, 0.97, 0.99),
        cloud_shade=(0.72, 0.76, 0.83),
        light=(0.98, 1.0, 1.04),
        contrast=0.3,
        saturation=0.85,
        haze=0.3,
        reflection=0.3,
        glow=(0.0, 0.0, 0.0),
        winter=True,
    ),
)


def draw_style(seed: int, index: int) -> int:
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, STREAM_STYLE]))
    return int(rng.integers(len(STYLES)))
