"""Render a label/instance map into an RGB image.

``render_image`` runs one function per layer, in the order a painter would: ground-plane and
screen textures, class albedo, shading of mountains, of objects (trees, rocks) and of the
shadows trees cast, lighting, sky, clouds, aerial haze and finally water, which mirrors what
has been painted above it. The hard variant adds one layer after the albedo: colours that depend
on a pixel's neighbours (:data:`~spadelab.data.synthetic.appearance.NEIGHBOUR_TONES`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter, uniform_filter1d

from spadelab.data.synthetic.appearance import (
    ALBEDO_A,
    ALBEDO_B,
    CAMERA_HEIGHT,
    GRAIN,
    MIX_GAIN,
    NEIGHBOUR_TONES,
    ROOF_OPEN,
    ROOF_SHARE,
    ROOF_WOODS,
    SHADE_GAIN,
    SNOW_AWAY_FROM_SKY,
    STYLE_TABLE,
    WINTER_A,
    WINTER_B,
    WINTER_GRAIN,
    Style,
    draw_style,
)
from spadelab.data.synthetic.layout import pixel_coords
from spadelab.data.synthetic.noise import fbm_grid, lattice_hash, noise_at, octave_key, stream_keys
from spadelab.data.synthetic.spec import (
    BUSH,
    CLOUD,
    FLOWER,
    GRASS,
    HARD_THING_CLASSES,
    HOUSE,
    MOUNTAIN,
    PATH,
    ROCK,
    SAND,
    SKY,
    SNOW,
    STREAM_IMAGE,
    TREE,
    WATER,
    check_seed_index,
    check_style,
    get_variant,
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
    ground = np.isin(label, (WATER, GRASS, SAND, PATH, ROCK, FLOWER, BUSH))
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

    A pinhole camera at height ``CAMERA_HEIGHT`` maps row v to distance ``Z = c / (v - h)``
    and column x to lateral position ``X = x Z``. Octaves finer than a pixel's footprint on the
    ground (which grows like Z squared) fade to their mean, so the horizon does not alias.
    """
    gap = np.maximum(vs - horizon, 0.5 / height)[:, None]
    z = CAMERA_HEIGHT / gap
    x = xs[None, :] * z
    footprint = np.maximum(z * z / (CAMERA_HEIGHT * height), z / height)
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
            k = octave_key(key, 8 * band + octave)
            n = noise_at(x * freq, z * freq, k)
            total += amp * (0.5 + weight * (n - 0.5))
        out.append(total / norm)
    return out[0], out[1]


@dataclass(frozen=True)
class _Frame:
    """What every layer of one rendering reads: the maps, the geometry, the light."""

    label: np.ndarray  # (H, W) intp
    instance: np.ndarray  # (H, W) int64
    xs: np.ndarray  # (W,) scene x of each column
    vs: np.ndarray  # (H,) scene v of each row
    horizon: float  # estimated from the label map
    t_row: np.ndarray  # (H,) ground depth fraction of each row (0 above the horizon)
    style: Style
    keys: list[int]
    sun_side: float  # -1: sun on the left
    sun_x: float
    tint: np.ndarray  # (3,) colour cast of the camera
    exposure: float
    n_lo: np.ndarray  # (H, W) low-frequency texture in [0, 1]
    n_hi: np.ndarray  # (H, W) fine grain in [0, 1]

    @property
    def height(self) -> int:
        return self.label.shape[0]

    @property
    def width(self) -> int:
        return self.label.shape[1]


