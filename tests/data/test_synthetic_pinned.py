"""The synthetic landscapes' output, pinned bit for bit.

The hashes were taken from the renderer before it was split into a package; a refactor must
leave every byte (labels, instances, images, styles) and every cache key unchanged. If the
output changes on purpose, bump ``RENDERER_ID`` in ``spadelab/data/synthetic/dataset.py`` (so
cached scenes are rendered afresh) and update the hashes here in the same commit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from spadelab.data.synthetic import RenderedScenes, render

# (seed, index, height, width, style) -> sha256 of label, instance, image and style, truncated.
# Sizes cover square, wide, tall, tiny and a validation index; styles cover all four, fixed
# and drawn.
PINNED = {
    (0, 0, 64, 64, None): "65516cb06ad01750",
    (0, 1, 64, 64, None): "1e732c2aa9e90a93",
    (0, 2, 64, 64, None): "2f692c6d8cedc9d1",
    (0, 3, 64, 64, None): "f3f835d6da81a4c8",
    (0, 7, 64, 64, 0): "6ec1261d501eaa7f",
    (0, 7, 64, 64, 1): "1cda6fe1d5e073af",
    (0, 7, 64, 64, 2): "cf6339bb7001c5a9",
    (0, 7, 64, 64, 3): "ea42c40bf0954538",
    (3, 17, 48, 80, None): "9c191270fd8528c4",
    (5, 10_000_003, 40, 56, None): "5ba9819da4da153b",
    (1, 42, 96, 64, None): "4c20619de8a5e8c0",
    (0, 9, 128, 128, None): "d49e7aa2d5ec7a00",
    (2, 123, 1, 1, None): "34698fa05d9bd332",
    (2, 5, 9, 3, None): "8849b9c4f5badd81",
}
# Scenes 0..39 of seed 0 at 32x48 in one digest: every scene kind (lake, coast, meadow) and
# every style the renderer draws.
PINNED_FORTY = "734b4b69e28a80c7"
# RenderedScenes chunk directory names: a refactor that leaves the output alone must not make
# every existing cache render again.
PINNED_CHUNK_KEYS = {
    (0, 64, 64, None, 0): "b546d918620158bbd877",
    (3, 40, 56, 2, 5): "47f0edf56447c37fc0ae",
}

CHANGED = (
    "the synthetic renderer's output changed; if that is intended, bump RENDERER_ID in "
    "spadelab/data/synthetic/dataset.py and update the hashes in {file}"
)


def _digest(seed: int, index: int, height: int, width: int, style: int | None) -> str:
    sample = render(seed, index, height, width, style)
    digest = hashlib.sha256()
    for array in (sample.label, sample.instance, sample.image):
        digest.update(str(array.dtype).encode())
        digest.update(repr(array.shape).encode())
        digest.update(array.tobytes())
    digest.update(str(sample.style).encode())
    return digest.hexdigest()[:16]


@pytest.mark.parametrize("case", list(PINNED), ids=[",".join(map(str, c)) for c in PINNED])
def test_rendered_scene_is_pinned(case: tuple[int, int, int, int, int | None]) -> None:
    assert _digest(*case) == PINNED[case], CHANGED.format(file=__file__)


def test_forty_scenes_are_pinned() -> None:
    digest = hashlib.sha256()
    for index in range(40):
        sample = render(0, index, 32, 48)
        for array in (sample.label, sample.instance, sample.image):
            digest.update(array.tobytes())
        digest.update(bytes([sample.style]))
    assert digest.hexdigest()[:16] == PINNED_FORTY, CHANGED.format(file=__file__)


@pytest.mark.parametrize("case", list(PINNED_CHUNK_KEYS))
def test_cache_keys_are_pinned(case: tuple[int, int, int, int | None, int]) -> None:
    seed, height, width, style, chunk = case
    scenes = RenderedScenes(seed, height, width, style, root=Path("/unused"))
    assert scenes.chunk_path(chunk).name == PINNED_CHUNK_KEYS[case], CHANGED.format(file=__file__)
