"""Procedural landscapes: the embedded benchmark for semantic image synthesis.

Every sample is a pure function of ``(seed, index)``: a label map of ten landscape classes, an
instance map (every tree and rock has its own id) and an RGB rendering in one of four global
styles. Nothing is stored on disk, so the dataset needs no download and any size is free.

Geometry lives in *scene units*: ``v`` is the row position as a fraction of the image height
(0 = top) and ``x`` is the horizontal position in units of the image height, centred on the image
(``x = (col + 0.5 - W / 2) / H``). Rendering the same ``(seed, index)`` at 64x64 and 256x256
therefore gives the same scene, and a wider aspect ratio shows more of the same landscape instead
of stretching it (a 2:1 image is the square one plus more scenery to the left and right).
Objects (trees, rocks, extra lakes) are generated per unit-wide horizontal tile from their own
random stream, so the scene extends indefinitely and does not change with the aspect ratio.

The image depends on the label map (and instance map) plus randomness drawn from
``(seed, index)``: the colour of a pixel is a class albedo modulated by noise textures, shading
derived from the label geometry (ridge slopes, object extents, vertical runs) and the style's
lighting, so a generator can learn label -> appearance while still facing realistic variation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import uniform_filter, uniform_filter1d
from torch.utils.data import Dataset

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
_STREAM_SCENE, _STREAM_TILE, _STREAM_STYLE, _STREAM_IMAGE, _STREAM_NOISE = 1, 2, 3, 4, 5


# --------------------------------------------------------------------------------------------
# Hash-based value noise
# --------------------------------------------------------------------------------------------
# Lattice values come from an integer hash of the lattice coordinates (not from an RNG over a
# finite grid), so noise is defined on the whole plane: any crop, resolution or aspect ratio
# sees the same field.


def _keys(seed: int, index: int, stream: int, n: int) -> list[int]:
    state = np.random.SeedSequence([seed, index, stream]).generate_state(n)
    return [int(k) for k in state]


def _hash(ix: np.ndarray, iy: np.ndarray, key: int) -> np.ndarray:
    """Integer lattice coordinates -> float64 in [0, 1). Broadcasts ``ix`` against ``iy``."""
    # astype wraps negative int64 coordinates modulo 2**32, which is exactly what a hash wants.
    h = (ix.astype(np.uint32) * np.uint32(0x8DA6B343)) ^ (
        iy.astype(np.uint32) * np.uint32(0xD8163841)
    )
    h ^= np.uint32(key)
    h ^= h >> 16
    h *= np.uint32(0x7FEB352D)
    h ^= h >> 15
    h *= np.uint32(0x846CA68B)
    h ^= h >> 16
    return (h >> 8).astype(np.float64) * (1.0 / 16777216.0)


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)


def _noise_at(x: np.ndarray, y: np.ndarray, key: int) -> np.ndarray:
    """2D value noise at arbitrary points (same arithmetic as :func:`_noise_grid`)."""
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = _fade(x - x0), _fade(y - y0)
    ix, iy = x0.astype(np.int64), y0.astype(np.int64)
    v00, v10 = _hash(ix, iy, key), _hash(ix + 1, iy, key)
    v01, v11 = _hash(ix, iy + 1, key), _hash(ix + 1, iy + 1, key)
    a0 = v00 + (v10 - v00) * fx
    a1 = v01 + (v11 - v01) * fx
    return a0 + (a1 - a0) * fy


def _noise_grid(x: np.ndarray, y: np.ndarray, key: int) -> np.ndarray:
    """2D value noise on the tensor grid ``y (H,) x x (W,)`` -> (H, W).

    Hashes only the few lattice points the grid touches and interpolates separably, which is
    what keeps a 256x256 texture at well under a millisecond per octave.
    """
    if x.size == 0 or y.size == 0:
        return np.zeros((y.size, x.size))
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = _fade(x - x0), _fade(y - y0)
    ix, iy = x0.astype(np.int64), y0.astype(np.int64)
    lx = np.arange(ix.min(), ix.max() + 2)
    ly = np.arange(iy.min(), iy.max() + 2)
    lattice = _hash(lx[None, :], ly[:, None], key)
    cx, cy = ix - lx[0], iy - ly[0]
    rows = lattice[:, cx] + (lattice[:, cx + 1] - lattice[:, cx]) * fx
    return rows[cy] + (rows[cy + 1] - rows[cy]) * fy[:, None]


def _noise1(x: np.ndarray, key: int) -> np.ndarray:
    """1D value noise at arbitrary points."""
    x0 = np.floor(x)
    f = _fade(x - x0)
    ix = x0.astype(np.int64)
    zero = np.zeros_like(ix)
    a, b = _hash(ix, zero, key), _hash(ix + 1, zero, key)
    return a + (b - a) * f


def _octave_key(key: int, octave: int) -> int:
    return (key + octave * 0x9E3779B9) & 0xFFFFFFFF


def _fbm_grid(
    x: np.ndarray,
    y: np.ndarray,
    key: int,
    octaves: int,
    pixels_per_unit: float | None = None,
) -> np.ndarray:
    """Fractal value noise in [0, 1] on a grid (coordinates already scaled to lattice units).

    ``pixels_per_unit`` (pixels per lattice cell of the first octave) fades out octaves finer
    than the pixel grid: textures then blur rather than alias at low resolution. Layout noise
    passes None, because label geometry must not depend on the resolution.
    """
    total = np.zeros((y.size, x.size))
    norm = 0.0
    for octave in range(octaves):
        scale, amp = 2.0**octave, 0.5**octave
        norm += amp
        weight = 1.0
        if pixels_per_unit is not None:
            cells_per_pixel = scale / pixels_per_unit
            weight = float(np.clip((0.5 - cells_per_pixel) / 0.25, 0.0, 1.0))
        if weight <= 0.0:
            total += 0.5 * amp
            continue
        # A fractional offset per octave keeps the lattices from lining up into a visible grid.
        n = _noise_grid(
            x * scale + 0.37 * octave, y * scale + 0.61 * octave, _octave_key(key, octave)
        )
        total += amp * (0.5 + weight * (n - 0.5))
    return total / norm


def _fbm1(x: np.ndarray, key: int, octaves: int, ridged: bool = False) -> np.ndarray:
    total = np.zeros_like(x, dtype=np.float64)
    norm = 0.0
    for octave in range(octaves):
        scale, amp = 2.0**octave, 0.5**octave
        n = _noise1(x * scale + 0.37 * octave, _octave_key(key, octave))
        if ridged:
            # Folding the noise makes sharp crests: mountains, not rolling hills.
            n = 1.0 - np.abs(2.0 * n - 1.0)
        total += amp * n
        norm += amp
    return total / norm


# --------------------------------------------------------------------------------------------
# Scene description (resolution independent)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ridge:
    amplitude: float  # peak height above the horizon, in scene units
    frequency: float  # lattice cells per scene unit
    key: int


@dataclass(frozen=True)
class _Lake:
    x: float
    v: float
    rx: float
    ry: float
    harmonics: tuple[tuple[float, float, float], ...]  # (order, amplitude, phase)
    rim: float  # sand rim as a factor of the radius (1 = no rim)


@dataclass(frozen=True)
class _Path:
    vanish_x: float  # where the path would meet the horizon
    offset: float  # lateral world offset of the path from the vanishing line
    amplitude: float  # world amplitude of the winding
    omega: float
    phase: float
    width: float  # world width (screen width = width * depth fraction)
    t_end: float  # depth fraction where the path disappears into the distance


@dataclass(frozen=True)
class _Coast:
    depth: float  # mean depth fraction of the sea
    slope: float  # how the shoreline tilts across the image
    wobble: float
    beach: float  # beach width relative to the sea depth
    key: int


@dataclass(frozen=True)
class _Scene:
    seed: int
    index: int
    horizon: float
    cloud_threshold: float  # > 1 means a clear sky
    cloud_key: int
    ridges: tuple[_Ridge, ...]
    snow_altitude: float  # altitude above the horizon where snow starts (inf = no snow)
    snow_key: int
    sand_threshold: float
    sand_key: int
    coast: _Coast | None
    lakes: tuple[_Lake, ...]
    path: _Path | None
    forest: float  # tree clusters per tile
    cluster_size: float
    scattered_trees: float
    rocks: float
    conifer_fraction: float
    tree_height: float
    extra_lakes: float  # probability of an extra lake per tile

    def depth_to_v(self, t: np.ndarray | float) -> np.ndarray | float:
        """Ground depth fraction (0 = horizon, 1 = bottom edge) -> row position v."""
        return self.horizon + t * (1.0 - self.horizon)


def _lake(rng: np.random.Generator, x: float, t: float, size: float, horizon: float) -> _Lake:
    # Perspective: a lake lies flat, so its screen height is a fraction of its width that
    # grows with how close it is.
    rx = size * (0.35 + 0.9 * t)
    ry = rx * rng.uniform(0.16, 0.28) * (0.6 + 0.8 * t)
    harmonics = tuple(
        (
            float(k),
            float(rng.uniform(0.03, 0.12) / (1 + 0.3 * k)),
            float(rng.uniform(0, 2 * np.pi)),
        )
        for k in (2, 3, 4, 5, 7)
    )
    rim = float(rng.uniform(1.12, 1.3)) if rng.random() < 0.5 else 1.0
    return _Lake(x, horizon + t * (1.0 - horizon), rx, ry, harmonics, rim)


def _sample_scene(seed: int, index: int) -> _Scene:
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, _STREAM_SCENE]))
    keys = _keys(seed, index, _STREAM_NOISE, 8)
    horizon = float(rng.uniform(0.32, 0.6))
    kind = rng.choice(3, p=[0.45, 0.3, 0.25])  # lake, coast, meadow

    cloud_threshold = float(rng.uniform(0.5, 0.68)) if rng.random() < 0.85 else 2.0

    n_ridges = int(rng.choice(3, p=[0.08, 0.32, 0.6]))
    far_amp = horizon * float(rng.uniform(0.35, 0.95))
    ridges = []
    if n_ridges >= 1:
        ridges.append(_Ridge(far_amp, float(rng.uniform(0.8, 2.0)), keys[0]))
    if n_ridges == 2:
        near_amp = far_amp * float(rng.uniform(0.3, 0.6))
        ridges.append(_Ridge(near_amp, float(rng.uniform(1.5, 3.0)), keys[1]))
    snow_altitude = far_amp * float(rng.uniform(0.4, 0.8)) if rng.random() < 0.75 else np.inf

    coast = None
    lakes: list[_Lake] = []
    if kind == 1:
        coast = _Coast(
            depth=float(rng.uniform(0.1, 0.4)),
            slope=float(rng.uniform(-0.5, 0.5)),
            wobble=float(rng.uniform(0.03, 0.12)),
            beach=float(rng.uniform(0.2, 0.6)),
            key=keys[2],
        )
    elif kind == 0:
        t = float(rng.uniform(0.15, 0.6))
        lakes.append(
            _lake(rng, float(rng.uniform(-0.35, 0.35)), t, rng.uniform(0.2, 0.45), horizon)
        )

    path = None
    if rng.random() < 0.6:
        path = _Path(
            vanish_x=float(rng.uniform(-0.3, 0.3)),
            offset=float(rng.uniform(-0.5, 0.5)),
            amplitude=float(rng.uniform(0.05, 0.35)),
            omega=float(rng.uniform(0.3, 1.0)),
            phase=float(rng.uniform(0, 2 * np.pi)),
            width=float(rng.uniform(0.07, 0.16)),
            t_end=float(rng.uniform(0.06, 0.3)),
        )

    return _Scene(
        seed=seed,
        index=index,
        horizon=horizon,
        cloud_threshold=cloud_threshold,
        cloud_key=keys[3],
        ridges=tuple(ridges),
        snow_altitude=float(snow_altitude),
        snow_key=keys[4],
        sand_threshold=float(rng.uniform(0.64, 0.8)),
        sand_key=keys[5],
        coast=coast,
        lakes=tuple(lakes),
        path=path,
        forest=float(rng.uniform(0.0, 2.5)),
        cluster_size=float(rng.uniform(2.0, 9.0)),
        scattered_trees=float(rng.uniform(0.0, 4.0)),
        rocks=float(rng.uniform(0.5, 8.0)),
        conifer_fraction=float(rng.uniform(0.0, 1.0)),
        tree_height=float(rng.uniform(0.17, 0.3)),
        extra_lakes=0.3 if kind == 0 else 0.1 if kind == 2 else 0.0,
    )


# Object kinds in the per-tile object table.
_CONIFER, _DECIDUOUS, _ROCK = 0, 1, 2


@dataclass(frozen=True)
class _Object:
    kind: int
    x: float  # base (where it touches the ground)
    v: float
    size: float  # tree height or rock radius
    aspect: float  # width / height (trees) or vertical / horizontal radius (rocks)
    shape: tuple[float, ...]  # kind-specific shape parameters


def _zigzag(k: int) -> int:
    # SeedSequence wants non-negative entropy; interleave negative tile indices.
    return 2 * k if k >= 0 else -2 * k - 1


def _tile_objects(scene: _Scene, tile: int) -> tuple[list[_Object], list[_Lake]]:
    rng = np.random.default_rng(
        np.random.SeedSequence([scene.seed, scene.index, _STREAM_TILE, _zigzag(tile)])
    )
    lakes = []
    if rng.random() < scene.extra_lakes:
        lakes.append(
            _lake(
                rng,
                tile + rng.random(),
                rng.uniform(0.1, 0.5),
                rng.uniform(0.12, 0.3),
                scene.horizon,
            )
        )

    xs: list[np.ndarray] = []
    ts: list[np.ndarray] = []
    for _ in range(rng.poisson(scene.forest)):
        centre_x = tile + rng.random()
        centre_t = 0.03 + 0.85 * rng.random() ** 1.4
        n = 1 + rng.poisson(scene.cluster_size)
        spread = 0.05 + 0.12 * centre_t
        xs.append(centre_x + rng.normal(0.0, spread, n))
        ts.append(centre_t + rng.normal(0.0, 0.15 * spread, n))
    n = rng.poisson(scene.scattered_trees)
    xs.append(tile + rng.random(n))
    ts.append(0.03 + 1.0 * rng.random(n) ** 1.2)
    tree_x, tree_t = np.concatenate(xs), np.concatenate(ts)
    n_trees = tree_x.size
    conifer = rng.random(n_trees) < scene.conifer_fraction
    heights = scene.tree_height * rng.uniform(0.7, 1.3, n_trees)
    aspects = np.where(conifer, rng.uniform(0.4, 0.65, n_trees), rng.uniform(0.6, 0.95, n_trees))
    tiers = rng.integers(3, 6, n_trees)
    phases = rng.uniform(0, 2 * np.pi, (n_trees, 3))

    n_rocks = rng.poisson(scene.rocks)
    rock_x = tile + rng.random(n_rocks)
    rock_t = 0.04 + 1.0 * rng.random(n_rocks) ** 0.8
    rock_r = rng.uniform(0.012, 0.03, n_rocks) * np.where(rng.random(n_rocks) < 0.12, 2.5, 1.0)
    rock_aspect = rng.uniform(0.5, 0.85, n_rocks)
    rock_phase = rng.uniform(0, 2 * np.pi, (n_rocks, 3))

    objects = []
    for i in range(n_trees):
        t = float(tree_t[i])
        if not 0.005 < t < 1.2:
            continue
        # Perspective: apparent size grows linearly with distance below the horizon.
        size = float(heights[i]) * (0.08 + 0.95 * t)
        kind = _CONIFER if conifer[i] else _DECIDUOUS
        shape = (float(tiers[i]), *map(float, phases[i]))
        objects.append(
            _Object(
                kind, float(tree_x[i]), float(scene.depth_to_v(t)), size, float(aspects[i]), shape
            )
        )
    for i in range(n_rocks):
        t = float(rock_t[i])
        size = float(rock_r[i]) * (0.25 + 1.2 * t)
        objects.append(
            _Object(
                _ROCK,
                float(rock_x[i]),
                float(scene.depth_to_v(t)),
                size,
                float(rock_aspect[i]),
                tuple(map(float, rock_phase[i])),
            )
        )
    return objects, lakes


# --------------------------------------------------------------------------------------------
# Region tests in scene coordinates (work on any broadcastable arrays)
# --------------------------------------------------------------------------------------------


def _depth(scene: _Scene, v: np.ndarray) -> np.ndarray:
    return (v - scene.horizon) / (1.0 - scene.horizon)


def _radial(harmonics: tuple[tuple[float, float, float], ...], theta: np.ndarray) -> np.ndarray:
    r = np.ones_like(theta)
    for order, amp, phase in harmonics:
        r += amp * np.cos(order * theta + phase)
    return r


def _lake_mask(lake: _Lake, x: np.ndarray, v: np.ndarray, scale: float = 1.0) -> np.ndarray:
    dx, dv = (x - lake.x) / lake.rx, (v - lake.v) / lake.ry
    r = _radial(lake.harmonics, np.arctan2(dv, dx)) * scale
    return dx * dx + dv * dv < r * r


def _sea_and_beach(scene: _Scene, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth fractions of the shoreline and the beach's inner edge for each ``x``."""
    coast = scene.coast
    assert coast is not None
    wobble = coast.wobble * (_fbm1(x * 2.0, coast.key, 4) - 0.5) * 2.0
    shore = np.maximum(coast.depth + coast.slope * x + wobble, 0.0)
    beach = shore * (1.0 + coast.beach) + 0.02 * (shore > 0)
    return shore, beach


