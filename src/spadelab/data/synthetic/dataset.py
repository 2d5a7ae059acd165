"""Samples, the rendered-scene cache and the Dataset of the synthetic landscapes."""

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
from torch.utils.data import Dataset

from spadelab.data.synthetic.layout import render_layout
from spadelab.data.synthetic.render import render_image
from spadelab.data.synthetic.spec import (
    CLASSES,
    LABEL_NC,
    PALETTE,
    SPLITS,
    STYLES,
    VAL_INDEX_OFFSET,
    check_seed_index,
    check_style,
    get_variant,
)


@dataclass(frozen=True)
class SyntheticSample:
    label: np.ndarray  # (H, W) uint8 in [0, label_nc of the variant)
    instance: np.ndarray  # (H, W) int32, 0 = no instance
    image: np.ndarray  # (H, W, 3) uint8 RGB
    style: int  # index into STYLES


def render(
    seed: int,
    index: int,
    height: int,
    width: int,
    style: int | None = None,
    variant: str = "easy",
) -> SyntheticSample:
    """Layout and image of scene ``(seed, index)`` at the given size.

    ``variant="hard"`` is the same scene plus flowers, bushes and houses, with colours that
    depend on each pixel's neighbours (see :data:`~spadelab.data.synthetic.spec.VARIANTS`).
    """
    check_style(style)
    get_variant(variant)
    label, instance = render_layout(seed, index, height, width, variant)
    image, style_index = render_image(label, instance, seed, index, style, variant)
    return SyntheticSample(label=label, instance=instance, image=image, style=style_index)


log = logging.getLogger("spadelab.data.synthetic")
CACHE_ENV = "SPADELAB_CACHE"
# The renderer's identity is part of the cache key. It names the output, not the source: a
# refactor that leaves every rendered byte alone (pinned by tests/data/test_synthetic_pinned.py)
# keeps existing caches valid; a change of output must bump it so caches render afresh. The value
# is the source hash of the single-file renderer whose output the pinned hashes record.
RENDERER_ID = "cef2491546897eb5"
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
    ``cache_root()/synthetic/<key>/``, the key a hash of (seed, size, style, chunk) and of
    ``RENDERER_ID``. They are written into a temporary directory and renamed into place under
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
        variant: str = "easy",
    ) -> None:
        self.spec = {"seed": seed, "height": height, "width": width, "style": style}
        # Only other variants name themselves in the key: the easy variant's keys (and so the
        # caches already on disk) stay what they were before variants existed.
        if get_variant(variant).name != "easy":
            self.spec["variant"] = variant
        self.variant = variant
        self.base = (root or cache_root()) / "synthetic"
        self._chunks: dict[int, dict[str, np.ndarray]] = {}

    def chunk_path(self, chunk: int) -> Path:
        spec = {**self.spec, "chunk": chunk, "size": self.CHUNK, "renderer": RENDERER_ID}
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
                sample = render(
                    self.spec["seed"], index, height, width, self.spec["style"], self.variant
                )
                arrays["label"][k] = sample.label
                arrays["instance"][k] = sample.instance
                arrays["image"][k] = sample.image
                arrays["style"][k] = sample.style
            for array in arrays.values():
                array.flush()
            del arrays
            spec = {**self.spec, "first": chunk * n, "count": n, "renderer": RENDERER_ID}
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
        check_seed_index(self.spec["seed"], index)
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
    ``cache=False`` renders every sample on the fly. ``variant`` picks the benchmark:
    ``easy`` (the default, 10 classes) or ``hard`` (13 classes, small objects, colours that
    depend on neighbours); ``label_nc``, ``class_names`` and ``palette`` follow it.
    """

    # The easy variant's; an instance of another variant overrides them in __init__.
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
        variant: str = "easy",
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
        check_style(style)
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
        spec = get_variant(variant)
        self.variant = spec.name
        self.label_nc = spec.label_nc
        # Read by the data check: label values beyond the config's data.label_nc are a config
        # error (e.g. data=synthetic with data.dataset.variant=hard), caught before training.
        self.num_label_values = spec.label_nc
        self.class_names = spec.classes
        self.palette = spec.palette
        self._scenes: RenderedScenes | None = None

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers reopen the memory map by path instead of receiving a pickled copy.
        return {**self.__dict__, "_scenes": None}

    def scenes(self) -> RenderedScenes:
        """The cached scenes of this seed and size (rendered chunk by chunk on first use)."""
        if self._scenes is None:
            self._scenes = RenderedScenes(
                self.seed, self.height, self.width, self.style, variant=self.variant
            )
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
            sample = render(
                self.seed,
                self.scene_index(i),
                self.height,
                self.width,
                self.style,
                self.variant,
            )
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