def render_image(
    label: np.ndarray,
    instance: np.ndarray,
    seed: int,
    index: int,
    style: int | None = None,
    variant: str = "easy",
) -> tuple[np.ndarray, int]:
    """RGB (H, W, 3) uint8 rendering of a label/instance map, and the style index used.

    ``style=None`` draws the style from ``(seed, index)``; textures, per-object colour jitter
    and the sun position also come from ``(seed, index)``, so the output is deterministic.
    ``variant="hard"`` accepts the hard variant's classes and colours pixels by their
    neighbours too.
    """
    label_nc = get_variant(variant).label_nc
    check_seed_index(seed, index)
    check_style(style)
    label = np.asarray(label)
    instance = np.asarray(instance)
    if label.ndim != 2 or instance.shape != label.shape:
        raise ValueError(
            f"label {label.shape} and instance {instance.shape} must be equal (H, W) arrays"
        )
    if label.size and (int(label.min()) < 0 or int(label.max()) >= label_nc):
        raise ValueError(
            f"label values span [{int(label.min())}, {int(label.max())}] but must lie in "
            f"[0, {label_nc}) for variant={variant}; see VARIANTS[{variant!r}].classes"
        )
    if instance.size and int(instance.min()) < 0:
        raise ValueError(f"instance ids must be >= 0 (0 = no instance), got {int(instance.min())}")
    style_index = draw_style(seed, index) if style is None else int(style)
    frame = _frame(label, instance, seed, index, STYLE_TABLE[style_index])
    height, width = frame.height, frame.width

    img = _albedo(frame)
    if variant == "hard":
        _neighbour_tones(frame, img)
    shade = np.zeros((height, width))
    # Aerial perspective: how much each pixel fades into the horizon colour.
    haze = np.broadcast_to(
        frame.style.haze * (1.0 - frame.t_row[:, None]) ** 4, (height, width)
    ).copy()
    _shade_mountains(frame, shade, haze)
    ground = np.isin(frame.label, (GRASS, SAND, PATH, FLOWER))
    _shade_objects(frame, img, shade, haze)
    _cast_tree_shadows(frame, ground, shade)
    img = _light(frame, img, shade, ground)
    sky_img = _paint_sky(frame, img)
    _paint_clouds(frame, img, sky_img)
    img, haze_col = _apply_haze(frame, img, haze)
    _paint_water(frame, img, haze_col)

    grey = img.mean(axis=-1, keepdims=True)
    img = grey + (img - grey) * frame.style.saturation
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), style_index


def _frame(label: np.ndarray, instance: np.ndarray, seed: int, index: int, st: Style) -> _Frame:
    """The light, the horizon and the textures of one rendering, drawn from ``(seed, index)``."""
    height, width = label.shape
    label = label.astype(np.intp)
    instance = instance.astype(np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, STREAM_IMAGE]))
    keys = stream_keys(seed, index, STREAM_IMAGE, 8)
    sun_side = -1.0 if rng.random() < 0.5 else 1.0  # -1: sun on the left
    sun_x = sun_side * rng.uniform(0.1, 0.45) * width / height
    tint = 1.0 + rng.normal(0.0, 0.03, 3)
    exposure = 1.0 + rng.normal(0.0, 0.04)
    xs, vs = pixel_coords(height, width)

    n_lo = fbm_grid(xs * 4.0, vs * 4.0, keys[0], 3, pixels_per_unit=height / 4.0)
    n_hi = fbm_grid(xs * 28.0, vs * 28.0, keys[1], 2, pixels_per_unit=height / 28.0)
    horizon = _estimate_horizon(label)
    t_row = np.clip((vs - horizon) / max(1.0 - horizon, 1e-3), 0.0, 1.0)
    # Flat ground gets textures in ground-plane coordinates, so its detail shrinks towards the
    # horizon as a real field's would; upright things (trees, rocks, mountains) stay in screen
    # space.
    flat = np.isin(label, (GRASS, SAND, PATH, WATER, FLOWER))
    first_ground = int(np.searchsorted(vs, horizon))
    if flat[first_ground:].any():
        g_lo, g_hi = _ground_texture(xs, vs[first_ground:], horizon, height, keys[5])
        below = flat[first_ground:]
        n_lo = n_lo.copy()
        n_hi = n_hi.copy()
        n_lo[first_ground:][below] = g_lo[below]
        n_hi[first_ground:][below] = g_hi[below]
    return _Frame(
        label=label,
        instance=instance,
        xs=xs,
        vs=vs,
        horizon=horizon,
        t_row=t_row,
        style=st,
        keys=keys,
        sun_side=sun_side,
        sun_x=sun_x,
        tint=tint,
        exposure=exposure,
        n_lo=n_lo,
        n_hi=n_hi,
    )


