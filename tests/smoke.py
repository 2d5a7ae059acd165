"""The tiny smoke-scale overrides every training test shares (``from smoke import ...``).

``tests/`` is on ``sys.path`` (pytest's rootdir conftest), so any test file, in any folder,
imports these instead of restating them; a test adds its own overrides after them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# Smoke scale (32x32 synthetic data, tiny networks) without progress bars, model summary or
# loader processes: seconds on a CPU, and a quiet log.
QUIET = [
    "scale=smoke",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.progress=null",
    "data.num_workers=0",
]
# One epoch of 2 iterations (4 samples, batch 2); 2 validation images.
TINY = ["trainer.max_epochs=1", "data.max_train_samples=4", "data.max_val_samples=2"]
# A whole training run in seconds: quiet, tiny, and no sample grids.
SMOKE_TRAIN = [*QUIET, "callbacks.samples=null", *TINY]
# A sweep row (train, then evaluate): quiet and tiny, with an evaluation judge of 5 steps.
SWEEP_ROW = [*QUIET, *TINY, "eval.judge.steps=5"]


def train_run(run_dir: Path, *overrides: str, base: Sequence[str] = SMOKE_TRAIN) -> Path:
    """Train one smoke run into ``run_dir`` (``base`` then ``overrides``) and return the dir."""
    from spadelab.commands.train import train
    from spadelab.config import compose_config

    train(compose_config("train", [f"run_dir={run_dir}", *base, *overrides]))
    return run_dir