def _path_centre(path: _Path, t: np.ndarray) -> np.ndarray:
    # A world-space winding line seen in perspective: lateral offsets shrink with depth t and
    # the winding frequency in screen space rises towards the horizon.
    safe_t = np.maximum(t, 1e-3)
    return path.vanish_x + safe_t * (
        path.offset + path.amplitude * np.sin(path.omega / safe_t + path.phase)
    )


def _path_mask(scene: _Scene, x: np.ndarray, v: np.ndarray) -> np.ndarray:
    path = scene.path
    assert path is not None
    t = _depth(scene, v)
    half = 0.5 * path.width * t
    return (t > path.t_end) & (np.abs(x - _path_centre(path, t)) < half)


def _water_at(scene: _Scene, lakes: list[_Lake], x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether points are water or shore sand (nothing grows there)."""
    t = _depth(scene, v)
    wet = np.zeros(np.broadcast(x, v).shape, dtype=bool)
    if scene.coast is not None:
        _, beach = _sea_and_beach(scene, x)
        wet |= t < beach
    for lake in lakes:
        wet |= _lake_mask(lake, x, v, lake.rim)
    return wet & (t >= 0)


# --------------------------------------------------------------------------------------------
# Rasterisation
# --------------------------------------------------------------------------------------------


def _coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    xs = (np.arange(width) + 0.5 - width / 2.0) / height
    vs = (np.arange(height) + 0.5) / height
    return xs, vs


def _pixel_span(lo: float, hi: float, scale: float, shift: float, n: int) -> tuple[int, int]:
    """Scene interval [lo, hi] -> half-open range of pixel indices whose centres may be inside."""
    a = int(np.floor(lo * scale + shift - 0.5))
    b = int(np.ceil(hi * scale + shift - 0.5)) + 1
    return max(a, 0), min(b, n)


def _object_mask(obj: _Object, x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Pixels (given as x (1, w) and v (h, 1) scene coordinates) covered by one object."""
    dx = x - obj.x
    if obj.kind == _CONIFER:
        tiers, *_ = obj.shape
        half = 0.5 * obj.size * obj.aspect
        trunk = 0.12 * obj.size
        s = (v - (obj.v - obj.size)) / (obj.size - trunk)  # 0 at the tip, 1 at the crown base
        # A sawtooth on the width gives the stacked-tier silhouette of a fir.
        profile = s * (0.68 + 0.32 * np.mod(s * tiers, 1.0))
        crown = (s >= 0) & (s <= 1) & (np.abs(dx) <= half * profile)
        stem = (v >= obj.v - trunk) & (v <= obj.v) & (np.abs(dx) <= max(0.1 * half, 0.004))
        return crown | stem
    if obj.kind == _DECIDUOUS:
        _, p1, p2, p3 = obj.shape
        trunk = 0.3 * obj.size
        ry = 0.5 * (obj.size - trunk) * 1.05
        rx = 0.5 * obj.size * obj.aspect
        cv = obj.v - trunk - ry * 0.95
        ex, ey = dx / rx, (v - cv) / ry
        theta = np.arctan2(ey, ex)
        r = 1.0 + 0.1 * np.cos(3 * theta + p1) + 0.07 * np.cos(5 * theta + p2)
        r += 0.05 * np.cos(8 * theta + p3)
        crown = ex * ex + ey * ey <= r * r
        stem = (v >= cv) & (v <= obj.v) & (np.abs(dx) <= max(0.08 * rx, 0.004))
        return crown | stem
    rx = obj.size
    ry = obj.size * obj.aspect
    cv = obj.v - 0.55 * ry  # sits on the ground, slightly buried
    ex, ey = dx / rx, (v - cv) / ry
    theta = np.arctan2(ey, ex)
    p1, p2, p3 = obj.shape
    r = 1.0 + 0.12 * np.cos(2 * theta + p1) + 0.08 * np.cos(3 * theta + p2)
    r += 0.05 * np.cos(5 * theta + p3)
    return (ex * ex + ey * ey <= r * r) & (v <= obj.v)


def _object_extent(obj: _Object) -> tuple[float, float, float, float]:
    """Scene-space bounding box (x0, x1, v0, v1), slightly generous."""
    if obj.kind == _ROCK:
        half_w, top, bottom = obj.size * 1.3, obj.v - obj.size * obj.aspect * 1.9, obj.v
    else:
        half_w, top, bottom = 0.5 * obj.size * obj.aspect * 1.25, obj.v - obj.size * 1.05, obj.v
    return obj.x - half_w, obj.x + half_w, top, bottom


def _check_size(height: int, width: int) -> None:
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer (pixels)")


def _check_seed_index(seed: int, index: int) -> None:
    for name, value in (("seed", seed), ("index", index)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name}={value!r} must be a non-negative integer")


def render_layout(seed: int, index: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The label map (H, W) uint8 and instance map (H, W) int32 of scene ``(seed, index)``.

    Instance ids are positive for trees and rocks (each object its own id, stable across
    resolutions) and 0 elsewhere.
    """
    _check_seed_index(seed, index)
    _check_size(height, width)
    scene = _sample_scene(seed, index)
    xs, vs = _coords(height, width)
    h = scene.horizon
    label = np.full((height, width), SKY, dtype=np.uint8)
    instance = np.zeros((height, width), dtype=np.int32)
    sky_rows = int(np.searchsorted(vs, h))  # rows with v < horizon
    ground = slice(sky_rows, height)
    vs_sky, vs_ground = vs[:sky_rows], vs[sky_rows:]

    # Clouds: anisotropic fbm, strongest high in the sky and fading towards the horizon.
    if scene.cloud_threshold <= 1.0 and sky_rows > 0:
        field = _fbm_grid(xs * 2.2, vs_sky * 6.0, scene.cloud_key, 5)
        weight = np.clip(1.0 - (vs_sky / h) ** 2, 0.0, 1.0) ** 0.5
        clouds = field * (0.65 + 0.35 * weight[:, None]) > scene.cloud_threshold
        clouds &= weight[:, None] > 0.15
        label[:sky_rows][clouds] = CLOUD

    # Mountains: ridgelines of folded 1D fbm, far ridge first, near ridge painted over it.
    if scene.ridges and sky_rows > 0:
        mountain = np.zeros((sky_rows, width), dtype=bool)
        for ridge in scene.ridges:
            # Folded low octaves give the peaks; plain high octaves only roughen the line
            # (folded high octaves would stand up as needles).
            shape = _fbm1(xs * ridge.frequency, ridge.key, 3, ridged=True)
            detail = _fbm1(xs * ridge.frequency * 8.0, ridge.key ^ 0x3C3C, 3)
            # Summed octaves crowd around 0.5; stretch so crests reach the full amplitude.
            shape = np.clip((shape - 0.25) / 0.6, 0.0, 1.0) ** 1.15
            top = h - ridge.amplitude * (0.06 + 0.84 * shape + 0.1 * detail)
            mountain |= vs_sky[:, None] >= top[None, :]
        if np.isfinite(scene.snow_altitude):
            jag = _fbm_grid(xs * 14.0, vs_sky * 14.0, scene.snow_key, 3)
            edge = _fbm1(xs * 5.0, scene.snow_key ^ 0x5A5A, 3)
            altitude = (h - vs_sky)[:, None]
            wander = 0.25 * scene.ridges[0].amplitude
            snowline = scene.snow_altitude + wander * (edge[None, :] - 0.5) + 0.05 * (jag - 0.5)
            snow = mountain & (altitude > snowline)
        else:
            snow = np.zeros_like(mountain)
        label[:sky_rows][mountain] = MOUNTAIN
        label[:sky_rows][snow] = SNOW

    if sky_rows == height:
        return label, instance

    # Ground: grass with sand patches.
    label[ground] = GRASS
    sand = _fbm_grid(xs * 2.5, vs_ground * 5.0, scene.sand_key, 3) > scene.sand_threshold
    label[ground][sand] = SAND

    gx, gv = xs[None, :], vs_ground[:, None]
    if scene.path is not None:
        label[ground][_path_mask(scene, gx, gv)] = PATH

    # Objects and extra lakes from every tile the view touches, plus a margin wide enough for
    # the widest object (a near tree or lake) rooted just outside the view.
    half_view = width / (2.0 * height)
    margin = 0.35
    tiles = range(int(np.floor(-half_view - margin)), int(np.floor(half_view + margin)) + 1)
    lakes = list(scene.lakes)
    objects: list[_Object] = []
    for tile in tiles:
        tile_objects, tile_lakes = _tile_objects(scene, tile)
        objects.extend(tile_objects)
        lakes.extend(tile_lakes)

    t_ground = _depth(scene, gv)
    if scene.coast is not None:
        shore, beach = _sea_and_beach(scene, xs)
        label[ground][t_ground < beach[None, :]] = SAND
        label[ground][t_ground < shore[None, :]] = WATER
    for lake in lakes:
        if lake.rim > 1.0:
            label[ground][_lake_mask(lake, gx, gv, lake.rim)] = SAND
    for lake in lakes:
        label[ground][_lake_mask(lake, gx, gv)] = WATER

    # Nothing grows in water, on the beach or (for trees) on the path. Tested at the object's
    # base point in scene coordinates so the decision is the same at every resolution.
    objects = [obj for obj in objects if abs(obj.x) <= half_view + margin]
    if objects:
        base_x = np.array([obj.x for obj in objects])
        base_v = np.array([obj.v for obj in objects])
        blocked = _water_at(scene, lakes, base_x, base_v)
        if scene.path is not None:
            is_tree = np.array([obj.kind != _ROCK for obj in objects])
            half_w = np.array([0.3 * obj.size * obj.aspect for obj in objects])
            t = _depth(scene, base_v)
            gap = np.abs(base_x - _path_centre(scene.path, t))
            on_path = (gap < 0.5 * scene.path.width * t + half_w) & (t > scene.path.t_end)
            blocked |= is_tree & on_path
        keep = [obj for obj, bad in zip(objects, blocked) if not bad]
    else:
        keep = []
    # Painter's order: far objects (small v) first so near ones overlap them.
    keep.sort(key=lambda o: o.v)
    for object_id, obj in enumerate(keep, start=1):
        x0, x1, v0, v1 = _object_extent(obj)
        c0, c1 = _pixel_span(x0, x1, height, width / 2.0, width)
        r0, r1 = _pixel_span(v0, v1, height, 0.0, height)
        if c0 >= c1 or r0 >= r1:
            continue
        mask = _object_mask(obj, xs[None, c0:c1], vs[r0:r1, None])
        label[r0:r1, c0:c1][mask] = ROCK if obj.kind == _ROCK else TREE
        instance[r0:r1, c0:c1][mask] = object_id
    return label, instance


# --------------------------------------------------------------------------------------------
# Appearance
# --------------------------------------------------------------------------------------------


def _rgb(*values: tuple[float, float, float]) -> np.ndarray:
    return np.array(values, dtype=np.float64)


# Albedo pairs per class (colour A, colour B) blended by low-frequency noise. Sky and cloud
# rows are placeholders: those pixels are repainted with the style's own colours.
_ALBEDO_A = _rgb(
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
)
_ALBEDO_B = _rgb(
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
)
# Winter keeps the layout but dresses the ground in snow.
_WINTER_A = _ALBEDO_A.copy()
_WINTER_B = _ALBEDO_B.copy()
for _cls, _a, _b in (
    (GRASS, (0.9, 0.92, 0.96), (0.78, 0.82, 0.88)),
    (TREE, (0.08, 0.2, 0.14), (0.12, 0.26, 0.18)),
    (SAND, (0.86, 0.84, 0.8), (0.76, 0.74, 0.7)),
    (PATH, (0.5, 0.46, 0.44), (0.42, 0.38, 0.36)),
    (WATER, (0.3, 0.4, 0.5), (0.42, 0.52, 0.6)),
    (ROCK, (0.34, 0.32, 0.31), (0.26, 0.25, 0.25)),
    (MOUNTAIN, (0.55, 0.56, 0.62), (0.42, 0.43, 0.5)),
):
    _WINTER_A[_cls], _WINTER_B[_cls] = _a, _b

# Camera height above the ground in scene units: sets how fast ground texture shrinks.
_CAMERA_HEIGHT = 0.3

# How strongly low-frequency noise mixes A/B, and how much fine grain each class gets.
_MIX_GAIN = np.array([0.0, 0.0, 2.0, 1.2, 1.0, 2.2, 1.5, 1.5, 1.5, 1.5])
# Directional shading per class: snow is bright enough that full shading would swamp it.
_SHADE_GAIN = np.array([0.0, 0.0, 1.0, 0.45, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
_GRAIN = np.array([0.0, 0.04, 0.25, 0.08, 0.1, 0.3, 0.5, 0.35, 0.16, 0.3])
# Snow cover is smooth: the grass and sand grain would read as dirt on white.
_WINTER_GRAIN = _GRAIN.copy()
_WINTER_GRAIN[[GRASS, SAND]] = 0.08


@dataclass(frozen=True)
class _Style:
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


_STYLE_TABLE: tuple[_Style, ...] = (
    _Style(
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
    _Style(
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
    _Style(
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
    _Style(
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


def _run_bounds(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel, the first and last row of the vertical run of ``mask`` containing it.

    Values are meaningful only where ``mask`` is true.
    """
    height = mask.shape[0]
    rows = np.arange(height)[:, None]
    above = np.zeros_like(mask)
    above[1:] = mask[:-1]
    start = np.maximum.accumulate(np.where(mask & ~above, rows, -1), axis=0)
    below = np.zeros_like(mask)
    below[:-1] = mask[1:]
    end_marks = np.where(mask & ~below, rows, height)
    end = np.minimum.accumulate(end_marks[::-1], axis=0)[::-1]
    return start, end


def _window_fraction(cover: np.ndarray, size: int, upward: bool) -> np.ndarray:
    """Mean of ``cover`` over the ``size`` rows ending (upward) or starting at each row."""
    if not upward:
        return _window_fraction(cover[::-1], size, upward=True)[::-1]
    csum = np.cumsum(cover, axis=0)
    shifted = np.zeros_like(csum)
    shifted[size:] = csum[:-size]
    return (csum - shifted) / size


def _estimate_horizon(label: np.ndarray) -> float:
    """Row fraction where the ground starts, read from the label map itself.

    The image must be renderable from any label map (including edited ones), so shading never
    peeks at the hidden scene parameters.
    """
    height = label.shape[0]
    ground = np.isin(label, (WATER, GRASS, SAND, PATH, ROCK))
    has = ground.any(axis=0)
    if not has.any():
        return 1.0
    first = np.argmax(ground, axis=0)[has]
    return float((np.median(first) + 0.5) / height)


def _instance_stats(
    instance: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-instance top row, bottom row, centre column, half width for instances under mask."""
    ids = instance[mask]
    rows, cols = np.nonzero(mask)
    n = int(ids.max()) + 1 if ids.size else 1
    count = np.maximum(np.bincount(ids, minlength=n), 1)
    centre = np.bincount(ids, cols, minlength=n) / count
    top = np.full(n, instance.shape[0], dtype=np.int64)
    bottom = np.zeros(n, dtype=np.int64)
    np.minimum.at(top, ids, rows)
    np.maximum.at(bottom, ids, rows)
    spread = np.sqrt(np.bincount(ids, (cols - centre[ids]) ** 2, minlength=n) / count)
    return ids, top, bottom, centre, np.maximum(spread * 1.7, 0.5)


def _box_blur1(values: np.ndarray, radius: int) -> np.ndarray:
    if radius < 1:
        return values
    padded = np.pad(values, radius, mode="edge")
    kernel = np.ones(2 * radius + 1) / (2 * radius + 1)
    return np.convolve(padded, kernel, mode="valid")


def _ground_texture(
    xs: np.ndarray, vs: np.ndarray, horizon: float, height: int, key: int
) -> tuple[np.ndarray, np.ndarray]:
    """Low- and high-frequency fbm on the ground plane for rows ``vs`` below the horizon.

    A pinhole camera at height ``_CAMERA_HEIGHT`` maps row v to distance ``Z = c / (v - h)``
    and column x to lateral position ``X = x Z``. Octaves finer than a pixel's footprint on the
    ground (which grows like Z squared) fade to their mean, so the horizon does not alias.
    """
    gap = np.maximum(vs - horizon, 0.5 / height)[:, None]
    z = _CAMERA_HEIGHT / gap
    x = xs[None, :] * z
    footprint = np.maximum(z * z / (_CAMERA_HEIGHT * height), z / height)
    out = []
    for band, freqs in enumerate(((5.0, 10.0), (40.0, 80.0, 160.0))):
        total = np.zeros_like(x)
        norm = 0.0
        for octave, freq in enumerate(freqs):
            amp = 0.5**octave
            norm += amp
            weight = np.clip((0.5 - freq * footprint) / 0.25, 0.0, 1.0)
            if not weight.any():
                total += 0.5 * amp
                continue
            k = _octave_key(key, 8 * band + octave)
            n = _noise_at(x * freq, z * freq, k)
            total += amp * (0.5 + weight * (n - 0.5))
        out.append(total / norm)
    return out[0], out[1]


def _draw_style(seed: int, index: int) -> int:
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, _STREAM_STYLE]))
    return int(rng.integers(len(STYLES)))


def _check_style(style: int | None) -> None:
    if style is None:
        return
    if not isinstance(style, (int, np.integer)) or isinstance(style, bool):
        raise ValueError(f"style={style!r} must be an int index into STYLES={STYLES} or None")
    if not 0 <= style < len(STYLES):
        options = ", ".join(f"{i}={name}" for i, name in enumerate(STYLES))
        raise ValueError(f"style={style} is out of range; choose one of {options} or None")


def render_image(
    label: np.ndarray,
    instance: np.ndarray,
    seed: int,
    index: int,
    style: int | None = None,
) -> tuple[np.ndarray, int]:
    """RGB (H, W, 3) uint8 rendering of a label/instance map, and the style index used.

    ``style=None`` draws the style from ``(seed, index)``; textures, per-object colour jitter
    and the sun position also come from ``(seed, index)``, so the output is deterministic.
    """
    _check_seed_index(seed, index)
    _check_style(style)
    label = np.asarray(label)
    instance = np.asarray(instance)
    if label.ndim != 2 or instance.shape != label.shape:
        raise ValueError(
            f"label {label.shape} and instance {instance.shape} must be equal (H, W) arrays"
        )
    if label.size and (int(label.min()) < 0 or int(label.max()) >= LABEL_NC):
        raise ValueError(
            f"label values span [{int(label.min())}, {int(label.max())}] but must lie in "
            f"[0, {LABEL_NC}); see CLASSES"
        )
    if instance.size and int(instance.min()) < 0:
        raise ValueError(f"instance ids must be >= 0 (0 = no instance), got {int(instance.min())}")
    style_index = _draw_style(seed, index) if style is None else int(style)
    st = _STYLE_TABLE[style_index]
    height, width = label.shape
    label = label.astype(np.intp)
    instance = instance.astype(np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, _STREAM_IMAGE]))
    keys = _keys(seed, index, _STREAM_IMAGE, 8)
    sun_side = -1.0 if rng.random() < 0.5 else 1.0  # -1: sun on the left
    sun_x = sun_side * rng.uniform(0.1, 0.45) * width / height
    tint = 1.0 + rng.normal(0.0, 0.03, 3)
    exposure = 1.0 + rng.normal(0.0, 0.04)
    xs, vs = _coords(height, width)

    n_lo = _fbm_grid(xs * 4.0, vs * 4.0, keys[0], 3, pixels_per_unit=height / 4.0)
    n_hi = _fbm_grid(xs * 28.0, vs * 28.0, keys[1], 2, pixels_per_unit=height / 28.0)
    horizon = _estimate_horizon(label)
    t_row = np.clip((vs - horizon) / max(1.0 - horizon, 1e-3), 0.0, 1.0)
    # Flat ground gets textures in ground-plane coordinates, so its detail shrinks towards the
    # horizon as a real field's would; upright things (trees, rocks, mountains) stay in screen
    # space.
    flat = np.isin(label, (GRASS, SAND, PATH, WATER))
    first_ground = int(np.searchsorted(vs, horizon))
    if flat[first_ground:].any():
        g_lo, g_hi = _ground_texture(xs, vs[first_ground:], horizon, height, keys[5])
        below = flat[first_ground:]
        n_lo = n_lo.copy()
        n_hi = n_hi.copy()
        n_lo[first_ground:][below] = g_lo[below]
        n_hi[first_ground:][below] = g_hi[below]

    albedo_a = _WINTER_A if st.winter else _ALBEDO_A
    albedo_b = _WINTER_B if st.winter else _ALBEDO_B
    mix = np.clip(0.5 + _MIX_GAIN[label] * (n_lo - 0.5), 0.0, 1.0)[..., None]
    img = albedo_a[label] + (albedo_b[label] - albedo_a[label]) * mix
    grain = _WINTER_GRAIN if st.winter else _GRAIN
    img *= (1.0 + grain[label] * (n_hi - 0.5) * 2.0)[..., None]
    shade = np.zeros((height, width))
    # Aerial perspective: how much each pixel fades into the horizon colour.
    haze = np.broadcast_to(st.haze * (1.0 - t_row[:, None]) ** 4, (height, width)).copy()

    # Mountains and snow: a face is lit when the ridge above it rises towards the sun. Deeper
    # below the crest the ridge is read at a coarser scale, so the lit and shaded flanks of big
    # peaks run diagonally down the mountain instead of as per-column stripes.
    rocky = (label == MOUNTAIN) | (label == SNOW)
    if rocky.any():
        has = rocky.any(axis=0)
        top = np.where(has, (np.argmax(rocky, axis=0) + 0.5) / height, horizon)
        levels = (0.006, 0.02, 0.06, 0.18)
        slopes = np.stack(
            [
                np.gradient(_box_blur1(top, round(level * height)), xs)
                if width > 1
                else np.zeros(width)
                for level in levels
            ]
        )
        below = np.clip(vs[:, None] - top[None, :], 0.0, None)
        level = np.clip(np.log((0.6 * below + levels[0]) / levels[0]) / np.log(3.0), 0.0, 2.999)
        lo = level.astype(np.intp)
        frac = level - lo
        cols = np.broadcast_to(np.arange(width), (height, width))
        slope = slopes[lo, cols] * (1.0 - frac) + slopes[lo + 1, cols] * frac
        ridge_light = np.tanh(slope * sun_side * 2.5)
        # Gullies: vertically stretched noise whose horizontal gradient reads as relief.
        gully = _fbm_grid(xs * 9.0, vs * 4.0, keys[4], 3, pixels_per_unit=height / 9.0)
        relief = np.zeros((height, width))
        relief[:, 1:] = np.diff(gully, axis=1) * height / 9.0 * 2.0
        rocky_shade = 0.9 * ridge_light + np.clip(relief * sun_side, -0.35, 0.35)
        shade[rocky] = rocky_shade[rocky]
        # Mountains are far away: hazy at their foot (valley mist), clearer with altitude.
        altitude = np.clip((horizon - vs) / max(horizon, 1e-3), 0.0, 1.0)[:, None]
        mist = np.clip(st.haze * (1.5 - 1.6 * altitude), 0.1, 0.6)
        haze[rocky] = np.broadcast_to(mist, (height, width))[rocky]

    is_water = label == WATER
    is_tree = label == TREE
    is_rock = label == ROCK
    ground = np.isin(label, (GRASS, SAND, PATH))

    # Trees and rocks: per-object colour jitter, lit from the sun's side, dark at the base.
    object_depth = None
    for mask, top_light, bottom_dark in ((is_tree, 0.3, 0.7), (is_rock, 0.45, 0.55)):
        if not mask.any():
            continue
        ids, top, bottom, centre, half = _instance_stats(instance, mask)
        rows, cols = np.nonzero(mask)
        rel = (rows - top[ids]) / np.maximum(bottom[ids] - top[ids], 1)
        side = np.clip((cols - centre[ids]) / half[ids], -1.5, 1.5) * -sun_side
        shade[mask] = top_light - bottom_dark * rel**1.5 + 0.3 * side
        jitter = _hash(np.arange(ids.max() + 1), np.zeros(1, dtype=np.int64), keys[2])
        hue = _hash(np.arange(ids.max() + 1), np.ones(1, dtype=np.int64), keys[2])
        brightness = 0.8 + 0.4 * jitter[ids]
        yellow = (hue[ids] - 0.5) * 0.25  # shifts trees between blue-green and yellow-green
        img[mask] *= brightness[:, None]
        img[mask, 0] *= 1.0 + yellow
        img[mask, 2] *= 1.0 - yellow
        object_depth = np.clip((bottom[ids] + 0.5) / height - horizon, 0.0, None)
        object_t = np.clip(object_depth / max(1.0 - horizon, 1e-3), 0.0, 1.0)
        haze[mask] = st.haze * (1.0 - object_t) ** 4
        if mask is is_tree and st.winter:
            # Snow settles on the upper, outer parts of the foliage.
            snowy = (n_hi[mask] + 0.35 * (1.0 - rel)) > 0.86
            img[mask] = np.where(snowy[:, None], np.array([0.85, 0.88, 0.93]), img[mask])

    # Shadows cast by trees onto the ground, away from the sun.
    if is_tree.any() and ground.any():
        ids, top, bottom, centre, half = _instance_stats(instance, is_tree)
        for obj_id in np.unique(ids):
            cx = centre[obj_id] - sun_side * half[obj_id] * 0.6
            cy = bottom[obj_id] + 0.5
            rx = half[obj_id] * 1.4 + 0.5
            ry = max(rx * 0.3, 0.75)
            r0, r1 = max(int(cy - ry), 0), min(int(cy + ry) + 2, height)
            c0, c1 = max(int(cx - rx), 0), min(int(cx + rx) + 2, width)
            if r0 >= r1 or c0 >= c1:
                continue
            yy = (np.arange(r0, r1)[:, None] - cy) / ry
            xx = (np.arange(c0, c1)[None, :] - cx) / rx
            inside = (xx * xx + yy * yy < 1.0) & ground[r0:r1, c0:c1]
            shade[r0:r1, c0:c1][inside] -= 0.45

    ground_shade = 0.25 * (n_lo - 0.5)
    shade[ground] += ground_shade[ground]

    light = np.asarray(st.light) * tint * exposure
    img *= light * (1.0 + st.contrast * _SHADE_GAIN[label] * shade)[..., None]

    # Sky and clouds carry their own colours (they are the light source, not lit surfaces).
    sky_t = np.clip(vs / max(horizon, 1e-3), 0.0, 1.0) ** 1.3
    sky_col = np.asarray(st.sky_top) + (np.asarray(st.sky_horizon) - st.sky_top) * sky_t[:, None]
    sky_img = np.broadcast_to(sky_col[:, None, :], (height, width, 3)).copy()
    if any(st.glow):
        d2 = ((xs[None, :] - sun_x) / 0.5) ** 2 + ((vs[:, None] - horizon + 0.04) / 0.25) ** 2
        sky_img += np.asarray(st.glow) * np.exp(-d2)[..., None]
    sky_img *= tint * exposure
    is_sky = label == SKY
    img[is_sky] = sky_img[is_sky]

    is_cloud = label == CLOUD
    if is_cloud.any():
        # Clouds are lit from above: a pixel is darker the more cloud lies just above it and
        # the less lies just below it (its base). Window fractions, blurred sideways, give
        # smooth shading where per-column run lengths would give vertical curtains. Window
        # sizes are in scene units so the look does not change with resolution.
        cover = is_cloud.astype(np.float64)
        above = _window_fraction(cover, max(1, round(0.07 * height)), upward=True)
        beneath = _window_fraction(cover, max(1, round(0.025 * height)), upward=False)
        spread = 2 * max(1, round(0.02 * height)) + 1
        above = uniform_filter1d(above, spread, axis=1, mode="nearest")
        dark = 0.75 * above + 0.45 * (1.0 - beneath) - 0.1
        dark = np.clip(dark + 0.5 * (n_lo - 0.5), 0.0, 1.0)[is_cloud]
        cloud = np.asarray(st.cloud_light) + (np.asarray(st.cloud_shade) - st.cloud_light) * (
            dark[:, None] * 0.75
        )
        # Thin wisps and ragged edges are translucent: let the sky show through where little
        # cloud surrounds a pixel.
        size = 2 * max(1, round(0.015 * height)) + 1
        around = uniform_filter(cover, size=size, mode="nearest")[is_cloud]
        see_through = (0.4 * (1.0 - around))[:, None]
        img[is_cloud] = (cloud + (sky_img[is_cloud] - cloud) * see_through) * tint * exposure

    # Aerial perspective: distant surfaces fade into the horizon colour.
    haze_col = np.asarray(st.sky_horizon) * tint * exposure
    lit = ~(is_sky | is_cloud)
    img = np.where(lit[..., None], img + (haze_col - img) * haze[..., None], img)

    # Water: own colour, darker when near, plus a mirror image. A calm surface reflects the
    # sky and distant mountains about the horizon; things standing on the far shore (trees,
    # rocks) are mirrored about their own base, i.e. the water's upper edge. Flat ground is
    # never seen in a reflection.
    if is_water.any():
        start, _ = _run_bounds(is_water)
        rows, cols = np.nonzero(is_water)
        ripple = _fbm_grid(xs * 3.0, vs * 45.0, keys[3], 2, pixels_per_unit=height / 45.0)
        offset = np.round((ripple[is_water] - 0.5) * 0.03 * height).astype(np.int64)
        src_c = np.clip(cols + offset, 0, width - 1)
        edge_r = np.clip(2 * start[is_water] - rows - 1, 0, height - 1)
        sky_r = np.clip(np.round(2.0 * horizon * height - rows - 1).astype(np.int64), 0, None)
        sky_r = np.minimum(sky_r, height - 1)
        upright = np.isin(label[edge_r, src_c], THING_CLASSES)
        src_r = np.where(upright, edge_r, sky_r)
        reflected = img[src_r, src_c]
        # A mirror ray that lands on water again (a clipped mirror) shows the horizon haze.
        reflected = np.where(is_water[src_r, src_c][:, None], haze_col, reflected)
        t = t_row[rows]
        fresnel = st.reflection * (1.0 - 0.6 * t)
        base = img[is_water]
        water = base + (reflected * 0.85 - base) * fresnel[:, None]
        streak = (ripple[is_water] - 0.5) * 0.3
        img[is_water] = water * (1.0 + streak)[:, None]

    grey = img.mean(axis=-1, keepdims=True)
    img = grey + (img - grey) * st.saturation
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), style_index


# --------------------------------------------------------------------------------------------
# Public sample API
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticSample:
    label: np.ndarray  # (H, W) uint8 in [0, LABEL_NC)
    instance: np.ndarray  # (H, W) int32, 0 = no instance
    image: np.ndarray  # (H, W, 3) uint8 RGB
    style: int  # index into STYLES


def render(
    seed: int, index: int, height: int, width: int, style: int | None = None
) -> SyntheticSample:
    """Layout and image of scene ``(seed, index)`` at the given size."""
    _check_style(style)
    label, instance = render_layout(seed, index, height, width)
    image, style_index = render_image(label, instance, seed, index, style)
    return SyntheticSample(label=label, instance=instance, image=image, style=style_index)


# --------------------------------------------------------------------------------------------
# Rendered-scene cache
# --------------------------------------------------------------------------------------------

log = logging.getLogger("spadelab.data.synthetic")
CACHE_ENV = "SPADELAB_CACHE"
# The renderer's own source is part of the cache key: any change to it renders afresh.
_SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
_CACHE_FIELDS = {"label": np.uint8, "instance": np.int32, "image": np.uint8, "style": np.uint8}


def cache_root() -> Path:
    """``$SPADELAB_CACHE`` or ``~/.cache/spadelab``: where rendered scenes are kept."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "spadelab").expanduser()


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An advisory lock file: a second process waits instead of rendering the same scenes."""
    try:
        import fcntl
    except ImportError:  # no fcntl (Windows): the atomic rename alone keeps the cache whole
        yield
        return
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class RenderedScenes:
    """Scenes of ``seed`` at one size, rendered once into memory-mapped arrays, chunk by chunk.

    A chunk holds scenes ``CHUNK * c .. CHUNK * (c + 1) - 1``: ``label`` (n, H, W) uint8,
    ``instance`` (n, H, W) int32, ``image`` (n, H, W, 3) uint8 and ``style`` (n,) uint8, exactly
    what :func:`render` returns (bit for bit). A chunk is rendered the first time one of its
    scenes is read, so a run that uses 8 scenes renders 32, not the whole split. Files live in
    ``cache_root()/synthetic/<key>/``, the key a hash of (seed, size, style, chunk) and of this
    renderer's source. They are written into a temporary directory and renamed into place under
    a lock, so processes that need the same scenes render them once and never read half a file.
    """

    CHUNK = 32

    def __init__(
        self,
        seed: int,
        height: int,
        width: int,
        style: int | None = None,
        root: Path | None = None,
    ) -> None:
        self.spec = {"seed": seed, "height": height, "width": width, "style": style}
        self.base = (root or cache_root()) / "synthetic"
        self._chunks: dict[int, dict[str, np.ndarray]] = {}

    def chunk_path(self, chunk: int) -> Path:
        spec = {**self.spec, "chunk": chunk, "size": self.CHUNK, "renderer": _SOURCE_HASH}
        key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]
        return self.base / key

    def _chunk(self, chunk: int) -> dict[str, np.ndarray]:
        arrays = self._chunks.get(chunk)
        if arrays is None:
            path = self.chunk_path(chunk)
            if not path.is_dir():
                self.base.mkdir(parents=True, exist_ok=True)
                with _exclusive(path.with_suffix(".lock")):
                    if not path.is_dir():  # another process may have rendered it meanwhile
                        self._render(chunk, path)
            arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r") for name in _CACHE_FIELDS}
            self._chunks[chunk] = arrays
        return arrays

    def _render(self, chunk: int, path: Path) -> None:
        n, height, width = self.CHUNK, self.spec["height"], self.spec["width"]
        shapes = {
            "label": (n, height, width),
            "instance": (n, height, width),
            "image": (n, height, width, 3),
            "style": (n,),
        }
        start = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.base))
        try:
            arrays = {
                name: np.lib.format.open_memmap(
                    tmp / f"{name}.npy", mode="w+", dtype=dtype, shape=shapes[name]
                )
                for name, dtype in _CACHE_FIELDS.items()
            }
            for k in range(n):
                index = chunk * n + k
                sample = render(self.spec["seed"], index, height, width, self.spec["style"])
                arrays["label"][k] = sample.label
                arrays["instance"][k] = sample.instance
                arrays["image"][k] = sample.image
                arrays["style"][k] = sample.style
            for array in arrays.values():
                array.flush()
            del arrays
            spec = {**self.spec, "first": chunk * n, "count": n, "renderer": _SOURCE_HASH}
            (tmp / "spec.json").write_text(json.dumps(spec, indent=2))
            os.replace(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.debug(
            "rendered scenes %d-%d into %s in %.1f s",
            chunk * n,
            chunk * n + n - 1,
            path,
            time.perf_counter() - start,
        )

    def sample(self, index: int) -> SyntheticSample:
        """Scene ``index`` as :func:`render` returns it (writable copies of the rows)."""
        _check_seed_index(self.spec["seed"], index)
        arrays = self._chunk(index // self.CHUNK)
        k = index % self.CHUNK
        return SyntheticSample(
            label=np.array(arrays["label"][k]),
            instance=np.array(arrays["instance"][k]),
            image=np.array(arrays["image"][k]),
            style=int(arrays["style"][k]),
        )


Transform = Callable[..., dict[str, torch.Tensor]]


class SyntheticLandscapes(Dataset):
    """Procedural landscapes; train and val use disjoint scene indices.

    With ``cache`` (the default) a split's scenes are rendered once, at its first use, into
    memory-mapped files shared by every process and run (:class:`RenderedScenes`); training
    epochs, DataLoader workers and the evaluation judge then read instead of rendering.
    ``cache=False`` renders every sample on the fly.
    """

    label_nc = LABEL_NC
    class_names = CLASSES
    palette = PALETTE
    styles = STYLES

    def __init__(
        self,
        split: str = "train",
        num_train: int = 2000,
        num_val: int = 200,
        seed: int = 0,
        height: int = 64,
        width: int | None = None,
        transform: Transform | None = None,
        style: int | None = None,
        cache: bool = True,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"data split={split!r} is unknown; choose one of {SPLITS}")
        for name, value in (("num_train", num_train), ("num_val", num_val)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"data.{name}={value!r} must be >= 1")
        if num_train > VAL_INDEX_OFFSET:
            raise ValueError(
                f"data.num_train={num_train} must be <= {VAL_INDEX_OFFSET} so train indices "
                "stay below the validation range"
            )
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"data.seed={seed!r} must be a non-negative integer")
        width = height if width is None else width
        for name, value in (("height", height), ("width", width)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"data.{name}={value!r} must be a positive integer (pixels)")
        if transform is not None and not callable(transform):
            raise ValueError(f"transform={transform!r} must be callable or None")
        _check_style(style)
        if not isinstance(cache, bool):
            raise ValueError(f"data.dataset.cache={cache!r} must be true or false")
        self.split = split
        self.num_train = int(num_train)
        self.num_val = int(num_val)
        self.seed = int(seed)
        self.height = int(height)
        self.width = int(width)
        self.transform = transform
        self.style = style
        self.cache = cache
        self._scenes: RenderedScenes | None = None

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers reopen the memory map by path instead of receiving a pickled copy.
        return {**self.__dict__, "_scenes": None}

    def scenes(self) -> RenderedScenes:
        """The cached scenes of this seed and size (rendered chunk by chunk on first use)."""
        if self._scenes is None:
            self._scenes = RenderedScenes(self.seed, self.height, self.width, self.style)
        return self._scenes

    def __len__(self) -> int:
        return self.num_train if self.split == "train" else self.num_val

    def scene_index(self, i: int) -> int:
        """The generator index of sample ``i`` of this split."""
        return i if self.split == "train" else VAL_INDEX_OFFSET + i

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise TypeError(f"index {i!r} must be an int")
        if not 0 <= i < len(self):
            raise IndexError(
                f"index {i} is out of range for the {self.split} split of {len(self)}"
            )
        i = int(i)
        if self.cache:
            sample = self.scenes().sample(self.scene_index(i))
        else:
            sample = render(self.seed, self.scene_index(i), self.height, self.width, self.style)
        if self.transform is not None:
            out = self.transform(
                # Pillow infers RGB / L / I from the uint8 (H, W, 3), uint8 and int32 arrays.
                Image.fromarray(sample.image),
                Image.fromarray(sample.label),
                Image.fromarray(sample.instance.astype(np.int32)),
                self.split == "train",
                i,
            )
            out = dict(out)
        else:
            out = {
                "label": torch.from_numpy(sample.label.astype(np.int64)).unsqueeze(0),
                "instance": torch.from_numpy(sample.instance.astype(np.int64)).unsqueeze(0),
                "image": torch.from_numpy(sample.image).permute(2, 0, 1).float() / 127.5 - 1.0,
            }
        out["style"] = sample.style
        out["path"] = f"synthetic/{self.split}/{i:06d}"
        return out


def benchmark(n: int = 200, height: int = 64, width: int | None = None, seed: int = 0) -> float:
    """Mean milliseconds to render one sample (layout + image) on this machine."""
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    width = height if width is None else width
    start = time.perf_counter()
    for index in range(n):
        render(seed, index, height, width)
    return (time.perf_counter() - start) * 1000.0 / n


__all__ = [
    "CLASSES",
    "LABEL_NC",
    "PALETTE",
    "RenderedScenes",
    "STYLES",
    "THING_CLASSES",
    "VAL_INDEX_OFFSET",
    "SyntheticLandscapes",
    "SyntheticSample",
    "benchmark",
    "cache_root",
    "render",
    "render_image",
    "render_layout",
]
