"""The ``spadelab`` command: subcommands, and bad input as one readable line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_runner import run_in_process
from smoke import QUIET
from spadelab.cli import COMMANDS, main

SPADELAB = Path(sys.executable).with_name("spadelab")
# One iteration (2 samples, batch 2): smoke.SMOKE_TRAIN halved.
TRAIN = [*QUIET, "callbacks.samples=null", "trainer.max_epochs=1"]
TRAIN += ["data.max_train_samples=2", "data.max_val_samples=2"]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line.lower()]


@pytest.fixture(scope="module")
def spade_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from spadelab.commands.train import train
    from spadelab.config import compose_config

    run_dir = tmp_path_factory.mktemp("cli") / "run"
    train(compose_config("train", [f"run_dir={run_dir}", *TRAIN]))
    return run_dir


# ---- the command itself ------------------------------------------------------------------


def test_help_lists_every_command() -> None:
    result = subprocess.run(
        [str(SPADELAB), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    for name in ("train", "synthesize", "evaluate", "params", "data"):
        assert f"\n  {name} " in result.stdout
    assert set(COMMANDS) <= {line.split()[0] for line in result.stdout.splitlines()[3:]}


def test_no_arguments_prints_usage(capsys) -> None:
    assert main([]) == 0
    assert "usage: spadelab COMMAND" in capsys.readouterr().out


def test_unknown_command_exits_2_with_usage(capsys) -> None:
    assert main(["trian"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'trian'" in err and "usage: spadelab COMMAND" in err


# ---- spadelab train: bad choices and values ----------------------------------------------


@pytest.mark.parametrize(
    ("override", "choices"),
    [
        (
            "norm=batchh",
            ["batch", "instance", "none", "switchable", "switchable_inln", "syncbatch"],
        ),
        ("scale=hueg", ["cpu", "paper", "smoke"]),
    ],
)
def test_unknown_choice_lists_the_valid_ones(
    capsys, monkeypatch, tmp_path: Path, override: str, choices: list[str]
) -> None:
    code, err = run_in_process(capsys, monkeypatch, tmp_path, "train", override)
    assert code not in (0, None)
    group, value = override.split("=")
    assert f"Could not find '{group}/{value}'" in err
    [line] = error_lines(err)  # one line, the choices listed in it
    listed = line.split(f"Available options in '{group}':")[1].split()
    assert set(choices) <= set(listed)
    assert "Traceback" not in err
    assert not (tmp_path / "hydra").exists()  # nothing ran


@pytest.mark.slow
def test_negative_width_is_one_line_exit_2_without_traceback(tmp_path: Path) -> None:
    """A real process: what a user sees, nothing else."""
    result = subprocess.run(
        [
            str(SPADELAB),
            "train",
            *TRAIN,
            "model.generator.ngf=-1",
            f"run_dir={tmp_path / 'run'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    [line] = error_lines(result.stderr)
    assert line.startswith("spadelab train: error: model.generator.ngf=-1 must be >= 1")
    failed = json.loads((tmp_path / "run" / "FAILED.json").read_text())
    assert "model.generator.ngf=-1" in failed["error"]


def test_zero_label_classes_names_the_setting(capsys, monkeypatch, tmp_path: Path) -> None:
    code, err = run_in_process(
        capsys, monkeypatch, tmp_path, "train", *TRAIN, "data.label_nc=0", f"run_dir={tmp_path}"
    )
    assert code == 2
    [line] = error_lines(err)
    assert line.startswith("spadelab train: error:") and "data.label_nc" in line
    assert "Traceback" not in err


def test_unknown_key_names_it(capsys, monkeypatch, tmp_path: Path) -> None:
    code, err = run_in_process(
        capsys,
        monkeypatch,
        tmp_path,
        "train",
        *TRAIN,
        "+model.generator.ngff=3",
        f"run_dir={tmp_path}",
    )
    assert code == 2
    [line] = error_lines(err)
    assert "unknown key model.generator.ngff" in line and "valid keys:" in line


def test_checkpoint_of_another_model_is_one_clear_line(
    capsys, monkeypatch, tmp_path: Path, spade_run: Path
) -> None:
    code, err = run_in_process(
        capsys,
        monkeypatch,
        tmp_path,
        "train",
        *TRAIN,
        f"ckpt_path={spade_run}",
        "model=pix2pixhd",
        f"run_dir={tmp_path / 'run'}",
    )
    assert code == 2
    [line] = error_lines(err)
    assert "was trained with a different model" in line and str(spade_run) in line
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_missing_checkpoint_path(capsys, monkeypatch, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_run"
    code, err = run_in_process(
        capsys,
        monkeypatch,
        tmp_path,
        "train",
        *TRAIN,
        f"ckpt_path={missing}",
        f"run_dir={tmp_path}",
    )
    assert code == 2
    [line] = error_lines(err)
    assert f"ckpt_path={missing} does not exist" in line


# ---- spadelab synthesize: bad input ------------------------------------------------------


@pytest.fixture
def label_png(tmp_path: Path) -> Path:
    path = tmp_path / "label.png"
    Image.fromarray(np.full((32, 32), 3, dtype=np.uint8), mode="L").save(path)
    return path


def test_synthesize_label_beyond_label_nc(capsys, monkeypatch, tmp_path: Path, spade_run: Path):
    label = np.zeros((32, 32), dtype=np.uint8)
    label[0, 0], label[5, 5] = 10, 200
    path = tmp_path / "too_many_classes.png"
    Image.fromarray(label, mode="L").save(path)
    code, err = run_in_process(
        capsys, monkeypatch, tmp_path, "synthesize", f"ckpt={spade_run}", f"input={path}"
    )
    assert code == 2
    [line] = error_lines(err)
    assert str(path) in line and "label values [10, 200] outside [0, 10)" in line


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from spadelab.commands.train import train
    from spadelab.config import compose_config

    run_dir = tmp_path_factory.mktemp("cli_vae") / "run"
    train(compose_config("train", [f"run_dir={run_dir}", *TRAIN, "encoder=vae"]))
    return run_dir


def test_synthesize_style_that_is_not_an_image(
    capsys, monkeypatch, tmp_path: Path, vae_run: Path, label_png: Path
) -> None:
    style = tmp_path / "style.jpg"
    style.write_bytes(b"\x00\x01 definitely not a JPEG")
    code, err = run_in_process(
        capsys,
        monkeypatch,
        tmp_path,
        "synthesize",
        f"ckpt={vae_run}",
        f"input={label_png}",
        f"style={style}",
    )
    assert code == 2
    [line] = error_lines(err)
    assert f"style={style} is not a readable image" in line


def test_synthesize_style_for_a_model_without_encoder(
    capsys, monkeypatch, tmp_path: Path, spade_run: Path, label_png: Path
) -> None:
    style = tmp_path / "style.png"
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(style)
    code, err = run_in_process(
        capsys,
        monkeypatch,
        tmp_path,
        "synthesize",
        f"ckpt={spade_run}",
        f"input={label_png}",
        f"style={style}",
        f"output={tmp_path / 'out'}",
    )
    assert code == 2
    [line] = error_lines(err)
    assert "style= needs a model trained with encoder=vae" in line


def test_synthesize_missing_checkpoint(capsys, monkeypatch, tmp_path: Path, label_png: Path):
    code, err = run_in_process(
        capsys,
        monkeypatch,
        tmp_path,
        "synthesize",
        f"ckpt={tmp_path / 'gone'}",
        f"input={label_png}",
    )
    assert code == 2
    [line] = error_lines(err)
    assert f"ckpt={tmp_path / 'gone'} does not exist" in line


def test_synthesize_writes_images(capsys, monkeypatch, tmp_path: Path, spade_run: Path, label_png):
    code, _ = run_in_process(
        capsys,
        monkeypatch,
        tmp_path,
        "synthesize",
        f"ckpt={spade_run}",
        f"input={label_png}",
        f"output={tmp_path / 'out'}",
    )
    assert code == 0
    assert np.asarray(Image.open(tmp_path / "out" / "label.png")).shape == (32, 32, 3)
