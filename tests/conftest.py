"""Fixtures shared by the whole suite.

The suite runs on a couple of shared CPU cores. torch's default of one intra-op thread per core
makes tiny convolutions 10-100x slower when other processes compete for those cores (OpenMP
workers spin waiting for each other), so tests use one thread unless
``SPADELAB_TEST_THREADS`` says otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

TEST_THREADS = int(os.environ.get("SPADELAB_TEST_THREADS", "1"))


def pytest_configure(config: pytest.Config) -> None:
    torch.set_num_threads(TEST_THREADS)


def one_hot_labels(
    n: int, label_nc: int, height: int, width: int, seed: int = 0, blocks: int = 4
) -> torch.Tensor:
    """A random one-hot label map (n, label_nc, height, width) made of constant blocks.

    Blocks rather than i.i.d. pixels keep the maps segmentation-like, so nearest downsampling
    to a generator's first resolution still gives different labels to different samples.
    """
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, label_nc, (n, 1, blocks, blocks), generator=g).float()
    index = F.interpolate(coarse, size=(height, width), mode="nearest").long()[:, 0]
    return F.one_hot(index, label_nc).permute(0, 3, 1, 2).float()


@pytest.fixture
def label_map() -> Callable[..., torch.Tensor]:
    """``label_map(n, label_nc, height, width, seed=0)``: a random one-hot label map."""
    return one_hot_labels


@pytest.fixture
def compose_train(tmp_path: Path) -> Callable[..., DictConfig]:
    """``compose_train(*overrides)``: ``conf/train.yaml`` composed with a run dir in tmp_path.

    ``run_dir`` defaults to an interpolation of Hydra's runtime, which only exists inside a
    Hydra app, so every composition outside one has to override it.
    """
    from spadelab.config import compose_config

    def compose(*overrides: str, config_name: str = "train") -> DictConfig:
        run_dir = [f"run_dir={tmp_path / 'run'}"] if config_name == "train" else []
        return compose_config(config_name, [*run_dir, *overrides])

    return compose


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test of the session (tests/browser.py)."""
    from browser import CHROMIUM_ARGS, find_chromium

    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'"
    )
    executable = find_chromium()
    if executable is None:
        pytest.skip(
            "chromium is absent and apt-get could not install it (apt-get install chromium)"
        )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