def _albedo(frame: _Frame) -> np.ndarray:
    """Class albedo: two colours per class blended by low-frequency noise, then fine grain."""
    st, label = frame.style, frame.label
    albedo_a = WINTER_A if st.winter else ALBEDO_A
    albedo_b = WINTER_B if st.winter else ALBEDO_B
    mix = np.clip(0.5 + MIX_GAIN[label] * (frame.n_lo - 0.5), 0.0, 1.0)[..., None]
    img = albedo_a[label] + (albedo_b[label] - albedo_a[label]) * mix
    grain = WINTER_GRAIN if st.winter else GRAIN
    img *= (1.0 + grain[label] * (frame.n_hi - 0.5) * 2.0)[..., None]
    return img


def _closeness(label: np.ndarray, classes: tuple[int, ...], radius: float) -> np.ndarray:
    """How close each pixel is to ``classes``: their share of a window ``radius`` (in image
    heights) around it, x4 and capped at 1, so a pixel at a border is fully "close"."""
    size = 2 * max(1, round(radius * label.shape[0])) + 1
    share = uniform_filter(np.isin(label, classes).astype(np.float64), size=size, mode="nearest")
    return np.clip(share * 4.0, 0.0, 1.0)


def _neighbour_tones(frame: _Frame, img: np.ndarray) -> None:
    """Hard variant: pull pixels towards colours that their neighbours decide."""
    label = frame.label
    for cls, neighbours, target, strength in NEIGHBOUR_TONES:
        mask = label == cls
        if mask.any():
            weight = strength * _closeness(label, neighbours, 0.04)[mask]
            img[mask] += (np.asarray(target) - img[mask]) * weight[:, None]
    snow = label == SNOW
    if snow.any():
        colour, strength = SNOW_AWAY_FROM_SKY
        weight = strength * (1.0 - _closeness(label, (SKY, CLOUD), 0.04)[snow])
        img[snow] += (np.asarray(colour) - img[snow]) * weight[:, None]
    house = label == HOUSE
    if house.any():
        ids, top, bottom, _, _ = _instance_stats(frame.instance, house)
        rows, _ = np.nonzero(house)
        roof = (rows - top[ids]) / np.maximum(bottom[ids] - top[ids], 1) < ROOF_SHARE
        woods = _closeness(label, (TREE,), 0.15)[house][roof]
        pixels = img[house]
        pixels[roof] = (
            np.asarray(ROOF_OPEN)
            + (np.asarray(ROOF_WOODS) - np.asarray(ROOF_OPEN)) * woods[:, None]
        )
        img[house] = pixels


def _shade_mountains(frame: _Frame, shade: np.ndarray, haze: np.ndarray) -> None:
    """Mountains and snow: a face is lit when the ridge above it rises towards the sun.

    Deeper below the crest the ridge is read at a coarser scale, so the lit and shaded flanks
    of big peaks run diagonally down the mountain instead of as per-column stripes.
    """
    label, xs, vs, horizon = frame.label, frame.xs, frame.vs, frame.horizon
    height, width = frame.height, frame.width
    rocky = (label == MOUNTAIN) | (label == SNOW)
    if not rocky.any():
        return
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
    ridge_light = np.tanh(slope * frame.sun_side * 2.5)
    # Gullies: vertically stretched noise whose horizontal gradient reads as relief.
    gully = fbm_grid(xs * 9.0, vs * 4.0, frame.keys[4], 3, pixels_per_unit=height / 9.0)
    relief = np.zeros((height, width))
    relief[:, 1:] = np.diff(gully, axis=1) * height / 9.0 * 2.0
    rocky_shade = 0.9 * ridge_light + np.clip(relief * frame.sun_side, -0.35, 0.35)
    shade[rocky] = rocky_shade[rocky]
    # Mountains are far away: hazy at their foot (valley mist), clearer with altitude.
    altitude = np.clip((horizon - vs) / max(horizon, 1e-3), 0.0, 1.0)[:, None]
    mist = np.clip(frame.style.haze * (1.5 - 1.6 * altitude), 0.1, 0.6)
    haze[rocky] = np.broadcast_to(mist, (height, width))[rocky]


