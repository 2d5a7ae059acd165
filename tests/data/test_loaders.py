"""Every real-dataset loader, through the real conf/data/*.yaml, on files in the exact layouts."""

from __future__ import annotations

import json
from pathlib import Path

import hydra.utils
import numpy as np
import pytest
import torch
from PIL import Image

from spadelab.data import synthetic
from spadelab.data.ade20k import ADE20K, ADE20K_CLASSES, OUTDOOR_SCENES
from spadelab.data.check import DataError
from spadelab.data.cityscapes import Cityscapes
from spadelab.data.coco_stuff import COCOStuff
from spadelab.data.export import (
    CITYSCAPES_IDS,
    COCO_STUFF_IDS,
    cityscapes_instance_ids,
    class_lut,
)
from spadelab.data.files import PairingError
from spadelab.data.folder import FolderDataset
from spadelab.data.labels import instance_edges, semantic_input

HEIGHT, WIDTH, SEED = 48, 64, 0
FORMAT_KEYS = [
    "ade20k",
    "ade20k_outdoor",
    "ade20k_landscape",
    "cityscapes",
    "coco_stuff",
    "coco_stuff_stuffthingmaps",
    "folder",
]


def scene(split: str, i: int) -> synthetic.SyntheticSample:
    index = i if split == "train" else synthetic.VAL_INDEX_OFFSET + i
    return synthetic.render(SEED, index, HEIGHT, WIDTH)


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def rgb(height: int = 8, width: int = 8) -> np.ndarray:
    return np.full((height, width, 3), 128, dtype=np.uint8)


# --- every format through its config ----------------------------------------------------------
@pytest.mark.parametrize("key", FORMAT_KEYS)
def test_batches_from_each_format(format_datamodule, key: str) -> None:
    dm = format_datamodule(key)
    height, width = dm.image_size
    for batch in (next(iter(dm.train_dataloader())), next(iter(dm.val_dataloader()))):
        n = batch["label"].shape[0]
        assert batch["label"].shape == (n, 1, height, width)
        assert batch["label"].dtype == torch.int64
        assert batch["instance"].shape == (n, 1, height, width)
        assert batch["image"].shape == (n, 3, height, width)
        assert batch["image"].dtype == torch.float32
        assert float(batch["image"].min()) >= -1.0 and float(batch["image"].max()) <= 1.0
        assert all(Path(p).is_file() for p in batch["path"])
        instance = batch["instance"] if dm.spec.use_instance else None
        x = semantic_input(batch["label"], dm.spec, instance)
        assert x.shape == (n, dm.spec.semantic_nc, height, width)
        one_hot = x[:, : dm.spec.num_label_values]
        assert torch.equal(one_hot.sum(1), torch.ones(n, height, width))
        if dm.spec.use_instance:
            # Trees and rocks are instances in every exported format with instance maps.
            assert float(x[:, -1].sum()) > 0
    assert dm.class_names is not None
    assert len(dm.class_names) >= dm.spec.label_nc


def test_configs_key_fields(data_config) -> None:
    expected = {
        "ade20k": (151, False, False, 0, "identity"),
        "ade20k_outdoor": (151, False, False, 0, "identity"),
        "ade20k_landscape": (151, False, False, 0, "identity"),
        "cityscapes": (35, False, True, 255, "cityscapes_train_ids"),
        "coco_stuff": (182, True, True, 182, "identity"),
        "coco_stuff_stuffthingmaps": (182, True, False, 182, "identity"),
    }
    for name, fields in expected.items():
        cfg = data_config(name, "/nowhere")
        got = (
            cfg.label_nc,
            cfg.contain_dontcare_label,
            cfg.use_instance,
            cfg.eval_ignore_index,
            cfg.eval_mapping,
        )
        assert got == fields, name
        assert cfg.name == name
    city = data_config("cityscapes", "/nowhere")
    assert (city.preprocess_mode, city.crop_size, city.aspect_ratio) == ("fixed", 512, 2.0)
    assert data_config("ade20k_outdoor", "/x").dataset.scenes == "outdoor"
    assert data_config("coco_stuff_stuffthingmaps", "/x").dataset.layout == "stuffthingmaps"
    folder = data_config("folder", "/x", "data.label_nc=7")
    assert folder.dataset.label_nc == 7


def test_max_train_samples_subset_keeps_metadata(format_datamodule) -> None:
    dm = format_datamodule("cityscapes", "data.max_train_samples=1")
    dm.setup("fit")
    assert len(dm.train_set) == 1
    assert dm.class_names[26] == "car"
    assert next(iter(dm.train_dataloader()))["label"].shape[0] == 1


