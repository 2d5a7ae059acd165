"""Shared fixtures for the data tests: small synthetic exports in every real layout."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra.utils
import pytest

from spadelab.config import compose_config
from spadelab.data.export import FORMATS, export_synthetic

# Small but not square, so a swapped width/height shows up.
HEIGHT, WIDTH = 48, 64
N_TRAIN, N_VAL, SEED = 4, 2, 0


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One read-only export per format; tests that damage files copy one first."""
    base = tmp_path_factory.mktemp("exported")
    return {
        fmt: export_synthetic(fmt, base / fmt, N_TRAIN, N_VAL, HEIGHT, WIDTH, SEED)
        for fmt in FORMATS
    }


@pytest.fixture
def copy_export(exported: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    def copy(fmt: str) -> Path:
        return Path(shutil.copytree(exported[fmt], tmp_path / fmt))

    return copy


def _data_config(name: str, root: Path | str, *overrides: str) -> Any:
    """``cfg.data`` of a real conf/data/*.yaml, shrunk for CPU tests."""
    cfg = compose_config(
        "data_tool",
        [
            f"data={name}",
            f"data.dataset.root={root}",
            "data.num_workers=0",
            "data.batch_size=2",
            *overrides,
        ],
    )
    return cfg.data


def _datamodule(name: str, root: Path | str, *overrides: str) -> Any:
    return hydra.utils.instantiate(_data_config(name, root, *overrides))


@pytest.fixture
def data_config() -> Callable[..., Any]:
    """``data_config(name, root, *overrides)`` -> the composed ``cfg.data``."""
    return _data_config


@pytest.fixture
def make_datamodule() -> Callable[..., Any]:
    """``make_datamodule(name, root, *overrides)`` -> SemanticDataModule via hydra."""
    return _datamodule


# Overrides that make each exported format load: the format's config plus what the synthetic
# content needs (folder: the palette; landscape: the exported ids 1..10 as landscape classes).
FORMAT_CONFIGS: dict[str, tuple[str, str, Sequence[str]]] = {
    "ade20k": ("ade20k", "ade20k", ("data.crop_size=32", "data.load_size=40")),
    "ade20k_outdoor": ("ade20k_outdoor", "ade20k", ("data.crop_size=32", "data.load_size=40")),
    "ade20k_landscape": (
        "ade20k_landscape",
        "ade20k",
        (
            "data.crop_size=32",
            "data.load_size=40",
            "data.dataset.keep_classes=[1,2,3,4,5,6,7,8,9,10]",
            "data.dataset.min_keep_classes=2",
            "data.dataset.min_keep_fraction=0.5",
        ),
    ),
    "cityscapes": ("cityscapes", "cityscapes", ("data.crop_size=64", "data.load_size=64")),
    "coco_stuff": ("coco_stuff", "coco_stuff", ("data.crop_size=32", "data.load_size=40")),
    "coco_stuff_stuffthingmaps": (
        "coco_stuff_stuffthingmaps",
        "coco_stuff_stuffthingmaps",
        ("data.crop_size=32", "data.load_size=40"),
    ),
    "folder": (
        "folder",
        "folder",
        (
            "data.label_nc=10",
            "data.use_instance=true",
            "data.dataset.palette_file=palette.json",
            "data.crop_size=32",
            "data.load_size=40",
        ),
    ),
}


@pytest.fixture
def format_datamodule(exported: dict[str, Path]) -> Callable[..., Any]:
    """``format_datamodule(key, *extra)``: the datamodule of a FORMAT_CONFIGS entry."""

    def build(key: str, *extra: str) -> Any:
        config, fmt, overrides = FORMAT_CONFIGS[key]
        return _datamodule(config, exported[fmt], *overrides, *extra)

    return build


@pytest.fixture
def format_configs() -> dict[str, tuple[str, str, Sequence[str]]]:
    """FORMAT_CONFIGS for tests that cannot import this conftest as a module."""
    return FORMAT_CONFIGS
