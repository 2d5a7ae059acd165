"""``spadelab synthesize``: label PNGs in, images out; style images with the VAE; bad input."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from PIL import Image

from smoke import SMOKE_TRAIN, train_run
from spadelab.commands.synthesize import synthesize
from spadelab.config import compose_config


@pytest.fixture(scope="module")
def segmap_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default SPADE decoder: deterministic given the label map."""
    return train_run(tmp_path_factory.mktemp("segmap") / "run")


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_run(tmp_path_factory.mktemp("vae") / "run", "encoder=vae")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two label PNGs (class indices, mode L) and a style photo from the synthetic val split."""
    root = tmp_path_factory.mktemp("inputs")
    cfg = compose_config("train", [f"run_dir={root}", *SMOKE_TRAIN])
    datamodule = instantiate(cfg.data)
    datamodule.setup("validate")
    labels = root / "labels"
    labels.mkdir()
    for i in range(2):
        sample = datamodule.val_set[i]
        array = sample["label"][0].numpy().astype(np.uint8)
        Image.fromarray(array, mode="L").save(labels / f"scene{i}.png")
        if i == 0:
            image = ((sample["image"].permute(1, 2, 0).numpy() + 1) * 127.5).round()
            Image.fromarray(image.astype(np.uint8)).save(root / "style.png")
    return {"labels": labels, "label": labels / "scene0.png", "style": root / "style.png"}


def compose(*overrides: str) -> DictConfig:
    return compose_config("synthesize", list(overrides))


def read(path: str | Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_one_image_per_label_map(segmap_run: Path, inputs: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = synthesize(
        compose(f"ckpt={segmap_run}", f"input={inputs['labels']}", f"output={out}")
    )
    assert result["images"] == [str(out / "scene0.png"), str(out / "scene1.png")]
    first, second = read(out / "scene0.png"), read(out / "scene1.png")
    assert first.shape == second.shape == (32, 32, 3) and first.dtype == np.uint8
    assert not np.array_equal(first, second)  # different label maps, different images


def test_segmap_generator_is_deterministic(segmap_run: Path, inputs: dict, tmp_path: Path):
    for name in ("a", "b"):
        synthesize(
            compose(f"ckpt={segmap_run}", f"input={inputs['label']}", f"output={tmp_path / name}")
        )
    assert np.array_equal(read(tmp_path / "a" / "scene0.png"), read(tmp_path / "b" / "scene0.png"))


def test_style_image_gives_diverse_samples(vae_run: Path, inputs: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    overrides = [f"ckpt={vae_run}", f"input={inputs['label']}", f"style={inputs['style']}"]
    result = synthesize(compose(*overrides, f"output={out}", "n_samples=3"))
    assert result["images"] == [str(out / f"scene0_{k:02d}.png") for k in range(3)]
    images = [read(path) for path in result["images"]]
    assert all(image.shape == (32, 32, 3) for image in images)
    for a, b in itertools.combinations(images, 2):
        assert not np.array_equal(a, b)
    # Seeded: the same command gives the same three images.
    again = synthesize(compose(*overrides, f"output={tmp_path / 'again'}", "n_samples=3"))
    for first, second in zip(result["images"], again["images"]):
        assert np.array_equal(read(first), read(second))


def test_vae_run_without_style_samples_random_z(vae_run: Path, inputs: dict, tmp_path: Path):
    cfg = compose(
        f"ckpt={vae_run}", f"input={inputs['label']}", f"output={tmp_path}", "n_samples=2"
    )
    first, second = (read(path) for path in synthesize(cfg)["images"])
    assert not np.array_equal(first, second)


def test_style_needs_a_vae_model(segmap_run: Path, inputs: dict, tmp_path: Path) -> None:
    cfg = compose(
        f"ckpt={segmap_run}",
        f"input={inputs['label']}",
        f"output={tmp_path}",
        f"style={inputs['style']}",
    )
    with pytest.raises(ValueError, match="style= needs a model trained with encoder=vae"):
        synthesize(cfg)


def test_several_samples_need_random_input(segmap_run: Path, inputs: dict, tmp_path: Path):
    cfg = compose(
        f"ckpt={segmap_run}", f"input={inputs['label']}", f"output={tmp_path}", "n_samples=2"
    )
    with pytest.raises(ValueError, match="n_samples > 1 needs a generator with random input"):
        synthesize(cfg)
    cfg = compose(
        f"ckpt={segmap_run}", f"input={inputs['label']}", f"output={tmp_path}", "n_samples=0"
    )
    with pytest.raises(ValueError, match="n_samples=0 must be >= 1"):
        synthesize(cfg)


def test_label_values_beyond_label_nc_name_the_file(segmap_run: Path, tmp_path: Path) -> None:
    label = np.zeros((32, 32), dtype=np.uint8)
    label[:4, :4], label[-1, -1] = 50, 11  # the synthetic data has label_nc=10
    path = tmp_path / "bad_label.png"
    Image.fromarray(label, mode="L").save(path)
    with pytest.raises(ValueError, match=r"bad_label\.png holds label values \[11, 50\]"):
        synthesize(compose(f"ckpt={segmap_run}", f"input={path}", f"output={tmp_path / 'out'}"))
    assert not list((tmp_path / "out").glob("*.png"))


def test_colour_label_map_is_refused(segmap_run: Path, inputs: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"style\.png is a RGB image; label maps are single"):
        synthesize(compose(f"ckpt={segmap_run}", f"input={inputs['style']}", f"output={tmp_path}"))


def test_style_that_is_not_an_image(vae_run: Path, inputs: dict, tmp_path: Path) -> None:
    style = tmp_path / "style.png"
    style.write_text("not an image")
    cfg = compose(
        f"ckpt={vae_run}", f"input={inputs['label']}", f"output={tmp_path}", f"style={style}"
    )
    with pytest.raises(ValueError, match=r"style=.*style\.png is not a readable image"):
        synthesize(cfg)


def test_missing_checkpoint_and_inputs(segmap_run: Path, inputs: dict, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"ckpt=.*nowhere does not exist"):
        synthesize(compose(f"ckpt={tmp_path / 'nowhere'}", f"input={inputs['label']}"))
    with pytest.raises(FileNotFoundError, match="without checkpoints/last.ckpt"):
        synthesize(compose(f"ckpt={tmp_path}", f"input={inputs['label']}"))
    with pytest.raises(FileNotFoundError, match=r"input=.*missing\.png does not exist"):
        synthesize(compose(f"ckpt={segmap_run}", f"input={tmp_path / 'missing.png'}"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no label images"):
        synthesize(compose(f"ckpt={segmap_run}", f"input={tmp_path / 'empty'}"))


def test_checkpoint_loads_weights_only(segmap_run: Path) -> None:
    checkpoint = torch.load(segmap_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["cfg"]["model"]["name"] == "spade_decoder"
