"""Rasterise a scene into its label map and instance map.

``render_layout`` paints back to front, one function per layer: clouds, mountains (and their
snow), the ground (grass, sand, path), water (sea, beaches, lakes), flower meadows (hard variant)
and finally the objects (trees and rocks; bushes and houses in the hard variant) in painter's
order.
"""

from __future__ import annotations

import numpy as np

from spadelab.data.synthetic.noise import fbm1, fbm_grid
from spadelab.data.synthetic.scene import (
    KIND_BUSH,
    KIND_CONIFER,
    KIND_DECIDUOUS,
    KIND_HOUSE,
    KIND_ROCK,
    HardExtras,
    Lake,
    Scene,
    SceneObject,
    depth_fraction,
    hard_tile_objects,
    lake_mask,
    path_centre,
    path_mask,
    sample_hard_extras,
    sample_scene,
    sea_and_beach,
    tile_objects,
    water_at,
)
from spadelab.data.synthetic.spec import (
    BUSH,
    CLOUD,
    FLOWER,
    GRASS,
    HOUSE,
    MOUNTAIN,
    PATH,
    ROCK,
    SAND,
    SKY,
    SNOW,
    TREE,
    WATER,
    check_seed_index,
    check_size,
    get_variant,
)

# Objects and extra lakes are gathered from every tile the view touches plus this margin (scene
# units), wide enough for the widest object (a near tree or lake) rooted just outside the view.
_TILE_MARGIN = 0.35
# The class each object kind is painted as.
_KIND_CLASS = {
    KIND_CONIFER: TREE,
    KIND_DECIDUOUS: TREE,
    KIND_ROCK: ROCK,
    KIND_BUSH: BUSH,
    KIND_HOUSE: HOUSE,
}


def pixel_coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    xs = (np.arange(width) + 0.5 - width / 2.0) / height
    vs = (np.arange(height) + 0.5) / height
    return xs, vs


def _pixel_span(lo: float, hi: float, scale: float, shift: float, n: int) -> tuple[int, int]:
    """Scene interval [lo, hi] -> half-open range of pixel indices whose centres may be inside."""
    a = int(np.floor(lo * scale + shift - 0.5))
    b = int(np.ceil(hi * scale + shift - 0.5)) + 1
    return max(a, 0), min(b, n)


