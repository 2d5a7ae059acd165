"""The hard synthetic variant (``data=synthetic_hard``): extra small-object classes, colours that
depend on neighbours, and its label convention through the config, the datamodule and training."""

from __future__ import annotations

from pathlib import Path

import hydra.utils
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from spadelab.config import compose_config
from spadelab.data.check import DataError
from spadelab.data.synthetic import (
    BUSH,
    CLASSES,
    FLOWER,
    GRASS,
    HARD_CLASSES,
    HARD_PALETTE,
    HARD_THING_CLASSES,
    HOUSE,
    LABEL_NC,
    PALETTE,
    PATH,
    SAND,
    SKY,
    SNOW,
    TREE,
    VARIANTS,
    WATER,
    RenderedScenes,
    SyntheticLandscapes,
    render,
    render_image,
    render_layout,
)

EXTRA = (BUSH, FLOWER, HOUSE)


def test_hard_variant_classes_and_palette() -> None:
    hard = VARIANTS["hard"]
    assert hard.label_nc == len(HARD_CLASSES) == LABEL_NC + 3 == 13
    assert hard.classes[:LABEL_NC] == CLASSES and len(set(hard.classes)) == hard.label_nc
    assert [HARD_CLASSES[c] for c in EXTRA] == ["bush", "flower", "house"]
    assert HARD_PALETTE.shape == (13, 3) and HARD_PALETTE.dtype == np.uint8
    np.testing.assert_array_equal(HARD_PALETTE[:LABEL_NC], PALETTE)
    assert len({tuple(c) for c in HARD_PALETTE.tolist()}) == 13
    assert VARIANTS["easy"].label_nc == LABEL_NC


def test_unknown_variant_is_rejected() -> None:
    with pytest.raises(ValueError, match="data.dataset.variant='medium' is unknown; choose one"):
        SyntheticLandscapes("train", num_train=2, height=16, variant="medium")
    with pytest.raises(ValueError, match="variant='medium' is unknown"):
        render(0, 0, 8, 8, variant="medium")
    label, instance = render_layout(0, 0, 16, 16, variant="hard")
    label[0, 0] = FLOWER
    with pytest.raises(ValueError, match=r"must lie in \[0, 10\) for variant=easy"):
        render_image(label, instance, 0, 0)