# --- ADE20K ------------------------------------------------------------------------------------
def test_ade20k_values_kept_and_root_forms(exported: dict[str, Path]) -> None:
    for root in (exported["ade20k"], exported["ade20k"] / "ADEChallengeData2016"):
        dataset = ADE20K(str(root), "val")
        assert len(dataset) == 2
        for i in range(len(dataset)):
            sample = dataset[i]
            truth = scene("val", i)
            # Synthetic class k is stored as ADE value k + 1; loading keeps the value.
            assert torch.equal(sample["label"][0], torch.from_numpy(truth.label + 1).long())
            assert torch.equal(sample["instance"], torch.zeros(1, HEIGHT, WIDTH).long())
            image = (sample["image"].permute(1, 2, 0).numpy() + 1) * 127.5
            assert np.abs(image - truth.image).mean() < 8  # JPEG, quality 95
    assert ADE20K(str(exported["ade20k"]), "train").class_names[3] == "sky"


def ade_pair(root: Path, stem: str, label: np.ndarray, folder: str = "training") -> None:
    base = root / "ADEChallengeData2016"
    save(base / "images" / folder / f"{stem}.jpg", rgb(*label.shape))
    save(base / "annotations" / folder / f"{stem}.png", label.astype(np.uint8))


def test_ade20k_zero_stays_other_and_official_order(tmp_path: Path) -> None:
    label = np.array([[0, 1], [150, 3]], dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    ade_pair(tmp_path, "ADE_train_00000001", label)
    kept = ADE20K(str(tmp_path), "train")[0]["label"][0]
    assert kept.unique().tolist() == [0, 1, 3, 150]
    official = ADE20K(str(tmp_path), "train", other_last=True)
    shifted = official[0]["label"][0]
    # Official SPADE order: class k -> k - 1, "other" -> 150 (its don't-care channel).
    assert shifted[0, 0] == 150 and shifted[0, 4] == 0 and shifted[4, 0] == 149
    assert official.class_names[0] == "wall" and official.class_names[150] == "other"
    assert (official.label_nc, official.contain_dontcare_label) == (150, True)


def test_ade20k_out_of_range_names_file(tmp_path: Path) -> None:
    ade_pair(tmp_path, "ADE_train_00000001", np.full((8, 8), 212, dtype=np.uint8))
    with pytest.raises(DataError, match=r"ADE_train_00000001\.png.*212"):
        ADE20K(str(tmp_path), "train")[0]


def test_ade20k_outdoor_selects_by_scene(copy_export) -> None:
    root = copy_export("ade20k")
    categories = root / "ADEChallengeData2016" / "sceneCategories.txt"
    lines = categories.read_text().splitlines()
    scenes = {
        "ADE_train_00000001": "bedroom",
        "ADE_train_00000002": "street",
        "ADE_train_00000003": "bazaar_indoor",
        "ADE_train_00000004": "mountain_snowy",
    }
    rewritten = [f"{s} {scenes.get(s, rest)}" for s, rest in (line.split() for line in lines)]
    categories.write_text("\n".join(rewritten) + "\n")
    dataset = ADE20K(str(root), "train", scenes="outdoor")
    assert [Path(p[0]).stem for p in dataset.pairs] == ["ADE_train_00000002", "ADE_train_00000004"]
    explicit = ADE20K(str(root), "train", scenes=["bed*"])
    assert [Path(p[0]).stem for p in explicit.pairs] == ["ADE_train_00000001"]
    assert "*_outdoor" in OUTDOOR_SCENES
    categories.unlink()
    with pytest.raises(FileNotFoundError, match="sceneCategories.txt"):
        ADE20K(str(root), "train", scenes="outdoor")


def test_ade20k_landscape_relabel_and_selection(exported: dict[str, Path], tmp_path: Path) -> None:
    root = str(exported["ade20k"])
    # Exported ADE values are synthetic class + 1: sky = 1, grass = 6, tree = 7.
    keep = [synthetic.SKY + 1, synthetic.GRASS + 1, synthetic.TREE + 1]
    dataset = ADE20K(root, "train", keep_classes=keep)
    for i in range(len(dataset)):
        truth = scene("train", i).label.astype(np.int64) + 1
        expected = np.where(np.isin(truth, keep), truth, 0)
        assert np.array_equal(dataset[i]["label"][0].numpy(), expected)

    compact = ADE20K(root, "train", keep_classes=keep, compact_labels=True)
    assert compact.label_nc == 4
    assert compact.class_names == ["other", *(ADE20K_CLASSES[k] for k in keep)]
    assert set(compact[0]["label"].unique().tolist()) <= {0, 1, 2, 3}

    # Selection by content: which train scenes have >= 3 kept classes covering >= 40%?
    def selected(i: int) -> bool:
        truth = scene("train", i).label + 1
        present = sum(int((truth == k).any()) for k in keep)
        return present >= 3 and np.isin(truth, keep).mean() >= 0.4

    expected_stems = [f"ADE_train_{i + 1:08d}" for i in range(4) if selected(i)]
    cache = tmp_path / "selection.json"
    chosen = ADE20K(
        root, "train", keep_classes=keep, min_keep_classes=3, min_keep_fraction=0.4,
        selection_cache=str(cache),
    )  # fmt: skip
    assert [Path(p[0]).stem for p in chosen.pairs] == expected_stems
    assert json.loads(cache.read_text())["stems"] == expected_stems
    with pytest.raises(ValueError, match="keep_classes"):
        ADE20K(root, "train", min_keep_classes=2)
    with pytest.raises(ValueError, match="'snow' is not an ADE20K class"):
        ADE20K(root, "train", keep_classes=["sky", "snow"])


def test_ade20k_landscape_config_resolves_class_names(data_config, exported) -> None:
    cfg = data_config("ade20k_landscape", exported["ade20k"])
    dataset = hydra.utils.instantiate(cfg.dataset)(split="train", transform=None)
    assert dataset.kept is not None and ADE20K_CLASSES.index("sky") in dataset.kept
    assert "mountain*" in cfg.dataset.scenes


# --- Cityscapes --------------------------------------------------------------------------------
def test_cityscapes_ids_and_instances(exported: dict[str, Path]) -> None:
    dataset = Cityscapes(str(exported["cityscapes"]), "train")
    assert len(dataset) == 4 and dataset.has_instances
    lut = class_lut(CITYSCAPES_IDS)
    for i, (image_path, _, _) in enumerate(dataset.pairs):
        sequence = int(image_path.name.split("_")[1])  # aachen_000002_000019 -> scene 2
        truth = scene("train", sequence)
        sample = dataset[i]
        assert np.array_equal(sample["label"][0].numpy(), lut[truth.label])
        expected = cityscapes_instance_ids(lut[truth.label], truth.instance)
        assert np.array_equal(sample["instance"][0].numpy(), expected)
    assert any(int(dataset[i]["instance"].max()) >= 21000 for i in range(len(dataset)))


def test_cityscapes_16bit_instance_ids_handwritten(tmp_path: Path) -> None:
    stem = "zurich_000001_000019"
    labels = np.full((8, 12), 7, dtype=np.uint8)  # road
    labels[2:6, 1:11] = 26  # car
    instances = labels.astype(np.uint16).copy()
    instances[2:6, 1:6] = 26000
    instances[2:6, 6:11] = 26001  # a second car touching the first
    instances[0, 0] = 33000  # a bicycle pixel: needs the full 16 bits
    labels[0, 0] = 33
    save(tmp_path / "leftImg8bit/val/zurich" / f"{stem}_leftImg8bit.png", rgb(8, 12))
    save(tmp_path / "gtFine/val/zurich" / f"{stem}_gtFine_labelIds.png", labels)
    path = save(tmp_path / "gtFine/val/zurich" / f"{stem}_gtFine_instanceIds.png", instances)
    assert Image.open(path).mode == "I;16"
    sample = Cityscapes(str(tmp_path), "val")[0]
    assert sample["instance"][0, 2, 1] == 26000 and sample["instance"][0, 2, 6] == 26001
    assert sample["instance"][0, 0, 0] == 33000
    edges = instance_edges(sample["instance"][None])[0, 0]
    # The two cars share a class but not an instance: the edge channel separates them.
    assert edges[3, 5] == 1 and edges[3, 6] == 1 and edges[3, 3] == 0
    assert edges[7, 6] == 0


def test_cityscapes_unpaired_files_listed(copy_export) -> None:
    root = copy_export("cityscapes")
    victim = next((root / "gtFine/train").rglob("*_gtFine_labelIds.png"))
    victim.unlink()
    image_name = victim.name.replace("_gtFine_labelIds", "_leftImg8bit")
    with pytest.raises(PairingError, match=rf"1 image without label.*{image_name}"):
        Cityscapes(str(root), "train")
    loose = Cityscapes(str(root), "train", strict=False)
    assert len(loose) == 3 and "image without label" in loose.unmatched


# --- COCO-Stuff --------------------------------------------------------------------------------
def coco_pair(root: Path, split: str, stem: str, label: np.ndarray) -> None:
    save(root / f"{split}_img" / f"{stem}.jpg", rgb(*label.shape))
    save(root / f"{split}_label" / f"{stem}.png", label.astype(np.uint8))
    save(root / f"{split}_inst" / f"{stem}.png", np.zeros(label.shape, dtype=np.uint8))


def test_coco_unlabeled_becomes_dontcare(tmp_path: Path) -> None:
    label = np.array([[0, 181], [255, 156]], dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    coco_pair(tmp_path, "train", "000000000009", label)
    coco_pair(tmp_path, "train", "000000000025", np.full((8, 8), 200, dtype=np.uint8))
    dataset = COCOStuff(str(tmp_path), "train")
    assert dataset[0]["label"].unique().tolist() == [0, 156, 181, 182]
    with pytest.raises(DataError, match=r"000000000025\.png.*200"):
        dataset[1]


def test_coco_exported_values(exported: dict[str, Path]) -> None:
    lut = class_lut(COCO_STUFF_IDS)
    for layout, fmt in (("spade", "coco_stuff"), ("stuffthingmaps", "coco_stuff_stuffthingmaps")):
        dataset = COCOStuff(str(exported[fmt]), "val", layout=layout, load_instances=False)
        for i in range(len(dataset)):
            label = dataset[i]["label"][0].numpy()
            truth = lut[scene("val", i).label]
            labelled = label != 182
            assert np.array_equal(label[labelled], truth[labelled])
            assert (~labelled).any()  # the unlabelled patch / object borders
    with_inst = COCOStuff(str(exported["coco_stuff"]), "val")
    assert with_inst.has_instances and int(with_inst[0]["instance"].max()) > 0


def test_coco_stuffthingmaps_instances(exported: dict[str, Path], tmp_path: Path) -> None:
    root = str(exported["coco_stuff_stuffthingmaps"])
    with pytest.raises(ValueError, match="use_instance=false"):
        COCOStuff(root, "val", layout="stuffthingmaps")
    for i in range(2):
        save(tmp_path / "val2017" / f"{i + 500_001:012d}.png", np.ones((HEIGHT, WIDTH), np.uint8))
    dataset = COCOStuff(root, "val", layout="stuffthingmaps", instance_dir=str(tmp_path))
    assert dataset.has_instances and int(dataset[1]["instance"].max()) == 1


# --- folder ------------------------------------------------------------------------------------
def test_folder_palette_labels(exported: dict[str, Path]) -> None:
    dataset = FolderDataset(
        str(exported["folder"]), "train", label_nc=10, palette_file="palette.json"
    )
    assert dataset.class_names == list(synthetic.CLASSES)
    assert np.array_equal(dataset.palette, synthetic.PALETTE)
    for i in range(len(dataset)):
        truth = scene("train", i)
        sample = dataset[i]
        assert np.array_equal(sample["label"][0].numpy(), truth.label)
        assert int(sample["instance"].max()) > 0 or truth.instance.max() == 0


def test_folder_text_palette_and_unknown_colour(tmp_path: Path) -> None:
    palette = tmp_path / "colours.txt"
    palette.write_text("# index r g b name\n0 255 0 0 red thing\n1 0 0 255 blue\n")
    colours = np.zeros((4, 4, 3), dtype=np.uint8)
    colours[:] = (255, 0, 0)
    colours[:, 2:] = (0, 0, 255)
    save(tmp_path / "images/a.png", rgb(4, 4))
    save(tmp_path / "labels/a.png", colours)
    colours[1, 1] = (1, 2, 3)
    save(tmp_path / "images/b.png", rgb(4, 4))
    save(tmp_path / "labels/b.png", colours)
    dataset = FolderDataset(
        str(tmp_path), "train", label_nc=2, palette_file=str(palette), val_fraction=0.0
    )
    assert dataset.class_names == ["red thing", "blue"]
    assert dataset[0]["label"][0, 0].tolist() == [0, 0, 1, 1]
    with pytest.raises(DataError, match=r"labels/b\.png.*\(1, 2, 3\).*x=1, y=1"):
        dataset[1]


def test_folder_index_labels_dontcare_and_val_fraction(tmp_path: Path) -> None:
    for i in range(5):
        label = np.full((6, 6), i % 3, dtype=np.uint8)
        label[0, 0] = 255
        save(tmp_path / "images" / f"img{i}.jpg", rgb(6, 6))
        save(tmp_path / "labels" / f"img{i}.png", label)
    kwargs = dict(label_nc=3, contain_dontcare_label=True, dontcare_value=255, val_fraction=0.2)
    train = FolderDataset(str(tmp_path), "train", **kwargs)
    val = FolderDataset(str(tmp_path), "val", **kwargs)
    assert len(train) == 4 and len(val) == 1 and val.pairs[0][0].name == "img4.jpg"
    assert train[1]["label"].unique().tolist() == [1, 3]
    with pytest.raises(ValueError, match="contain_dontcare_label"):
        FolderDataset(str(tmp_path), "train", label_nc=3, dontcare_value=255)


def test_missing_roots_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data.dataset.root"):
        ADE20K(str(tmp_path / "nope"), "train")
    with pytest.raises(FileNotFoundError, match="data.dataset.root"):
        Cityscapes(str(tmp_path), "train")
    with pytest.raises(FileNotFoundError, match="train_img"):
        COCOStuff(str(tmp_path), "train")
    with pytest.raises(FileNotFoundError, match="images"):
        FolderDataset(str(tmp_path), "train", label_nc=3)
