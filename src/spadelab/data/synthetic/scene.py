"""The resolution-independent description of one scene, drawn from ``(seed, index)``.

Everything here is in scene units (``v`` row fraction, ``x`` in image heights from the centre):
the global scene (horizon, ridges, coast or lake, path), the objects of each unit-wide tile and
the region tests that decide, in scene coordinates, where things may stand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spadelab.data.synthetic.noise import fbm1, stream_keys
from spadelab.data.synthetic.spec import STREAM_HARD, STREAM_NOISE, STREAM_SCENE, STREAM_TILE


@dataclass(frozen=True)
class Ridge:
    amplitude: float  # peak height above the horizon, in scene units
    frequency: float  # lattice cells per scene unit
    key: int


@dataclass(frozen=True)
class Lake:
    x: float
    v: float
    rx: float
    ry: float
    harmonics: tuple[tuple[float, float, float], ...]  # (order, amplitude, phase)
    rim: float  # sand rim as a factor of the radius (1 = no rim)


@dataclass(frozen=True)
class Footpath:
    vanish_x: float  # where the path would meet the horizon
    offset: float  # lateral world offset of the path from the vanishing line
    amplitude: float  # world amplitude of the winding
    omega: float
    phase: float
    width: float  # world width (screen width = width * depth fraction)
    t_end: float  # depth fraction where the path disappears into the distance


@dataclass(frozen=True)
class Coast:
    depth: float  # mean depth fraction of the sea
    slope: float  # how the shoreline tilts across the image
    wobble: float
    beach: float  # beach width relative to the sea depth
    key: int


@dataclass(frozen=True)
class Scene:
    seed: int
    index: int
    horizon: float
    cloud_threshold: float  # > 1 means a clear sky
    cloud_key: int
    ridges: tuple[Ridge, ...]
    snow_altitude: float  # altitude above the horizon where snow starts (inf = no snow)
    snow_key: int
    sand_threshold: float
    sand_key: int
    coast: Coast | None
    lakes: tuple[Lake, ...]
    path: Footpath | None
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


def make_lake(rng: np.random.Generator, x: float, t: float, size: float, horizon: float) -> Lake:
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
    return Lake(x, horizon + t * (1.0 - horizon), rx, ry, harmonics, rim)


def sample_scene(seed: int, index: int) -> Scene:
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, STREAM_SCENE]))
    keys = stream_keys(seed, index, STREAM_NOISE, 8)
    horizon = float(rng.uniform(0.32, 0.6))
    kind = rng.choice(3, p=[0.45, 0.3, 0.25])  # lake, coast, meadow

    cloud_threshold = float(rng.uniform(0.5, 0.68)) if rng.random() < 0.85 else 2.0

    n_ridges = int(rng.choice(3, p=[0.08, 0.32, 0.6]))
    far_amp = horizon * float(rng.uniform(0.35, 0.95))
    ridges = []
    if n_ridges >= 1:
        ridges.append(Ridge(far_amp, float(rng.uniform(0.8, 2.0)), keys[0]))
    if n_ridges == 2:
        near_amp = far_amp * float(rng.uniform(0.3, 0.6))
        ridges.append(Ridge(near_amp, float(rng.uniform(1.5, 3.0)), keys[1]))
    snow_altitude = far_amp * float(rng.uniform(0.4, 0.8)) if rng.random() < 0.75 else np.inf

    coast = None
    lakes: list[Lake] = []
    if kind == 1:
        coast = Coast(
            depth=float(rng.uniform(0.1, 0.4)),
            slope=float(rng.uniform(-0.5, 0.5)),
            wobble=float(rng.uniform(0.03, 0.12)),
            beach=float(rng.uniform(0.2, 0.6)),
            key=keys[2],
        )
    elif kind == 0:
        t = float(rng.uniform(0.15, 0.6))
        lakes.append(
            make_lake(rng, float(rng.uniform(-0.35, 0.35)), t, rng.uniform(0.2, 0.45), horizon)
        )

    path = None
    if rng.random() < 0.6:
        path = Footpath(
            vanish_x=float(rng.uniform(-0.3, 0.3)),
            offset=float(rng.uniform(-0.5, 0.5)),
            amplitude=float(rng.uniform(0.05, 0.35)),
            omega=float(rng.uniform(0.3, 1.0)),
            phase=float(rng.uniform(0, 2 * np.pi)),
            width=float(rng.uniform(0.07, 0.16)),
            t_end=float(rng.uniform(0.06, 0.3)),
        )

    return Scene(
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


# Object kinds in the per-tile object table (bushes and houses: the hard variant only).
KIND_CONIFER, KIND_DECIDUOUS, KIND_ROCK, KIND_BUSH, KIND_HOUSE = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class SceneObject:
    kind: int
    x: float  # base (where it touches the ground)
    v: float
    size: float  # tree or house height, rock or bush radius
    aspect: float  # width / height (trees, houses); vertical / horizontal radius (rocks, bushes)
    shape: tuple[float, ...]  # kind-specific shape parameters


def _zigzag(k: int) -> int:
    # SeedSequence wants non-negative entropy; interleave negative tile indices.
    return 2 * k if k >= 0 else -2 * k - 1


def tile_objects(scene: Scene, tile: int) -> tuple[list[SceneObject], list[Lake]]:
    rng = np.random.default_rng(
        np.random.SeedSequence([scene.seed, scene.index, STREAM_TILE, _zigzag(tile)])
    )
    lakes = []
    if rng.random() < scene.extra_lakes:
        lakes.append(
            make_lake(
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
        kind = KIND_CONIFER if conifer[i] else KIND_DECIDUOUS
        shape = (float(tiers[i]), *map(float, phases[i]))
        objects.append(
            SceneObject(
                kind, float(tree_x[i]), float(scene.depth_to_v(t)), size, float(aspects[i]), shape
            )
        )
    for i in range(n_rocks):
        t = float(rock_t[i])
        size = float(rock_r[i]) * (0.25 + 1.2 * t)
        objects.append(
            SceneObject(
                KIND_ROCK,
                float(rock_x[i]),
                float(scene.depth_to_v(t)),
                size,
                float(rock_aspect[i]),
                tuple(map(float, rock_phase[i])),
            )
        )
    return objects, lakes


# --------------------------------------------------------------------------------------------
# The hard variant's extras (drawn from their own stream: the easy scene is left as it is)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HardExtras:
    bushes: float  # bushes per tile
    houses: float  # houses per tile
    meadow_threshold: float  # fbm level above which grass is a flower meadow
    meadow_key: int
    bloom_key: int  # fine noise that breaks a meadow into separate flower clumps


def sample_hard_extras(seed: int, index: int) -> HardExtras:
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, STREAM_HARD, 0]))
    keys = stream_keys(seed, index, STREAM_HARD, 2)
    return HardExtras(
        bushes=float(rng.uniform(3.0, 12.0)),
        houses=float(rng.uniform(1.0, 3.0)),
        meadow_threshold=float(rng.uniform(0.5, 0.6)),
        meadow_key=keys[0],
        bloom_key=keys[1],
    )


def hard_tile_objects(scene: Scene, extras: HardExtras, tile: int) -> list[SceneObject]:
    """Bushes and houses rooted in one unit-wide tile."""
    rng = np.random.default_rng(
        np.random.SeedSequence([scene.seed, scene.index, STREAM_HARD, 1 + _zigzag(tile)])
    )
    objects = []
    n_bushes = rng.poisson(extras.bushes)
    bush_x = tile + rng.random(n_bushes)
    bush_t = 0.03 + rng.random(n_bushes) ** 0.9
    bush_r = rng.uniform(0.02, 0.045, n_bushes)
    bush_aspect = rng.uniform(0.55, 0.8, n_bushes)
    bush_phase = rng.uniform(0, 2 * np.pi, (n_bushes, 3))
    for i in range(n_bushes):
        t = float(bush_t[i])
        objects.append(
            SceneObject(
                KIND_BUSH,
                float(bush_x[i]),
                float(scene.depth_to_v(t)),
                float(bush_r[i]) * (0.25 + 1.2 * t),
                float(bush_aspect[i]),
                tuple(map(float, bush_phase[i])),
            )
        )
    n_houses = rng.poisson(extras.houses)
    house_x = tile + rng.random(n_houses)
    house_t = 0.04 + 0.7 * rng.random(n_houses)
    house_h = rng.uniform(0.14, 0.24, n_houses)
    house_aspect = rng.uniform(0.9, 1.6, n_houses)  # width / height
    roof_share = rng.uniform(0.35, 0.5, n_houses)  # of the height, ridge to eaves
    for i in range(n_houses):
        t = float(house_t[i])
        objects.append(
            SceneObject(
                KIND_HOUSE,
                float(house_x[i]),
                float(scene.depth_to_v(t)),
                float(house_h[i]) * (0.08 + 0.95 * t),
                float(house_aspect[i]),
                (float(roof_share[i]),),
            )
        )
    return objects


# --------------------------------------------------------------------------------------------
# Region tests in scene coordinates (work on any broadcastable arrays)
# --------------------------------------------------------------------------------------------


def depth_fraction(scene: Scene, v: np.ndarray) -> np.ndarray:
    return (v - scene.horizon) / (1.0 - scene.horizon)


def _radial(harmonics: tuple[tuple[float, float, float], ...], theta: np.ndarray) -> np.ndarray:
    r = np.ones_like(theta)
    for order, amp, phase in harmonics:
        r += amp * np.cos(order * theta + phase)
    return r


def lake_mask(lake: Lake, x: np.ndarray, v: np.ndarray, scale: float = 1.0) -> np.ndarray:
    dx, dv = (x - lake.x) / lake.rx, (v - lake.v) / lake.ry
    r = _radial(lake.harmonics, np.arctan2(dv, dx)) * scale
    return dx * dx + dv * dv < r * r


def sea_and_beach(scene: Scene, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth fractions of the shoreline and the beach's inner edge for each ``x``."""
    coast = scene.coast
    assert coast is not None
    wobble = coast.wobble * (fbm1(x * 2.0, coast.key, 4) - 0.5) * 2.0
    shore = np.maximum(coast.depth + coast.slope * x + wobble, 0.0)
    beach = shore * (1.0 + coast.beach) + 0.02 * (shore > 0)
    return shore, beach


def path_centre(path: Footpath, t: np.ndarray) -> np.ndarray:
    # A world-space winding line seen in perspective: lateral offsets shrink with depth t and
    # the winding frequency in screen space rises towards the horizon.
    safe_t = np.maximum(t, 1e-3)
    return path.vanish_x + safe_t * (
        path.offset + path.amplitude * np.sin(path.omega / safe_t + path.phase)
    )


def path_mask(scene: Scene, x: np.ndarray, v: np.ndarray) -> np.ndarray:
    path = scene.path
    assert path is not None
    t = depth_fraction(scene, v)
    half = 0.5 * path.width * t
    return (t > path.t_end) & (np.abs(x - path_centre(path, t)) < half)


def water_at(scene: Scene, lakes: list[Lake], x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether points are water or shore sand (nothing grows there)."""
    t = depth_fraction(scene, v)
    wet = np.zeros(np.broadcast(x, v).shape, dtype=bool)
    if scene.coast is not None:
        _, beach = sea_and_beach(scene, x)
        wet |= t < beach
    for lake in lakes:
        wet |= lake_mask(lake, x, v, lake.rim)
    return wet & (t >= 0)
