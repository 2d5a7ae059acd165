"""``spadelab study create`` on real smoke runs, then scripted votes and ``make table2``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spadelab.config import REPO_ROOT
from spadelab.data.synthetic import PALETTE
from spadelab.studio import study_cli
from spadelab.studio.study_db import Study


def test_create_run_vs_run(segmap_run: Path, vae_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    args = [f"a={segmap_run}", f"b={vae_run}", "n=3", f"out={out}", "a_name=SPADE"]
    assert study_cli.cli(["create", *args]) == 0
    study = Study(out)
    assert sorted(study.pairs) == [0, 1, 2]
    assert (study.meta["a_name"], study.meta["b_name"], study.meta["dataset"]) == (
        "SPADE",
        "vae",
        "synthetic",
    )
    for pair in study.pairs.values():
        a, b = (np.asarray(Image.open(out / p)) for p in (pair.a_path, pair.b_path))
        assert a.shape == b.shape == (32, 32, 3)
        assert not np.array_equal(a, b)
        label = np.asarray(Image.open(out / pair.label_path))
        # The label image is the colourised map: only palette colours.
        colours = {tuple(c) for c in label.reshape(-1, 3)}
        assert colours <= {tuple(c) for c in PALETTE.tolist()}
    # A second create into the same dir is refused.
    assert study_cli.cli(["create", *args]) == 2


def test_create_against_real_images_and_make_table2(
    segmap_run: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "study"
    # More pairs than the run's validation split (max_val_samples=4): all 4 are used.
    assert study_cli.cli(["create", f"a={segmap_run}", "b=real", "n=10", f"out={out}"]) == 0
    assert "using all of them" in capsys.readouterr().out
    study = Study(out)
    assert len(study.pairs) == 4 and study.meta["b"] == "real"
    assert study_cli.cli(["simulate", str(out), "raters=2", "prefer_a=0.5", "seed=3"]) == 0
    result = subprocess.run(
        ["make", "--no-print-directory", "table2", f"STUDY={out}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "this study: SCRIPTED (not people)" in result.stdout
    assert "Scripted votes (automated raters, not people)" in result.stdout
    assert "| paper (Park et al. 2019, Table 2) | ade20k_outdoor | SPADE | SIMS | 85.70 |" in (
        result.stdout
    )
    assert (out / "report.csv").is_file()


@pytest.mark.parametrize(
    ("extra", "message", "code"),
    [
        (["n=0"], "n=0 must be >= 1", 2),
        (["n=x"], "n=x must be an integer", 2),
        # The data= overrides reach the study's data (and its checks). The data check's
        # findings exit 1, as `spadelab data check` does (runtime.command_error).
        (["data.label_nc=3"], "label out of range", 1),
    ],
)
def test_create_errors(segmap_run: Path, tmp_path: Path, capsys, extra, message, code) -> None:
    args = ["create", f"a={segmap_run}", "b=real", f"out={tmp_path / 's'}", *extra]
    assert study_cli.cli(args) == code
    assert message in capsys.readouterr().err


def test_create_options(segmap_run: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from spadelab.studio.study_server import create_study_app

    out = tmp_path / "study"
    args = [f"a={segmap_run}", "b=real", "n=2", f"out={out}", "b_name=photos", "seed=1"]
    # data= composes the named dataset (at its own 64x64 here): maps are resized to the run's 32.
    args += ["data=synthetic", "data.max_val_samples=2", "show_label=false", "device=cpu"]
    assert study_cli.cli(["create", *args]) == 0
    study = Study(out)
    assert (study.meta["b_name"], study.meta["seed"], study.meta["show_label"]) == (
        "photos",
        "1",
        "false",
    )
    pair = study.pairs[0]
    assert np.asarray(Image.open(out / pair.a_path)).shape == (32, 32, 3)
    assert np.asarray(Image.open(out / pair.b_path)).shape == (64, 64, 3)  # the real photo
    assert TestClient(create_study_app(study)).get("/api/info").json()["show_label"] is False
