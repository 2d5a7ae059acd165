"""Fixtures of the studio and study tests: live servers on free ports, headless Chromium.

Browsers: Debian's ``chromium`` driven by Playwright's Python package through
``executable_path`` (Playwright never downloads a browser here). ``.ci/run`` installs chromium
when it is missing; the browser tests skip, saying why, only when it is absent and apt-get cannot
install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from studio_helpers import BROWSER_TIMEOUT_MS, CHROMIUM_ARGS, TRAIN


def _chromium() -> str | None:
    path = shutil.which("chromium")
    if path or os.environ.get("SPADELAB_INSTALL_CHROMIUM", "1") == "0":
        return path
    if shutil.which("apt-get") and os.geteuid() == 0:
        # From Debian's registry, as .ci/run does; never a browser download by Playwright.
        install = ["apt-get", "install", "-y", "chromium"]
        if subprocess.run(install, capture_output=True, timeout=600).returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, timeout=600)
            subprocess.run(install, capture_output=True, timeout=600)
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'"
    )
    executable = _chromium()
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


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    # Generous: on shared CPUs one synthesize call can take seconds (Playwright's default: 30 s).
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    page = context.new_page()
    # Nothing may come from the network: every request must go to the local test server.
    page.outside = []
    page.on(
        "request",
        lambda request: (
            None
            if request.url.startswith(("http://127.0.0.1:", "data:", "blob:"))
            else page.outside.append(request.url)
        ),
    )
    yield page
    context.close()
    assert page.outside == [], f"the page fetched from outside localhost: {page.outside}"


def _train(run_dir: Path, *overrides: str) -> Path:
    from spadelab.commands.train import train
    from spadelab.config import compose_config

    train(compose_config("train", [f"run_dir={run_dir}", *TRAIN, *overrides]))
    return run_dir


@pytest.fixture(scope="session")
def segmap_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default SPADE decoder at smoke scale: deterministic given the label map."""
    return _train(tmp_path_factory.mktemp("segmap") / "segmap")


@pytest.fixture(scope="session")
def vae_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """encoder=vae at smoke scale: style images and diverse samples."""
    return _train(tmp_path_factory.mktemp("vae") / "vae", "encoder=vae")
