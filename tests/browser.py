"""Headless Chromium for the browser tests (studio, study, TensorBoard).

Debian's ``chromium`` driven by Playwright's Python package through ``executable_path``
(Playwright never downloads a browser here). ``.ci/run`` installs chromium when it is missing;
the browser tests skip, saying why, only when it is absent and apt-get cannot install it.
One Playwright instance serves the whole session: the sync API refuses a second one while the
first is open ("using Playwright Sync API inside the asyncio loop").
"""

from __future__ import annotations

import os
import shutil
import subprocess

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

BROWSER_TIMEOUT_MS = 180_000


def find_chromium() -> str | None:
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
