"""Helpers of the studio and study tests: free ports, live servers, tiny PNGs."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from browser import BROWSER_TIMEOUT_MS, CHROMIUM_ARGS  # noqa: F401 (re-exported)
from smoke import SMOKE_TRAIN

TRAIN = [*SMOKE_TRAIN, "data.max_val_samples=4"]  # the last value of a key wins


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def live_server(app) -> Iterator[str]:
    """Serve a FastAPI app on 127.0.0.1:<free port> in a thread; stopped when the block ends."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def write_png(path: Path, color: tuple[int, int, int], size: int = 16) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), color, dtype=np.uint8)).save(path)
    return path.name
