"""Issue 11 items that are not a bad-input line: synthesize (EMA with one map, batching,
precision, device), unreadable training files, the smoke size of Cityscapes, where logs go."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cases import SMOKE, error_lines, run_cli
from PIL import Image

from spadelab.builders import image_size
from spadelab.callbacks import SkippedFilesReport
from spadelab.config import compose_config
from spadelab.data.datamodule import BadFileError, GuardedDataset, SemanticDataModule, collate
from spadelab.module import SemanticSynthesis


def synthesize(capsys, monkeypatch, tmp_path: Path, places, *args: str) -> list[Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "out"
    code, output = run_cli(
        capsys,
        monkeypatch,
        tmp_path,
        "synthesize",
        f"ckpt={places['run']}",
        f"output={out}",
        *args,
    )
    assert code in (0, None), output[-2000:]
    return sorted(out.glob("*.png"))


def test_one_label_map_with_an_ema_run(capsys, monkeypatch, tmp_path: Path, places) -> None:
    [image] = synthesize(capsys, monkeypatch, tmp_path, places, f"input={places['labels']}/l0.png")
    assert np.asarray(Image.open(image)).std() > 0  # not a flat (black) image


def test_batched_synthesis_equals_one_map_at_a_time(capsys, monkeypatch, tmp_path, places):
    one = synthesize(
        capsys, monkeypatch, tmp_path / "a", places, f"input={places['labels']}", "batch_size=1"
    )
    three = synthesize(
        capsys, monkeypatch, tmp_path / "b", places, f"input={places['labels']}", "batch_size=3"
    )
    assert len(one) == len(three) == 3
    for a, b in zip(one, three):
        diff = np.abs(np.asarray(Image.open(a), np.int16) - np.asarray(Image.open(b), np.int16))
        assert diff.max() <= 1  # the same images (float summation order aside)


def test_bf16_precision_writes_close_images(capsys, monkeypatch, tmp_path, places) -> None:
    fp32 = synthesize(capsys, monkeypatch, tmp_path / "a", places, f"input={places['labels']}")
    bf16 = synthesize(
        capsys, monkeypatch, tmp_path / "b", places, f"input={places['labels']}", "precision=bf16"
    )
    for a, b in zip(fp32, bf16):
        diff = np.abs(np.asarray(Image.open(a), np.int16) - np.asarray(Image.open(b), np.int16))
        assert diff.mean() < 8


def test_device_moves_module_ema_copy_and_inputs_together(
    capsys, monkeypatch, tmp_path: Path, places
) -> None:
    """The CUDA bug was a module left on the CPU; the same path, checked on this CPU."""
    seen = []
    original = SemanticSynthesis.synthesize

    def spy(self, batch, *args, **kwargs):
        devices = {p.device for p in self.parameters()}  # generator_ema is a submodule
        devices |= {v.device for v in batch.values() if torch.is_tensor(v)}
        seen.append(devices)
        return original(self, batch, *args, **kwargs)

    monkeypatch.setattr(SemanticSynthesis, "synthesize", spy)
    synthesize(capsys, monkeypatch, tmp_path, places, f"input={places['labels']}", "device=cpu")
    assert seen and all(devices == {torch.device("cpu")} for devices in seen)


def test_failed_resume_does_not_mark_a_good_run_dir_failed(
    capsys, monkeypatch, tmp_path: Path, places
) -> None:
    code, output = run_cli(
        capsys,
        monkeypatch,
        tmp_path,
        "train",
        *SMOKE,
        f"run_dir={places['run']}",
        f"ckpt_path={places['bad_truncated']}",
    )
    assert code == 2 and len(error_lines(output)) == 1
    assert not (Path(places["run"]) / "FAILED.json").exists()


class Flaky(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int):
        if index == 1:
            raise OSError("cannot read /data/labels/b.png: truncated")
        return {"label": torch.zeros(1, 2, 2), "image": torch.zeros(3, 2, 2)}


def test_unreadable_training_file_is_one_line_or_skipped_and_counted() -> None:
    with pytest.raises(BadFileError, match=r"b.png: truncated .*data.on_bad_file=skip"):
        GuardedDataset(Flaky(), "error")[1]
    skipping = GuardedDataset(Flaky(), "skip")
    batch = collate([skipping[i] for i in range(3)])
    assert batch["label"].shape[0] == 2 and batch["skipped"] == [
        "cannot read /data/labels/b.png: truncated"
    ]
    report = SkippedFilesReport()
    report.on_train_batch_end(None, None, None, batch, 0)
    assert report.skipped == batch["skipped"]


def test_empty_split_does_not_blame_the_root_alone() -> None:
    import functools

    datamodule = SemanticDataModule(
        functools.partial(lambda split, transform, root: [], root="/data/ade"),
        name="ade20k_landscape",
    )
    with pytest.raises(ValueError, match=r"root=/data/ade: .*scene or class filters"):
        datamodule.setup("fit")


def test_smoke_scale_fits_cityscapes_geometry() -> None:
    cfg = compose_config("train", ["run_dir=/tmp/x", "scale=smoke", "data=cityscapes"])
    from omegaconf import OmegaConf

    height, width = image_size(OmegaConf.to_container(cfg, resolve=True)["data"])
    assert (height, width) == (32, 64) and height % 2**5 == 0


@pytest.mark.slow  # two real processes
def test_logs_go_to_the_run_and_output_dirs_and_the_run_dir_is_printed(
    tmp_path: Path, places
) -> None:
    spadelab = [sys.executable, "-m", "spadelab.cli"]
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [*spadelab, "train", *SMOKE, f"run_dir={run_dir}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    printed = [line for line in result.stdout.splitlines() if "run dir" in line]
    assert printed == [
        f"spadelab train: run dir {run_dir}",
        f"spadelab train: finished; run dir {run_dir}",
    ]
    assert (run_dir / "train.log").is_file() and not (tmp_path / "runs").exists()
    subprocess.run(
        [
            *spadelab,
            "synthesize",
            f"ckpt={run_dir}",
            f"input={places['labels']}",
            f"output={tmp_path / 'out'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert (tmp_path / "out" / "synthesize.log").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "run"]
