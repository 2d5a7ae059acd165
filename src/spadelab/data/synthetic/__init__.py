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

The package, back to front: :mod:`~spadelab.data.synthetic.spec` (classes, palette, styles),
:mod:`~spadelab.data.synthetic.noise` (value noise on the whole plane),
:mod:`~spadelab.data.synthetic.scene` (the resolution-independent scene drawn from
``(seed, index)``), :mod:`~spadelab.data.synthetic.layout` (label and instance maps),
:mod:`~spadelab.data.synthetic.appearance` and :mod:`~spadelab.data.synthetic.render` (the
image), :mod:`~spadelab.data.synthetic.dataset` (samples, the cache, the Dataset).
"""

from __future__ import annotations

from spadelab.data.synthetic.dataset import (
    CACHE_ENV,
    RENDERER_ID,
    RenderedScenes,
    SyntheticLandscapes,
    SyntheticSample,
    benchmark,
    cache_root,
    render,
)
from spadelab.data.synthetic.layout import render_layout
from spadelab.data.synthetic.render import render_image
from spadelab.data.synthetic.spec import (
    BUSH,
    CLASSES,
    CLOUD,
    FLOWER,
    GRASS,
    HARD_CLASSES,
    HARD_PALETTE,
    HARD_THING_CLASSES,
    HOUSE,
    LABEL_NC,
    MOUNTAIN,
    PALETTE,
    PATH,
    ROCK,
    SAND,
    SKY,
    SNOW,
    SPLITS,
    STYLES,
    THING_CLASSES,
    TREE,
    VAL_INDEX_OFFSET,
    VARIANTS,
    WATER,
    Variant,
)

__all__ = [
    "BUSH",
    "CACHE_ENV",
    "CLASSES",
    "CLOUD",
    "FLOWER",
    "GRASS",
    "HARD_CLASSES",
    "HARD_PALETTE",
    "HARD_THING_CLASSES",
    "HOUSE",
    "LABEL_NC",
    "MOUNTAIN",
    "PALETTE",
    "PATH",
    "RENDERER_ID",
    "ROCK",
    "RenderedScenes",
    "SAND",
    "SKY",
    "SNOW",
    "SPLITS",
    "STYLES",
    "THING_CLASSES",
    "TREE",
    "VAL_INDEX_OFFSET",
    "VARIANTS",
    "Variant",
    "WATER",
    "SyntheticLandscapes",
    "SyntheticSample",
    "benchmark",
    "cache_root",
    "render",
    "render_image",
    "render_layout",
]
