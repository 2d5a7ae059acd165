"""Every results table has a make target, and `make spade_vs_concat SCALE=smoke` runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from spadelab.config import REPO_ROOT


def test_every_experiment_file_has_a_make_target() -> None:
    targets = set(
        re.findall(r"^([a-z0-9_]+): \$\(STAMP\)", (REPO_ROOT / "mk/tables.mk").read_text(), re.M)
    )
    tables = {p.stem for p in (REPO_ROOT / "experiments").glob("*.yaml")}
    assert tables <= targets, sorted(tables - targets)


@pytest.mark.slow
def test_make_spade_vs_concat_smoke_prints_the_table(tmp_path: Path) -> None:
    venv = Path(sys.executable).parent.parent
    result = subprocess.run(
        [
            "make",
            "-s",
            "spade_vs_concat",
            "SCALE=smoke",
            f"VENV={venv}",
            f"SWEEP_ARGS=seeds=[0] sweep_dir={tmp_path / 'sweep'} "
            "data.max_train_samples=4 data.max_val_samples=4 trainer.max_epochs=1 "
            "eval.judge.steps=5 callbacks.progress=null trainer.enable_progress_bar=false",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "SPADELAB_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = (tmp_path / "sweep" / "report.md").read_text()
    assert "10 ok, 0 failed" in report
    for label in ("SPADE / BatchNorm", "concat (block input only) / BatchNorm"):
        assert label in report
    assert (tmp_path / "sweep" / "report.png").is_file()


@pytest.mark.slow
def test_make_table3_smoke_prints_confidence_intervals(tmp_path: Path) -> None:
    """The measurement issue's done-when: `make table3 SCALE=smoke` prints CIs, not bare means."""
    venv = Path(sys.executable).parent.parent
    result = subprocess.run(
        [
            "make",
            "-s",
            "table3",
            "SCALE=smoke",
            f"VENV={venv}",
            "SWEEP_ARGS=rows=[decoder_spade,decoder_concat] seeds=[0,1] "
            f"sweep_dir={tmp_path / 'sweep'} data.max_train_samples=4 data.max_val_samples=4 "
            "trainer.max_epochs=1 eval.judge.steps=5 callbacks.progress=null "
            "trainer.enable_progress_bar=false",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "SPADELAB_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "seeds [0, 1] (2 seeds)" in out and "95% t-interval" in out, out[-3000:]
    assert "smallest resolvable" in out, out[-3000:]
    # the concat row: its mean ± half-width, and its paired Δ to decoder w/ SPADE ± half-width
    concat = next(line for line in out.splitlines() if line.startswith("decoder w/ Concat"))
    assert len(re.findall(r"[+-]?\d+\.\d ± \d+\.\d", concat)) >= 2, concat
    report = (tmp_path / "sweep" / "report.md").read_text()
    assert "4 ok, 0 failed" in report