def _shade_objects(frame: _Frame, img: np.ndarray, shade: np.ndarray, haze: np.ndarray) -> None:
    """Trees and rocks (bushes and houses): per-object colour jitter, lit from the sun's side,
    dark at the base."""
    label, instance, st = frame.label, frame.instance, frame.style
    for cls, top_light, bottom_dark in (
        (TREE, 0.3, 0.7),
        (ROCK, 0.45, 0.55),
        (BUSH, 0.35, 0.6),
        (HOUSE, 0.3, 0.3),
    ):
        mask = label == cls
        if not mask.any():
            continue
        ids, top, bottom, centre, half = _instance_stats(instance, mask)
        rows, cols = np.nonzero(mask)
        rel = (rows - top[ids]) / np.maximum(bottom[ids] - top[ids], 1)
        side = np.clip((cols - centre[ids]) / half[ids], -1.5, 1.5) * -frame.sun_side
        shade[mask] = top_light - bottom_dark * rel**1.5 + 0.3 * side
        key = frame.keys[2]
        jitter = lattice_hash(np.arange(ids.max() + 1), np.zeros(1, dtype=np.int64), key)
        hue = lattice_hash(np.arange(ids.max() + 1), np.ones(1, dtype=np.int64), key)
        brightness = 0.8 + 0.4 * jitter[ids]
        yellow = (hue[ids] - 0.5) * 0.25  # shifts trees between blue-green and yellow-green
        img[mask] *= brightness[:, None]
        img[mask, 0] *= 1.0 + yellow
        img[mask, 2] *= 1.0 - yellow
        object_depth = np.clip((bottom[ids] + 0.5) / frame.height - frame.horizon, 0.0, None)
        object_t = np.clip(object_depth / max(1.0 - frame.horizon, 1e-3), 0.0, 1.0)
        haze[mask] = st.haze * (1.0 - object_t) ** 4
        if cls == TREE and st.winter:
            # Snow settles on the upper, outer parts of the foliage.
            snowy = (frame.n_hi[mask] + 0.35 * (1.0 - rel)) > 0.86
            img[mask] = np.where(snowy[:, None], np.array([0.85, 0.88, 0.93]), img[mask])


def _cast_tree_shadows(frame: _Frame, ground: np.ndarray, shade: np.ndarray) -> None:
    """Shadows cast by trees onto the ground, away from the sun."""
    is_tree = frame.label == TREE
    if not (is_tree.any() and ground.any()):
        return
    height, width, sun_side = frame.height, frame.width, frame.sun_side
    ids, top, bottom, centre, half = _instance_stats(frame.instance, is_tree)
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


def _light(frame: _Frame, img: np.ndarray, shade: np.ndarray, ground: np.ndarray) -> np.ndarray:
    """The style's light, the camera's tint and exposure, and the directional shading."""
    st = frame.style
    ground_shade = 0.25 * (frame.n_lo - 0.5)
    shade[ground] += ground_shade[ground]
    light = np.asarray(st.light) * frame.tint * frame.exposure
    img *= light * (1.0 + st.contrast * SHADE_GAIN[frame.label] * shade)[..., None]
    return img


def _paint_sky(frame: _Frame, img: np.ndarray) -> np.ndarray:
    """Sky pixels get the style's gradient (and sunset glow); returns the sky layer for clouds.

    Sky and clouds carry their own colours (they are the light source, not lit surfaces).
    """
    st, xs, vs, horizon = frame.style, frame.xs, frame.vs, frame.horizon
    sky_t = np.clip(vs / max(horizon, 1e-3), 0.0, 1.0) ** 1.3
    sky_col = np.asarray(st.sky_top) + (np.asarray(st.sky_horizon) - st.sky_top) * sky_t[:, None]
    sky_img = np.broadcast_to(sky_col[:, None, :], (frame.height, frame.width, 3)).copy()
    if any(st.glow):
        d2 = ((xs[None, :] - frame.sun_x) / 0.5) ** 2 + (
            (vs[:, None] - horizon + 0.04) / 0.25
        ) ** 2
        sky_img += np.asarray(st.glow) * np.exp(-d2)[..., None]
    sky_img *= frame.tint * frame.exposure
    is_sky = frame.label == SKY
    img[is_sky] = sky_img[is_sky]
    return sky_img


