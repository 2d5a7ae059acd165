"""Hash-based value noise and its fractal sums, defined on the whole plane."""

from __future__ import annotations

import numpy as np

# Lattice values come from an integer hash of the lattice coordinates (not from an RNG over a
# finite grid), so noise is defined on the whole plane: any crop, resolution or aspect ratio
# sees the same field.


def stream_keys(seed: int, index: int, stream: int, n: int) -> list[int]:
    state = np.random.SeedSequence([seed, index, stream]).generate_state(n)
    return [int(k) for k in state]


def lattice_hash(ix: np.ndarray, iy: np.ndarray, key: int) -> np.ndarray:
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


def fade(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)


def noise_at(x: np.ndarray, y: np.ndarray, key: int) -> np.ndarray:
    """2D value noise at arbitrary points (same arithmetic as :func:`noise_grid`)."""
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = fade(x - x0), fade(y - y0)
    ix, iy = x0.astype(np.int64), y0.astype(np.int64)
    v00, v10 = lattice_hash(ix, iy, key), lattice_hash(ix + 1, iy, key)
    v01, v11 = lattice_hash(ix, iy + 1, key), lattice_hash(ix + 1, iy + 1, key)
    a0 = v00 + (v10 - v00) * fx
    a1 = v01 + (v11 - v01) * fx
    return a0 + (a1 - a0) * fy


def noise_grid(x: np.ndarray, y: np.ndarray, key: int) -> np.ndarray:
    """2D value noise on the tensor grid ``y (H,) x x (W,)`` -> (H, W).

    Hashes only the few lattice points the grid touches and interpolates separably, which is
    what keeps a 256x256 texture at well under a millisecond per octave.
    """
    if x.size == 0 or y.size == 0:
        return np.zeros((y.size, x.size))
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = fade(x - x0), fade(y - y0)
    ix, iy = x0.astype(np.int64), y0.astype(np.int64)
    lx = np.arange(ix.min(), ix.max() + 2)
    ly = np.arange(iy.min(), iy.max() + 2)
    lattice = lattice_hash(lx[None, :], ly[:, None], key)
    cx, cy = ix - lx[0], iy - ly[0]
    rows = lattice[:, cx] + (lattice[:, cx + 1] - lattice[:, cx]) * fx
    return rows[cy] + (rows[cy + 1] - rows[cy]) * fy[:, None]


def noise1(x: np.ndarray, key: int) -> np.ndarray:
    """1D value noise at arbitrary points."""
    x0 = np.floor(x)
    f = fade(x - x0)
    ix = x0.astype(np.int64)
    zero = np.zeros_like(ix)
    a, b = lattice_hash(ix, zero, key), lattice_hash(ix + 1, zero, key)
    return a + (b - a) * f


def octave_key(key: int, octave: int) -> int:
    return (key + octave * 0x9E3779B9) & 0xFFFFFFFF


def fbm_grid(
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
        n = noise_grid(
            x * scale + 0.37 * octave, y * scale + 0.61 * octave, octave_key(key, octave)
        )
        total += amp * (0.5 + weight * (n - 0.5))
    return total / norm


def fbm1(x: np.ndarray, key: int, octaves: int, ridged: bool = False) -> np.ndarray:
    total = np.zeros_like(x, dtype=np.float64)
    norm = 0.0
    for octave in range(octaves):
        scale, amp = 2.0**octave, 0.5**octave
        n = noise1(x * scale + 0.37 * octave, octave_key(key, octave))
        if ridged:
            # Folding the noise makes sharp crests: mountains, not rolling hills.
            n = 1.0 - np.abs(2.0 * n - 1.0)
        total += amp * n
        norm += amp
    return total / norm