def test_easy_is_the_default_variant() -> None:
    a, b = render(0, 3, 32, 40), render(0, 3, 32, 40, variant="easy")
    for field in ("label", "instance", "image"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes()


def test_hard_scene_is_the_easy_scene_plus_small_objects() -> None:
    for index in range(6):
        easy, _ = render_layout(0, index, 48, 64)
        hard, instance = render_layout(0, index, 48, 64, variant="hard")
        assert hard.dtype == np.uint8 and int(hard.max()) < 13
        # Wherever the hard scene shows an easy class, it is the easy scene's class: the extras
        # only cover things up (flowers cover grass only).
        shown = hard < LABEL_NC
        np.testing.assert_array_equal(hard[shown], easy[shown])
        assert set(np.unique(easy[hard == FLOWER]).tolist()) <= {GRASS}
        np.testing.assert_array_equal(instance > 0, np.isin(hard, HARD_THING_CLASSES))
        for obj in np.unique(instance[instance > 0]):
            assert np.unique(hard[instance == obj]).size == 1


def test_hard_render_is_deterministic_and_well_formed() -> None:
    a = render(2, 9, 40, 56, variant="hard")
    b = render(2, 9, 40, 56, variant="hard")
    assert a.image.shape == (40, 56, 3) and a.image.dtype == np.uint8
    assert a.instance.dtype == np.int32
    for field in ("label", "instance", "image"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes()
    # The same scene's easy rendering differs (extras, neighbour tones).
    assert np.abs(a.image.astype(int) - render(2, 9, 40, 56).image.astype(int)).mean() > 1


def test_extra_classes_appear_at_realistic_shares() -> None:
    # Small objects: present in most scenes, each a small share of the pixels.
    n, counts, scenes_with = 24, np.zeros(13), np.zeros(13)
    for index in range(n):
        label, _ = render_layout(0, index, 48, 48, variant="hard")
        count = np.bincount(label.ravel(), minlength=13)
        counts += count
        scenes_with += count > 0
    share = counts / counts.sum()
    minimum = {BUSH: (0.005, 0.7), FLOWER: (0.01, 0.7), HOUSE: (0.003, 0.4)}
    for cls, (least_share, least_scenes) in minimum.items():
        name = HARD_CLASSES[cls]
        assert share[cls] >= least_share, f"{name}: {share[cls]:.4f} of the pixels"
        assert scenes_with[cls] >= least_scenes * n, f"{name}: in {scenes_with[cls]:.0f}/{n}"
        assert share[cls] < 0.1, f"{name} is not a small object: {share[cls]:.3f}"


def _bordered_map(cls: int, neighbour: int) -> np.ndarray:
    """48x64: sky above row 16, ``cls`` below, and a 4-column band of ``neighbour`` at 30..33
    (for sky: a gap that reaches down to row 30, like a col between two summits)."""
    label = np.full((48, 64), SKY, dtype=np.uint8)
    label[16:] = cls
    if neighbour == SKY:
        label[:31, 30:34] = SKY
    else:
        label[16:, 30:34] = neighbour
    return label


def _near_far_distance(cls: int, neighbour: int, variant: str) -> float:
    """RGB distance between the mean colour of ``cls`` next to the band and far from it
    (same rows, noon), averaged over four scenes' textures and light."""
    label = _bordered_map(cls, neighbour)
    instance = np.zeros(label.shape, dtype=np.int32)
    rows = slice(20, 29) if neighbour == SKY else slice(20, 48)
    distances = []
    for index in range(4):
        image = render_image(label, instance, 0, index, style=0, variant=variant)[0]
        image = image.astype(np.float64)
        near = np.concatenate([image[rows, 27:30], image[rows, 34:37]], axis=1)
        far = np.concatenate([image[rows, 0:10], image[rows, 54:64]], axis=1)
        distances.append(np.linalg.norm(near.reshape(-1, 3).mean(0) - far.reshape(-1, 3).mean(0)))
    return float(np.mean(distances))


@pytest.mark.parametrize(
    ("cls", "neighbour"),
    [(GRASS, PATH), (SAND, WATER), (TREE, WATER), (SNOW, SKY), (FLOWER, WATER), (BUSH, TREE)],
    ids=["grass|path", "sand|water", "tree|water", "snow|sky", "flower|water", "bush|tree"],
)
def test_colour_depends_on_the_neighbours(cls: int, neighbour: int) -> None:
    hard = _near_far_distance(cls, neighbour, "hard")
    assert hard > 18.0, f"{HARD_CLASSES[cls]} next to {HARD_CLASSES[neighbour]}: {hard:.1f}"
    if cls < LABEL_NC:
        # The easy renderer sees the same map: its near/far difference (shading alone) is the
        # baseline the neighbour tones must clear.
        easy = _near_far_distance(cls, neighbour, "easy")
        assert hard > easy + 12.0, (hard, easy)


def test_roofs_follow_the_trees_around_the_house() -> None:
    label = np.full((48, 64), SKY, dtype=np.uint8)
    label[16:] = GRASS
    instance = np.zeros(label.shape, dtype=np.int32)
    for obj, left in ((1, 8), (2, 44)):  # two identical houses, the second between trees
        label[24:40, left : left + 8] = HOUSE
        instance[24:40, left : left + 8] = obj
    label[16:44, 36:44] = TREE
    label[16:44, 52:60] = TREE
    image = render_image(label, instance, 0, 0, style=0, variant="hard")[0].astype(float)
    roof_open, roof_woods = image[24:29, 10:14].mean((0, 1)), image[24:29, 46:50].mean((0, 1))
    # Terracotta in the open, slate among trees: red minus blue flips sign.
    assert roof_open[0] - roof_open[2] > 40, roof_open
    assert roof_woods[0] - roof_woods[2] < 5, roof_woods


def test_hard_dataset_and_cache(tmp_path: Path) -> None:
    dataset = SyntheticLandscapes("val", num_val=3, height=24, width=32, variant="hard")
    assert dataset.label_nc == dataset.num_label_values == 13
    assert tuple(dataset.class_names) == HARD_CLASSES and dataset.palette.shape == (13, 3)
    assert SyntheticLandscapes.label_nc == LABEL_NC  # the class default stays the easy one
    cached = RenderedScenes(0, 24, 32, root=tmp_path, variant="hard")
    easy = RenderedScenes(0, 24, 32, root=tmp_path)
    assert cached.chunk_path(0) != easy.chunk_path(0)
    for index in (0, 5):
        a, b = cached.sample(index), render(0, index, 24, 32, variant="hard")
        for field in ("label", "instance", "image"):
            assert getattr(a, field).tobytes() == getattr(b, field).tobytes()


def _data_cfg(*overrides: str):  # noqa: ANN202 - an omegaconf node
    cfg = compose_config(
        "data_tool",
        ["data.crop_size=32", "data.num_workers=0", "data.batch_size=2", *overrides],
    )
    cfg.data.max_train_samples, cfg.data.max_val_samples = 4, 2
    return cfg.data


def test_synthetic_hard_config_carries_its_label_convention(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("SPADELAB_CACHE", str(tmp_path))
    data = _data_cfg("data=synthetic_hard")
    assert data.name == "synthetic_hard" and data.label_nc == 13
    assert data.dataset.variant == "hard"
    datamodule = hydra.utils.instantiate(data)
    assert datamodule.class_names == list(HARD_CLASSES)
    assert datamodule.palette.shape == (13, 3)
    batch = next(iter(datamodule.train_dataloader()))
    assert int(batch["label"].max()) < 13
    assert _data_cfg("data=synthetic").dataset.variant == "easy"


def test_hard_variant_with_the_easy_label_nc_fails_at_setup(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("SPADELAB_CACHE", str(tmp_path))
    datamodule = hydra.utils.instantiate(_data_cfg("data=synthetic", "data.dataset.variant=hard"))
    with pytest.raises(DataError, match=r"values 0\.\.12 .*data\.label_nc=10.*fix data\.label_nc"):
        datamodule.setup("fit")


@pytest.mark.slow
def test_smoke_training_on_the_hard_variant(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from spadelab.commands.train import train

    monkeypatch.setenv("SPADELAB_CACHE", str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    cfg = compose_config(
        "train",
        [
            f"run_dir={run_dir}",
            "scale=smoke",
            "data=synthetic_hard",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "callbacks.progress=null",
            "data.max_train_samples=4",
            "data.max_val_samples=2",
            "callbacks.samples.num_samples=2",
        ],
    )
    summary = train(cfg)
    assert summary["iterations"] == 2
    saved = OmegaConf.load(run_dir / "config.yaml")
    assert saved.data.label_nc == 13 and saved.data.dataset.variant == "hard"
    state = torch.load(
        run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
    )
    # The generator reads the hard variant's 13 classes plus the instance edge map.
    in_channels = {v.shape[1] for k, v in state["state_dict"].items() if v.ndim == 4}
    assert 13 + 1 in in_channels and LABEL_NC + 1 not in in_channels, in_channels