def _paint_clouds(frame: _Frame, img: np.ndarray, sky_img: np.ndarray) -> None:
    """Clouds are lit from above: a pixel is darker the more cloud lies just above it and the
    less lies just below it (its base).

    Window fractions, blurred sideways, give smooth shading where per-column run lengths would
    give vertical curtains. Window sizes are in scene units so the look does not change with
    resolution.
    """
    is_cloud = frame.label == CLOUD
    if not is_cloud.any():
        return
    st, height = frame.style, frame.height
    cover = is_cloud.astype(np.float64)
    above = _window_fraction(cover, max(1, round(0.07 * height)), upward=True)
    beneath = _window_fraction(cover, max(1, round(0.025 * height)), upward=False)
    spread = 2 * max(1, round(0.02 * height)) + 1
    above = uniform_filter1d(above, spread, axis=1, mode="nearest")
    dark = 0.75 * above + 0.45 * (1.0 - beneath) - 0.1
    dark = np.clip(dark + 0.5 * (frame.n_lo - 0.5), 0.0, 1.0)[is_cloud]
    cloud = np.asarray(st.cloud_light) + (np.asarray(st.cloud_shade) - st.cloud_light) * (
        dark[:, None] * 0.75
    )
    # Thin wisps and ragged edges are translucent: let the sky show through where little
    # cloud surrounds a pixel.
    size = 2 * max(1, round(0.015 * height)) + 1
    around = uniform_filter(cover, size=size, mode="nearest")[is_cloud]
    see_through = (0.4 * (1.0 - around))[:, None]
    img[is_cloud] = (
        (cloud + (sky_img[is_cloud] - cloud) * see_through) * frame.tint * frame.exposure
    )


def _apply_haze(frame: _Frame, img: np.ndarray, haze: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Aerial perspective: distant surfaces fade into the horizon colour (also returned)."""
    haze_col = np.asarray(frame.style.sky_horizon) * frame.tint * frame.exposure
    lit = ~((frame.label == SKY) | (frame.label == CLOUD))
    img = np.where(lit[..., None], img + (haze_col - img) * haze[..., None], img)
    return img, haze_col


def _paint_water(frame: _Frame, img: np.ndarray, haze_col: np.ndarray) -> None:
    """Water: own colour, darker when near, plus a mirror image.

    A calm surface reflects the sky and distant mountains about the horizon; things standing on
    the far shore (trees, rocks) are mirrored about their own base, i.e. the water's upper edge.
    Flat ground is never seen in a reflection.
    """
    label, height, width = frame.label, frame.height, frame.width
    is_water = label == WATER
    if not is_water.any():
        return
    start, _ = _run_bounds(is_water)
    rows, cols = np.nonzero(is_water)
    ripple = fbm_grid(
        frame.xs * 3.0, frame.vs * 45.0, frame.keys[3], 2, pixels_per_unit=height / 45.0
    )
    offset = np.round((ripple[is_water] - 0.5) * 0.03 * height).astype(np.int64)
    src_c = np.clip(cols + offset, 0, width - 1)
    edge_r = np.clip(2 * start[is_water] - rows - 1, 0, height - 1)
    sky_r = np.clip(np.round(2.0 * frame.horizon * height - rows - 1).astype(np.int64), 0, None)
    sky_r = np.minimum(sky_r, height - 1)
    upright = np.isin(label[edge_r, src_c], HARD_THING_CLASSES)
    src_r = np.where(upright, edge_r, sky_r)
    reflected = img[src_r, src_c]
    # A mirror ray that lands on water again (a clipped mirror) shows the horizon haze.
    reflected = np.where(is_water[src_r, src_c][:, None], haze_col, reflected)
    t = frame.t_row[rows]
    fresnel = frame.style.reflection * (1.0 - 0.6 * t)
    base = img[is_water]
    water = base + (reflected * 0.85 - base) * fresnel[:, None]
    streak = (ripple[is_water] - 0.5) * 0.3
    img[is_water] = water * (1.0 + streak)[:, None]
