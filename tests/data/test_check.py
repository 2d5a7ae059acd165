"""The data checker finds every planted fault, naming the file, in one report."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spadelab.commands.data import main
from spadelab.data import check as checks
from spadelab.data.ade20k import ADE20K
from spadelab.data.check import DataError, check_dataset, quick_check
from spadelab.data.export import export_synthetic
from spadelab.data.labels import LabelSpec
from spadelab.data.synthetic import SyntheticLandscapes


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture
def faulty_ade(tmp_path: Path) -> dict[str, Path]:
    """An ADE20K export with one planted fault per pair; returns fault -> file to blame."""
    root = export_synthetic("ade20k", tmp_path / "ade", 6, 3, 48, 64, seed=1)
    base = root / "ADEChallengeData2016"
    images, labels = base / "images", base / "annotations"
    faults = {
        "missing label": images / "training/ADE_train_00000001.jpg",
        "missing image": labels / "training/ADE_train_00000002.png",
        "size mismatch": labels / "training/ADE_train_00000003.png",
        "truncated png": labels / "training/ADE_train_00000004.png",
        "three channels": labels / "training/ADE_train_00000005.png",
        "out of range": labels / "validation/ADE_val_00000001.png",
        "truncated jpeg": images / "validation/ADE_val_00000002.jpg",
    }
    (labels / "training/ADE_train_00000001.png").unlink()
    (images / "training/ADE_train_00000002.jpg").unlink()
    label = Image.open(faults["size mismatch"])
    label.resize((32, 24), Image.Resampling.NEAREST).save(faults["size mismatch"])
    truncate(faults["truncated png"])
    Image.open(faults["three channels"]).convert("RGB").save(faults["three channels"])
    values = np.asarray(Image.open(faults["out of range"])).copy()
    values[:2, :2] = 200
    Image.fromarray(values).save(faults["out of range"])
    truncate(faults["truncated jpeg"])
    faults["root"] = root
    return faults


def test_check_reports_every_fault_once(faulty_ade: dict[str, Path], data_config) -> None:
    report = check_dataset(data_config("ade20k", faulty_ade["root"]), workers=2)
    assert not report.ok
    kinds = {
        "missing label": checks.UNPAIRED,
        "missing image": checks.UNPAIRED,
        "size mismatch": checks.SIZE,
        "truncated png": checks.UNREADABLE,
        "three channels": checks.CHANNELS,
        "out of range": checks.RANGE,
        "truncated jpeg": checks.UNREADABLE,
    }
    for fault, kind in kinds.items():
        assert str(faulty_ade[fault]) in report.paths(kind), fault
    # Exactly the planted faults, nothing else (the healthy pair ADE_train_00000006 is clean).
    assert len(report.problems) == len(kinds)
    assert report.pairs == {"train": 4, "val": 3}
    summary = report.summary()
    for fault in kinds:
        assert faulty_ade[fault].name in summary
    assert "label values [200]" in summary
    assert "image without label" in summary and "label without image" in summary
    assert "3 channel(s) (mode RGB)" in summary
    with pytest.raises(DataError, match="ADE_val_00000001"):
        report.raise_if_problems()


def test_check_cli_exit_code_and_report(
    faulty_ade: dict[str, Path], tmp_path: Path, capsys
) -> None:
    report = tmp_path / "report.json"
    code = main(
        ["check", "data=ade20k", f"data.dataset.root={faulty_ade['root']}", f"report={report}"]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "7 problem(s)" in out and "ADE_train_00000004.png" in out
    assert report.is_file() and '"ok": false' in report.read_text()
    assert main(["check", "data=synthetic", "split=val"]) == 0


def test_check_instances_and_empty_split(copy_export, data_config) -> None:
    root = copy_export("cityscapes")
    instance = next((root / "gtFine/train").rglob("*_instanceIds.png"))
    Image.open(instance).resize((10, 10)).save(instance)
    for path in (root / "leftImg8bit/val").rglob("*.png"):
        path.unlink()
    for path in (root / "gtFine/val").rglob("*.png"):
        path.unlink()
    report = check_dataset(data_config("cityscapes", root))
    assert report.paths(checks.SIZE) == [str(instance)]
    assert [p.split for p in report.problems if p.kind == checks.EMPTY] == ["val"]


def test_check_unknown_palette_colour(copy_export, data_config) -> None:
    root = copy_export("folder")
    label = root / "val/labels/val_00001.png"
    colours = np.asarray(Image.open(label)).copy()
    colours[0, 0] = (1, 2, 3)
    Image.fromarray(colours).save(label)
    cfg = data_config("folder", root, "data.label_nc=10", "data.dataset.palette_file=palette.json")
    report = check_dataset(cfg)
    assert report.paths(checks.DECODE) == [str(label)]
    assert "(1, 2, 3)" in report.summary()


def test_check_config_mismatch_and_missing_root(exported, data_config) -> None:
    report = check_dataset(data_config("ade20k", exported["ade20k"], "data.label_nc=150"))
    assert any(p.kind == checks.CONFIG and "data.label_nc" in p.message for p in report.problems)
    missing = check_dataset(data_config("ade20k", "???"))
    assert "data.dataset.root=..." in missing.summary()


# --- quick_check -------------------------------------------------------------------------------
def test_quick_check_lists_all_findings(copy_export) -> None:
    root = copy_export("ade20k")
    base = root / "ADEChallengeData2016"
    (base / "annotations/training/ADE_train_00000004.png").unlink()
    first = base / "annotations/training/ADE_train_00000001.png"
    Image.open(first).convert("RGB").save(first)
    dataset = ADE20K(str(root), "train", strict=False)
    with pytest.raises(DataError) as error:
        quick_check(dataset, LabelSpec(150), split="train", name="ade20k")
    message = str(error.value)
    assert "3 problem(s)" in message
    assert "data.label_nc=150" in message
    assert "ADE_train_00000004.jpg: image without label" in message
    assert "ADE_train_00000001.png: label has 3 channel(s)" in message


def test_quick_check_is_cheap_on_20k_pairs(exported) -> None:
    dataset = ADE20K(str(exported["ade20k"]), "train")
    dataset.pairs = dataset.pairs * 5000  # 20k pairs; only a few files may be opened
    start = time.perf_counter()
    quick_check(dataset, LabelSpec(151), split="train", name="ade20k")
    assert time.perf_counter() - start < 1.0


def test_quick_check_synthetic_label_range() -> None:
    dataset = SyntheticLandscapes("val", num_val=3, height=32)
    quick_check(dataset, LabelSpec(10, use_instance=True), split="val", name="synthetic")
    with pytest.raises(DataError, match=r"label values \[.*\] outside \[0, 3\)"):
        quick_check(dataset, LabelSpec(3), split="val", name="synthetic")


def test_datamodule_setup_runs_quick_check(make_datamodule, exported) -> None:
    dm = make_datamodule("ade20k", exported["ade20k"], "data.label_nc=150")
    with pytest.raises(DataError, match="fix data.label_nc"):
        dm.setup("fit")
    dm = make_datamodule("coco_stuff_stuffthingmaps", exported["coco_stuff_stuffthingmaps"])
    dm.setup("fit")  # no instances and use_instance false: clean
