"""Fixtures of the studio and study tests: live servers on free ports, headless Chromium.

Browsers: Debian's ``chromium`` driven by Playwright's Python package through
``executable_path`` (Playwright never downloads a browser here). ``.ci/run`` installs chromium
when it is missing; the browser tests skip, saying why, only when it is absent and apt-get cannot
install it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from studio_helpers import BROWSER_TIMEOUT_MS, TRAIN

from smoke import train_run


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


@pytest.fixture(scope="session")
def segmap_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default SPADE decoder at smoke scale: deterministic given the label map."""
    return train_run(tmp_path_factory.mktemp("segmap") / "segmap", base=TRAIN)


@pytest.fixture(scope="session")
def vae_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """encoder=vae at smoke scale: style images and diverse samples."""
    return train_run(tmp_path_factory.mktemp("vae") / "vae", "encoder=vae", base=TRAIN)
