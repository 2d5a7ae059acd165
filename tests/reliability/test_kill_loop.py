"""kill -9 at random moments, resume with ckpt_path=auto, again and again: the finished run
has the weights and the metrics.csv rows of an uninterrupted run, every step exactly once."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from smoke import QUIET

# Four epochs of 4 iterations (8 samples, batch 2): many moments to kill at.
ARGS = [*QUIET, "callbacks.samples=null", "trainer.max_epochs=4"]
ARGS += ["data.max_train_samples=8", "data.max_val_samples=2"]


def command(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "spadelab.cli", "train", *ARGS, f"run_dir={run_dir}", *extra]


def rows(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "logs" / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["state_dict"]


@pytest.mark.slow
def test_repeated_kill_9_and_resume_match_an_uninterrupted_run(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    subprocess.run(command(reference), check=True, env=env, capture_output=True, cwd=tmp_path)
    expected = rows(reference)
    assert len(expected) == 16  # 4 epochs x 4 iterations, logged every step

    run_dir = tmp_path / "killed"
    rng = random.Random(0)
    kills = 0
    for _ in range(4):
        target = len(rows(run_dir)) + rng.randint(1, 4)
        process = subprocess.Popen(
            command(run_dir, "ckpt_path=auto"),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 240
        while process.poll() is None and time.time() < deadline:
            if len(rows(run_dir)) >= target:
                time.sleep(rng.random() * 0.5)  # somewhere inside the next step
                break
            time.sleep(0.05)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills >= 2  # a run can reach its end before its kill point
    subprocess.run(command(run_dir, "ckpt_path=auto"), check=True, env=env, capture_output=True)

    got = rows(run_dir)
    assert [row["step"] for row in got] == [row["step"] for row in expected]
    assert got == expected  # values too: the resume is exact
    want = weights(reference)
    have = weights(run_dir)
    assert have.keys() == want.keys()
    assert all(torch.equal(have[key], want[key]) for key in want)
