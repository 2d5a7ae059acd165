"""Synthetic exports follow each real layout exactly; the data CLI's outputs and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spadelab.commands.data import main
from spadelab.data import synthetic
from spadelab.data.export import COCO_STUFF_IDS, class_lut, export_synthetic


def names(folder: Path, pattern: str = "*") -> list[str]:
    return sorted(p.name for p in folder.glob(pattern))


def test_ade20k_layout(exported: dict[str, Path]) -> None:
    base = exported["ade20k"] / "ADEChallengeData2016"
    assert names(base / "images/training") == [f"ADE_train_{i:08d}.jpg" for i in range(1, 5)]
    assert names(base / "annotations/validation") == [
        "ADE_val_00000001.png",
        "ADE_val_00000002.png",
    ]
    label = Image.open(base / "annotations/training/ADE_train_00000001.png")
    assert label.mode == "L" and label.size == (64, 48)
    values = np.unique(np.asarray(label))
    assert values.min() >= 1 and values.max() <= synthetic.LABEL_NC  # k + 1; 0 stays "other"
    assert Image.open(base / "images/training/ADE_train_00000001.jpg").format == "JPEG"
    lines = (base / "sceneCategories.txt").read_text().splitlines()
    assert len(lines) == 6 and lines[0].startswith("ADE_train_00000001 ")
    assert lines[-1].startswith("ADE_val_00000002 ")


def test_cityscapes_layout(exported: dict[str, Path]) -> None:
    root = exported["cityscapes"]
    assert names(root / "leftImg8bit/train") == ["aachen", "bochum"]
    assert names(root / "leftImg8bit/val/frankfurt") == [
        "frankfurt_000000_000019_leftImg8bit.png",
        "frankfurt_000001_000019_leftImg8bit.png",
    ]
    gt = root / "gtFine/train/aachen"
    label = Image.open(gt / "aachen_000000_000019_gtFine_labelIds.png")
    instance = Image.open(gt / "aachen_000000_000019_gtFine_instanceIds.png")
    assert (label.mode, instance.mode) == ("L", "I;16")
    label_ids, ids = np.asarray(label).astype(np.int64), np.asarray(instance).astype(np.int64)
    assert label_ids.max() <= 33
    stuff = ids < 1000
    # Cityscapes encoding: stuff holds its label id, objects label_id * 1000 + k.
    assert np.array_equal(ids[stuff], label_ids[stuff])
    assert np.array_equal(ids[~stuff] // 1000, label_ids[~stuff])
    assert (~stuff).any()


def test_coco_stuff_layouts(exported: dict[str, Path]) -> None:
    root = exported["coco_stuff"]
    assert names(root) == [
        "train_img",
        "train_inst",
        "train_label",
        "val_img",
        "val_inst",
        "val_label",
    ]
    assert names(root / "train_img")[0] == "000000000001.jpg"
    label = np.asarray(Image.open(root / "train_label/000000000001.png"))
    allowed = set(COCO_STUFF_IDS.values()) | {255}
    assert set(np.unique(label).tolist()) <= allowed and (label == 255).any()
    assert Image.open(root / "train_inst/000000000001.png").mode == "L"
    official = exported["coco_stuff_stuffthingmaps"]
    assert names(official) == ["images", "stuffthingmaps_trainval2017"]
    assert names(official / "images/val2017") == ["000000500001.jpg", "000000500002.jpg"]
    assert names(official / "stuffthingmaps_trainval2017/val2017")[0] == "000000500001.png"


def test_folder_layout(exported: dict[str, Path]) -> None:
    root = exported["folder"]
    palette = json.loads((root / "palette.json").read_text())["classes"]
    assert [c["name"] for c in palette] == list(synthetic.CLASSES)
    label = Image.open(root / "train/labels/train_00000.png")
    assert label.mode == "RGB"
    colours = {tuple(c) for c in np.asarray(label).reshape(-1, 3).tolist()}
    assert colours <= {tuple(c["color"]) for c in palette}
    assert Image.open(root / "train/instances/train_00000.png").mode == "I;16"
    assert names(root / "val/images") == ["val_00000.png", "val_00001.png"]


def test_export_refuses_overwrite_and_bad_arguments(tmp_path: Path) -> None:
    export_synthetic("folder", tmp_path, 1, 1, 16, 16)
    with pytest.raises(FileExistsError, match="overwrite=true"):
        export_synthetic("folder", tmp_path, 1, 1, 16, 16)
    export_synthetic("folder", tmp_path, 2, 1, 16, 16, overwrite=True)
    assert len(list((tmp_path / "train/images").iterdir())) == 2
    with pytest.raises(ValueError, match="format='voc' is unknown"):
        export_synthetic("voc", tmp_path / "x")
    with pytest.raises(ValueError, match="n_train=0"):
        export_synthetic("ade20k", tmp_path / "y", n_train=0)
    with pytest.raises(ValueError, match="no mapping for synthetic classes"):
        class_lut({"sky": 1})


# --- CLI ---------------------------------------------------------------------------------------
def test_cli_export_then_preview(tmp_path: Path, capsys) -> None:
    out = tmp_path / "city"
    args = ["format=cityscapes", f"out={out}", "n=2", "n_val=1", "height=32", "width=64"]
    assert main(["export-synthetic", *args]) == 0
    printed = capsys.readouterr().out
    assert f"data=cityscapes data.dataset.root={out}" in printed
    assert len(list((out / "gtFine/val").rglob("*_instanceIds.png"))) == 1

    png = tmp_path / "preview.png"
    code = main(
        ["preview", "data=cityscapes", f"data.dataset.root={out}", "data.crop_size=64",
         f"out={png}", "n=3", "split=train"]
    )  # fmt: skip
    assert code == 0
    grid = Image.open(png)
    # 2 train samples (n is capped by the split): one row of label | image pairs, 64x32 tiles.
    assert grid.size == (2 + 4 * (64 + 2), 2 + 32 + 2)


def test_cli_preview_synthetic(tmp_path: Path) -> None:
    png = tmp_path / "p.png"
    assert main(["preview", "data=synthetic", "data.crop_size=32", f"out={png}", "n=5"]) == 0
    assert Image.open(png).size == (2 + 8 * 34, 2 + 2 * 34)  # 4 pairs per row, 2 rows


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        ([], 2, "usage: spadelab data"),
        (["frob"], 2, "unknown command"),
        (["export-synthetic", "out=/tmp/x"], 2, "format= is required"),
        (["export-synthetic", "format=ade20k"], 2, "out= is required"),
        (["check", "data=ade20k"], 2, "data.dataset.root=..."),
        (["check", "nosuchkey=1"], 2, "Could not override 'nosuchkey'"),
        (["check", "data=nosuchdata"], 2, "nosuchdata"),
        (["check", "verbose"], 2, "key=value"),
        (["preview", "data=cityscapes", "data.dataset.root=/no/such/dir", "out=x.png"], 2,
         "no Cityscapes data under /no/such/dir"),
    ],
)  # fmt: skip
def test_cli_errors_are_one_line(argv: list[str], code: int, message: str, capsys) -> None:
    assert main(argv) == code
    captured = capsys.readouterr()
    text = captured.err + captured.out
    assert message in text
    assert "Traceback" not in text
    if argv:
        assert len(captured.err.strip().splitlines()) == 1


def test_cli_help(capsys) -> None:
    assert main(["--help"]) == 0
    assert "export-synthetic" in capsys.readouterr().out