def _object_mask(obj: SceneObject, x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Pixels (given as x (1, w) and v (h, 1) scene coordinates) covered by one object."""
    dx = x - obj.x
    if obj.kind == KIND_CONIFER:
        tiers, *_ = obj.shape
        half = 0.5 * obj.size * obj.aspect
        trunk = 0.12 * obj.size
        s = (v - (obj.v - obj.size)) / (obj.size - trunk)  # 0 at the tip, 1 at the crown base
        # A sawtooth on the width gives the stacked-tier silhouette of a fir.
        profile = s * (0.68 + 0.32 * np.mod(s * tiers, 1.0))
        crown = (s >= 0) & (s <= 1) & (np.abs(dx) <= half * profile)
        stem = (v >= obj.v - trunk) & (v <= obj.v) & (np.abs(dx) <= max(0.1 * half, 0.004))
        return crown | stem
    if obj.kind == KIND_DECIDUOUS:
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
    if obj.kind == KIND_BUSH:
        rx, ry = obj.size, obj.size * obj.aspect
        cv = obj.v - 0.8 * ry  # a low dome standing on the ground
        ex, ey = dx / rx, (v - cv) / ry
        theta = np.arctan2(ey, ex)
        p1, p2, p3 = obj.shape
        r = 1.0 + 0.1 * np.cos(4 * theta + p1) + 0.08 * np.cos(6 * theta + p2)
        r += 0.05 * np.cos(9 * theta + p3)
        return (ex * ex + ey * ey <= r * r) & (v <= obj.v)
    if obj.kind == KIND_HOUSE:
        (roof_share,) = obj.shape
        half = 0.5 * obj.size * obj.aspect
        eaves = obj.v - obj.size * (1.0 - roof_share)
        walls = (v >= eaves) & (v <= obj.v) & (np.abs(dx) <= half)
        # A gable roof: 0 at the ridge, 1 at the eaves, overhanging the walls a little.
        s = (v - (obj.v - obj.size)) / (obj.size * roof_share)
        roof = (s >= 0) & (s <= 1) & (np.abs(dx) <= 1.15 * half * s)
        return walls | roof
    rx = obj.size
    ry = obj.size * obj.aspect
    cv = obj.v - 0.55 * ry  # sits on the ground, slightly buried
    ex, ey = dx / rx, (v - cv) / ry
    theta = np.arctan2(ey, ex)
    p1, p2, p3 = obj.shape
    r = 1.0 + 0.12 * np.cos(2 * theta + p1) + 0.08 * np.cos(3 * theta + p2)
    r += 0.05 * np.cos(5 * theta + p3)
    return (ex * ex + ey * ey <= r * r) & (v <= obj.v)


def _object_extent(obj: SceneObject) -> tuple[float, float, float, float]:
    """Scene-space bounding box (x0, x1, v0, v1), slightly generous."""
    if obj.kind == KIND_ROCK:
        half_w, top, bottom = obj.size * 1.3, obj.v - obj.size * obj.aspect * 1.9, obj.v
    elif obj.kind == KIND_BUSH:
        half_w, top, bottom = obj.size * 1.3, obj.v - obj.size * obj.aspect * 2.1, obj.v
    elif obj.kind == KIND_HOUSE:
        half_w, top, bottom = 0.6 * obj.size * obj.aspect, obj.v - obj.size * 1.02, obj.v
    else:
        half_w, top, bottom = 0.5 * obj.size * obj.aspect * 1.25, obj.v - obj.size * 1.05, obj.v
    return obj.x - half_w, obj.x + half_w, top, bottom


def render_layout(
    seed: int, index: int, height: int, width: int, variant: str = "easy"
) -> tuple[np.ndarray, np.ndarray]:
    """The label map (H, W) uint8 and instance map (H, W) int32 of scene ``(seed, index)``.

    Instance ids are positive for the variant's thing classes (trees and rocks; bushes and
    houses too in the hard variant), each object its own id, stable across resolutions, and 0
    elsewhere. The hard variant is the easy scene plus flower meadows, bushes and houses.
    """
    check_seed_index(seed, index)
    check_size(height, width)
    hard = get_variant(variant).name == "hard"
    scene = sample_scene(seed, index)
    xs, vs = pixel_coords(height, width)
    label = np.full((height, width), SKY, dtype=np.uint8)
    instance = np.zeros((height, width), dtype=np.int32)
    sky_rows = int(np.searchsorted(vs, scene.horizon))  # rows with v < horizon
    # Views: painting into them paints the label map.
    sky, ground = label[:sky_rows], label[sky_rows:]
    vs_sky, vs_ground = vs[:sky_rows], vs[sky_rows:]

    if scene.cloud_threshold <= 1.0 and sky_rows > 0:
        _paint_clouds(sky, scene, xs, vs_sky)
    if scene.ridges and sky_rows > 0:
        _paint_mountains(sky, scene, xs, vs_sky)
    if sky_rows == height:
        return label, instance

    _paint_ground(ground, scene, xs, vs_ground)
    objects, lakes = _gather_tiles(scene, height, width)
    _paint_water(ground, scene, xs, vs_ground, lakes)
    if hard:
        extras = sample_hard_extras(seed, index)
        _paint_meadows(ground, extras, xs, vs_ground)
        for tile in _tile_range(height, width):
            objects.extend(hard_tile_objects(scene, extras, tile))
    standing = _standing_objects(scene, objects, lakes, width / (2.0 * height))
    _paint_objects(label, instance, standing, xs, vs)
    return label, instance


def _paint_clouds(sky: np.ndarray, scene: Scene, xs: np.ndarray, vs_sky: np.ndarray) -> None:
    """Clouds: anisotropic fbm, strongest high in the sky and fading towards the horizon."""
    field = fbm_grid(xs * 2.2, vs_sky * 6.0, scene.cloud_key, 5)
    weight = np.clip(1.0 - (vs_sky / scene.horizon) ** 2, 0.0, 1.0) ** 0.5
    clouds = field * (0.65 + 0.35 * weight[:, None]) > scene.cloud_threshold
    clouds &= weight[:, None] > 0.15
    sky[clouds] = CLOUD


def _paint_mountains(sky: np.ndarray, scene: Scene, xs: np.ndarray, vs_sky: np.ndarray) -> None:
    """Mountains: ridgelines of folded 1D fbm, far ridge first, near ridge painted over it;
    snow above a wandering snowline."""
    h = scene.horizon
    mountain = np.zeros(sky.shape, dtype=bool)
    for ridge in scene.ridges:
        # Folded low octaves give the peaks; plain high octaves only roughen the line
        # (folded high octaves would stand up as needles).
        shape = fbm1(xs * ridge.frequency, ridge.key, 3, ridged=True)
        detail = fbm1(xs * ridge.frequency * 8.0, ridge.key ^ 0x3C3C, 3)
        # Summed octaves crowd around 0.5; stretch so crests reach the full amplitude.
        shape = np.clip((shape - 0.25) / 0.6, 0.0, 1.0) ** 1.15
        top = h - ridge.amplitude * (0.06 + 0.84 * shape + 0.1 * detail)
        mountain |= vs_sky[:, None] >= top[None, :]
    if np.isfinite(scene.snow_altitude):
        jag = fbm_grid(xs * 14.0, vs_sky * 14.0, scene.snow_key, 3)
        edge = fbm1(xs * 5.0, scene.snow_key ^ 0x5A5A, 3)
        altitude = (h - vs_sky)[:, None]
        wander = 0.25 * scene.ridges[0].amplitude
        snowline = scene.snow_altitude + wander * (edge[None, :] - 0.5) + 0.05 * (jag - 0.5)
        snow = mountain & (altitude > snowline)
    else:
        snow = np.zeros_like(mountain)
    sky[mountain] = MOUNTAIN
    sky[snow] = SNOW


def _paint_ground(ground: np.ndarray, scene: Scene, xs: np.ndarray, vs_ground: np.ndarray) -> None:
    """Ground: grass with sand patches, and the path."""
    ground[...] = GRASS
    sand = fbm_grid(xs * 2.5, vs_ground * 5.0, scene.sand_key, 3) > scene.sand_threshold
    ground[sand] = SAND
    if scene.path is not None:
        ground[path_mask(scene, xs[None, :], vs_ground[:, None])] = PATH


def _tile_range(height: int, width: int) -> range:
    half_view = width / (2.0 * height)
    return range(
        int(np.floor(-half_view - _TILE_MARGIN)), int(np.floor(half_view + _TILE_MARGIN)) + 1
    )


def _gather_tiles(scene: Scene, height: int, width: int) -> tuple[list[SceneObject], list[Lake]]:
    """Objects and extra lakes from every tile the view (plus margin) touches."""
    lakes = list(scene.lakes)
    objects: list[SceneObject] = []
    for tile in _tile_range(height, width):
        in_tile, tile_lakes = tile_objects(scene, tile)
        objects.extend(in_tile)
        lakes.extend(tile_lakes)
    return objects, lakes


def _paint_water(
    ground: np.ndarray, scene: Scene, xs: np.ndarray, vs_ground: np.ndarray, lakes: list[Lake]
) -> None:
    """Water: the sea and its beach, then lake rims (sand) and lakes."""
    gx, gv = xs[None, :], vs_ground[:, None]
    t_ground = depth_fraction(scene, gv)
    if scene.coast is not None:
        shore, beach = sea_and_beach(scene, xs)
        ground[t_ground < beach[None, :]] = SAND
        ground[t_ground < shore[None, :]] = WATER
    for lake in lakes:
        if lake.rim > 1.0:
            ground[lake_mask(lake, gx, gv, lake.rim)] = SAND
    for lake in lakes:
        ground[lake_mask(lake, gx, gv)] = WATER


def _paint_meadows(
    ground: np.ndarray, extras: HardExtras, xs: np.ndarray, vs_ground: np.ndarray
) -> None:
    """Flowers (hard variant): small clumps scattered over patches of grass."""
    meadow = fbm_grid(xs * 4.0, vs_ground * 8.0, extras.meadow_key, 3) > extras.meadow_threshold
    bloom = fbm_grid(xs * 24.0, vs_ground * 36.0, extras.bloom_key, 2) > 0.6
    ground[meadow & bloom & (ground == GRASS)] = FLOWER


def _standing_objects(
    scene: Scene, objects: list[SceneObject], lakes: list[Lake], half_view: float
) -> list[SceneObject]:
    """The objects that may stand where they are rooted, far ones first (painter's order).

    Nothing grows in water, on the beach or (for trees) on the path. Tested at the object's
    base point in scene coordinates so the decision is the same at every resolution.
    """
    objects = [obj for obj in objects if abs(obj.x) <= half_view + _TILE_MARGIN]
    if objects:
        base_x = np.array([obj.x for obj in objects])
        base_v = np.array([obj.v for obj in objects])
        blocked = water_at(scene, lakes, base_x, base_v)
        if scene.path is not None:
            is_tree = np.array([obj.kind != KIND_ROCK for obj in objects])
            half_w = np.array([0.3 * obj.size * obj.aspect for obj in objects])
            t = depth_fraction(scene, base_v)
            gap = np.abs(base_x - path_centre(scene.path, t))
            on_path = (gap < 0.5 * scene.path.width * t + half_w) & (t > scene.path.t_end)
            blocked |= is_tree & on_path
        keep = [obj for obj, bad in zip(objects, blocked) if not bad]
    else:
        keep = []
    # Painter's order: far objects (small v) first so near ones overlap them.
    keep.sort(key=lambda o: o.v)
    return keep


def _paint_objects(
    label: np.ndarray,
    instance: np.ndarray,
    objects: list[SceneObject],
    xs: np.ndarray,
    vs: np.ndarray,
) -> None:
    """Objects, each with its own instance id (1, 2, ... in painter's order)."""
    height, width = label.shape
    for object_id, obj in enumerate(objects, start=1):
        x0, x1, v0, v1 = _object_extent(obj)
        c0, c1 = _pixel_span(x0, x1, height, width / 2.0, width)
        r0, r1 = _pixel_span(v0, v1, height, 0.0, height)
        if c0 >= c1 or r0 >= r1:
            continue
        mask = _object_mask(obj, xs[None, c0:c1], vs[r0:r1, None])
        label[r0:r1, c0:c1][mask] = _KIND_CLASS[obj.kind]
        instance[r0:r1, c0:c1][mask] = object_id
