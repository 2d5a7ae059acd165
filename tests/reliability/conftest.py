"""The trained smoke run and the bad files the reliability tests share (built once)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))  # cases.py

from cases import SMOKE, bad_checkpoints  # noqa: E402


@pytest.fixture(scope="session")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A trained smoke run (EMA on), label maps, bad files of every kind."""
    from spadelab.commands.train import train
    from spadelab.config import compose_config

    tmp = tmp_path_factory.mktemp("reliability")
    run = tmp / "run"
    train(compose_config("train", [f"run_dir={run}", *SMOKE, "ema.enabled=true"]))
    labels = tmp / "labels"
    labels.mkdir()
    for i in range(3):
        values = np.random.RandomState(i).randint(0, 5, (32, 32)).astype(np.uint8)
        Image.fromarray(values, "L").save(labels / f"l{i}.png")
    (tmp / "empty").mkdir()
    Image.new("RGB", (32, 32)).save(tmp / "rgb.png")
    (tmp / "text.png").write_text("not an image")
    (tmp / "zero.png").write_bytes(b"")
    Image.fromarray(np.full((32, 32), 200, np.uint8), "L").save(tmp / "out_of_range.png")
    (tmp / "a_file").write_text("")
    truncated_run = tmp / "truncated_run" / "checkpoints"
    truncated_run.mkdir(parents=True)
    last = (run / "checkpoints" / "last.ckpt").read_bytes()
    (truncated_run / "last.ckpt").write_bytes(last[: len(last) // 3])
    bad = bad_checkpoints(run / "checkpoints" / "last.ckpt", tmp / "bad")
    return {
        "run": str(run),
        "tmp": str(tmp),
        "labels": str(labels),
        "truncated_run": str(truncated_run.parent),
        **{f"bad_{name}": str(path) for name, path in bad.items()},
    }
