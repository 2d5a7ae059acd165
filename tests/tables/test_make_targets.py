"""Every results table has a make target; `make spade_vs_concat` and `make table3` run at smoke."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from spadelab.config import REPO_ROOT

# A few images, one epoch and a 5-step judge: the targets run end to end in seconds.
TINY = (
    "data.max_train_samples=4 data.max_val_samples=4 trainer.max_epochs=1 eval.judge.steps=5 "
    "callbacks.progress=null trainer.enable_progress_bar=false"
)


def make_smoke(target: str, sweep_args: str, tmp_path: Path) -> str:
    """Run `make TARGET SCALE=smoke` into tmp_path/sweep with this venv; its stdout."""
    venv = Path(sys.executable).parent.parent
    result = subprocess.run(
        [
            "make",
            "-s",
            target,
            "SCALE=smoke",
            f"VENV={venv}",
            f"SWEEP_ARGS={sweep_args} sweep_dir={tmp_path / 'sweep'} {TINY}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "SPADELAB_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_every_experiment_file_has_a_make_target() -> None:
    targets = set(
        re.findall(r"^([a-z0-9_]+): \$\(STAMP\)", (REPO_ROOT / "mk/tables.mk").read_text(), re.M)
    )
    tables = {p.stem for p in (REPO_ROOT / "experiments").glob("*.yaml")}
    assert tables <= targets, sorted(tables - targets)


@pytest.mark.slow
def test_make_spade_vs_concat_smoke_prints_the_table(tmp_path: Path) -> None:
    make_smoke("spade_vs_concat", "seeds=[0]", tmp_path)
    report = (tmp_path / "sweep" / "report.md").read_text()
    assert "10 ok, 0 failed" in report
    for label in ("SPADE / BatchNorm", "concat (block input only) / BatchNorm"):
        assert label in report
    assert (tmp_path / "sweep" / "report.png").is_file()


@pytest.mark.slow
def test_make_table3_smoke_prints_confidence_intervals(tmp_path: Path) -> None:
    """The measurement issue's done-when: `make table3 SCALE=smoke` prints CIs, not bare means."""
    out = make_smoke("table3", "rows=[decoder_spade,decoder_concat] seeds=[0,1]", tmp_path)
    assert "seeds [0, 1] (2 seeds)" in out and "95% t-interval" in out, out[-3000:]
    assert "smallest resolvable" in out, out[-3000:]
    # the concat row: its mean ± half-width, and its paired Δ to decoder w/ SPADE ± half-width
    concat = next(line for line in out.splitlines() if line.startswith("decoder w/ Concat"))
    assert len(re.findall(r"[+-]?\d+\.\d ± \d+\.\d", concat)) >= 2, concat
    assert "4 ok, 0 failed" in (tmp_path / "sweep" / "report.md").read_text()
