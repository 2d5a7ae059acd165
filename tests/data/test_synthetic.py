"""The embedded procedural landscapes: determinism, geometry, appearance and the Dataset API."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from spadelab.data.synthetic import (
    CLASSES,
    LABEL_NC,
    PALETTE,
    ROCK,
    SKY,
    STYLES,
    THING_CLASSES,
    TREE,
    VAL_INDEX_OFFSET,
    WATER,
    SyntheticLandscapes,
    benchmark,
    render,
    render_image,
    render_layout,
)

N_SCENES = 50


@pytest.fixture(scope="module")
def layouts64() -> list[tuple[np.ndarray, np.ndarray]]:
    return [render_layout(0, i, 64, 64) for i in range(N_SCENES)]


def test_constants_are_consistent() -> None:
    assert 8 <= len(CLASSES) <= 12
    assert LABEL_NC == len(CLASSES) == len(set(CLASSES))
    assert PALETTE.shape == (LABEL_NC, 3) and PALETTE.dtype == np.uint8
    # Visualisation colours must be distinguishable.
    assert len({tuple(c) for c in PALETTE.tolist()}) == LABEL_NC
    assert len(STYLES) >= 2
    assert SyntheticLandscapes.label_nc == LABEL_NC


def test_same_seed_and_index_give_identical_samples() -> None:
    a, b = render(3, 17, 48, 64), render(3, 17, 48, 64)
    for field in ("label", "instance", "image"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.style == b.style


def test_different_index_or_seed_gives_a_different_scene() -> None:
    base = render(0, 5, 64, 64)
    for other in (render(0, 6, 64, 64), render(1, 5, 64, 64)):
        assert not np.array_equal(base.label, other.label)
        assert not np.array_equal(base.image, other.image)


def test_dtypes_shapes_and_ranges(layouts64: list[tuple[np.ndarray, np.ndarray]]) -> None:
    sample = render(0, 0, 40, 72)
    assert sample.label.shape == (40, 72) and sample.label.dtype == np.uint8
    assert sample.instance.shape == (40, 72) and sample.instance.dtype == np.int32
    assert sample.image.shape == (40, 72, 3) and sample.image.dtype == np.uint8
    assert 0 <= sample.style < len(STYLES)
    for label, instance in layouts64:
        assert int(label.max()) < LABEL_NC
        assert int(instance.min()) >= 0


def test_every_class_appears(layouts64: list[tuple[np.ndarray, np.ndarray]]) -> None:
    seen = np.zeros(LABEL_NC, dtype=bool)
    for label, _ in layouts64:
        seen[np.unique(label)] = True
    missing = [CLASSES[c] for c in np.flatnonzero(~seen)]
    assert not missing, f"classes never rendered in {N_SCENES} scenes: {missing}"


def test_large_flat_regions(layouts64: list[tuple[np.ndarray, np.ndarray]]) -> None:
    # A scene is mostly stuff: its largest connected sky or water region is big.
    big = 0
    for label, _ in layouts64:
        largest = 0
        for cls in (SKY, WATER):
            components, n = ndimage.label(label == cls)
            if n:
                largest = max(largest, int(np.bincount(components.ravel())[1:].max()))
        big += largest > 0.1 * label.size
    assert big >= 0.8 * N_SCENES


def test_instances_are_small_objects_of_one_class(
    layouts64: list[tuple[np.ndarray, np.ndarray]],
) -> None:
    with_objects = 0
    for label, instance in layouts64:
        things = np.isin(label, THING_CLASSES)
        # Every tree and rock pixel has an id; nothing else does.
        np.testing.assert_array_equal(instance > 0, things)
        ids = np.unique(instance[things])
        with_objects += ids.size > 0
        for obj in ids:
            classes = np.unique(label[instance == obj])
            assert classes.size == 1 and classes[0] in (TREE, ROCK)
            # Objects are small next to the image.
            assert (instance == obj).mean() < 0.25
    assert with_objects >= 0.9 * N_SCENES


def test_instance_ids_are_stable_across_resolutions() -> None:
    # The same object keeps its id at every size (ids come from the scene, not the raster).
    label64, inst64 = render_layout(0, 9, 64, 64)
    label256, inst256 = render_layout(0, 9, 256, 256)
    small = inst256[2::4, 2::4]
    both = (inst64 > 0) & (small > 0)
    assert both.sum() > 0
    assert (inst64[both] == small[both]).mean() > 0.9


def test_style_changes_colours_but_not_layout() -> None:
    a = render(0, 12, 64, 64, style=0)
    b = render(0, 12, 64, 64, style=len(STYLES) - 1)
    assert (a.style, b.style) == (0, len(STYLES) - 1)
    np.testing.assert_array_equal(a.label, b.label)
    np.testing.assert_array_equal(a.instance, b.instance)
    assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() > 10


def test_render_image_is_deterministic_and_draws_its_style() -> None:
    label, instance = render_layout(0, 4, 32, 32)
    image1, style1 = render_image(label, instance, 0, 4)
    image2, style2 = render_image(label, instance, 0, 4)
    np.testing.assert_array_equal(image1, image2)
    assert style1 == style2
    drawn = {render_image(label, instance, 0, i)[1] for i in range(40)}
    assert drawn == set(range(len(STYLES)))


def test_resolution_independence() -> None:
    for index in range(6):
        small, _ = render_layout(0, index, 64, 64)
        large, _ = render_layout(0, index, 256, 256)
        # Nearest downsampling that samples the large pixel closest to each small centre.
        agreement = (large[2::4, 2::4] == small).mean()
        assert agreement > 0.85, f"scene {index}: 64 vs 256 agree on {agreement:.1%} of pixels"


def test_wide_aspect_ratio_extends_the_square_scene() -> None:
    square, _ = render_layout(0, 21, 64, 64)
    wide = render(0, 21, 64, 128)
    assert wide.label.shape == (64, 128) and wide.image.shape == (64, 128, 3)
    # A 2:1 view shows the square scene in its centre plus more landscape at the sides.
    assert (wide.label[:, 32:96] == square).mean() > 0.99
    tall, _ = render_layout(0, 21, 128, 64)
    assert tall.shape == (128, 64)


def test_label_to_appearance_is_learnable() -> None:
    # For a fixed style, class mean colours must be further apart than the colour spread
    # within a class in one image (texture noise), or no generator could tell classes apart.
    pixels: list[list[np.ndarray]] = [[] for _ in range(LABEL_NC)]
    spread: list[list[float]] = [[] for _ in range(LABEL_NC)]
    for index in range(40):
        sample = render(0, index, 64, 64, style=0)
        image = sample.image.astype(np.float64)
        for cls in range(LABEL_NC):
            values = image[sample.label == cls]
            if len(values) >= 4:
                pixels[cls].append(values)
                spread[cls].append(float(np.sqrt(((values - values.mean(0)) ** 2).sum(1).mean())))
    present = [cls for cls in range(LABEL_NC) if pixels[cls]]
    assert len(present) == LABEL_NC
    means = {cls: np.concatenate(pixels[cls]).mean(0) for cls in present}
    noise = {cls: float(np.median(spread[cls])) for cls in present}
    for a in present:
        for b in present:
            if a < b:
                distance = float(np.linalg.norm(means[a] - means[b]))
                assert distance > max(noise[a], noise[b]), (
                    f"{CLASSES[a]} vs {CLASSES[b]}: mean colours {distance:.1f} apart, "
                    f"within-class noise {noise[a]:.1f} / {noise[b]:.1f}"
                )


def test_dataset_items_without_transform() -> None:
    dataset = SyntheticLandscapes("train", num_train=3, num_val=2, height=32, width=48)
    assert len(dataset) == 3
    item = dataset[1]
    assert item["label"].shape == (1, 32, 48) and item["label"].dtype == torch.int64
    assert item["instance"].shape == (1, 32, 48) and item["instance"].dtype == torch.int64
    assert item["image"].shape == (3, 32, 48) and item["image"].dtype == torch.float32
    assert float(item["image"].min()) >= -1.0 and float(item["image"].max()) <= 1.0
    assert int(item["label"].max()) < LABEL_NC
    assert item["path"] == "synthetic/train/000001"
    assert isinstance(item["style"], int)
    sample = render(0, 1, 32, 48)
    np.testing.assert_array_equal(item["label"][0].numpy(), sample.label)
    with pytest.raises(IndexError):
        dataset[3]


def test_train_and_val_are_disjoint() -> None:
    train = SyntheticLandscapes("train", num_train=2000, num_val=200, height=16)
    val = SyntheticLandscapes("val", num_train=2000, num_val=200, height=16)
    train_ids = {train.scene_index(i) for i in range(len(train))}
    val_ids = {val.scene_index(i) for i in range(len(val))}
    assert not train_ids & val_ids
    assert min(val_ids) >= VAL_INDEX_OFFSET
    assert val[0]["path"] == "synthetic/val/000000"
    assert not torch.equal(train[0]["label"], val[0]["label"])


def test_dataset_fixed_style() -> None:
    dataset = SyntheticLandscapes("val", num_val=4, height=16, style=1)
    assert {dataset[i]["style"] for i in range(4)} == {1}


def test_dataset_with_paired_transform() -> None:
    transforms = pytest.importorskip("spadelab.data.transforms")
    transform = transforms.PairedTransform("resize_and_crop", load_size=40, crop_size=32)
    dataset = SyntheticLandscapes("train", num_train=2, height=48, transform=transform)
    item = dataset[0]
    assert item["image"].shape == (3, 32, 32)
    assert item["label"].shape == (1, 32, 32) and item["label"].dtype == torch.int64
    assert item["instance"].shape == (1, 32, 32)
    assert int(item["label"].max()) < LABEL_NC
    assert item["path"] == "synthetic/train/000000"
    # Nearest resizing keeps instance ids on thing pixels only.
    things = torch.isin(item["label"], torch.tensor(THING_CLASSES))
    assert torch.equal(item["instance"] > 0, things)


def test_transform_receives_pil_images() -> None:
    calls = []

    def transform(image, label, instance, train, index):  # type: ignore[no-untyped-def]
        calls.append((image.mode, label.mode, instance.mode, train, index))
        return {"image": torch.zeros(3, 2, 2), "label": torch.zeros(1, 2, 2), "instance": None}

    dataset = SyntheticLandscapes("val", num_val=2, height=16, transform=transform)
    item = dataset[1]
    assert calls == [("RGB", "L", "I", False, 1)]
    assert item["path"] == "synthetic/val/000001"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "test"}, "choose one of"),
        ({"num_train": 0}, "data.num_train=0 must be >= 1"),
        ({"num_val": -1}, "data.num_val=-1 must be >= 1"),
        ({"num_train": VAL_INDEX_OFFSET + 1}, "validation range"),
        ({"height": 0}, "data.height=0"),
        ({"seed": -1}, "data.seed=-1"),
        ({"style": 9}, "style=9 is out of range"),
    ],
)
def test_dataset_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticLandscapes(**kwargs)


def test_functions_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="width=0"):
        render_layout(0, 0, 16, 0)
    with pytest.raises(ValueError, match="index=-1"):
        render_layout(0, -1, 16, 16)
    label, instance = render_layout(0, 0, 8, 8)
    with pytest.raises(ValueError, match="must lie in"):
        render_image(label + LABEL_NC, instance, 0, 0)
    with pytest.raises(ValueError, match="instance ids must be >= 0"):
        render_image(label, instance - 1, 0, 0)
    with pytest.raises(ValueError, match="must be equal"):
        render_image(label, instance[:4], 0, 0)
    with pytest.raises(ValueError, match="out of range"):
        render(0, 0, 8, 8, style=len(STYLES))


def test_tiny_images_render() -> None:
    for height, width in ((1, 1), (2, 7), (9, 3)):
        sample = render(0, 2, height, width)
        assert sample.image.shape == (height, width, 3)


def test_benchmark_reports_milliseconds() -> None:
    assert benchmark(n=2, height=16) > 0.0


# ---- the rendered-scene cache ---------------------------------------------------------------


def _render_chunk_in_process(root: str, queue: object) -> None:
    """A second process reading scene 3 through its own cache object (same files)."""
    from pathlib import Path

    from spadelab.data.synthetic import RenderedScenes

    sample = RenderedScenes(5, 24, 24, root=Path(root)).sample(3)
    queue.put((sample.label.tobytes(), sample.image.tobytes(), sample.instance.tobytes()))


@pytest.fixture
def cache_dir(tmp_path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN001, ANN201
    from spadelab.data import synthetic

    monkeypatch.setenv(synthetic.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("style", [None, 2])
def test_cached_samples_equal_rendered_ones_bit_for_bit(cache_dir, style: int | None) -> None:  # noqa: ANN001
    from spadelab.data.synthetic import RenderedScenes

    scenes = RenderedScenes(0, 40, 56, style)
    for index in (0, 31, 32, VAL_INDEX_OFFSET + 7):
        cached, fresh = scenes.sample(index), render(0, index, 40, 56, style)
        for name in ("label", "instance", "image"):
            a, b = getattr(cached, name), getattr(fresh, name)
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.tobytes() == b.tobytes(), (index, name)
        assert cached.style == fresh.style
    # Three chunks were rendered (0, 1 and the one holding validation scene 7), nothing else.
    assert len([p for p in (cache_dir / "synthetic").iterdir() if p.is_dir()]) == 3


def test_cached_dataset_items_equal_uncached_ones(cache_dir) -> None:  # noqa: ANN001
    transforms = pytest.importorskip("spadelab.data.transforms")
    transform = transforms.PairedTransform("resize_and_crop", load_size=40, crop_size=32)
    for split in ("train", "val"):
        cached = SyntheticLandscapes(split, num_train=5, num_val=3, height=36, transform=transform)
        plain = SyntheticLandscapes(
            split, num_train=5, num_val=3, height=36, transform=transform, cache=False
        )
        assert cached.cache and not plain.cache
        for i in range(len(cached)):
            # The train transform draws its crop and flip from torch's global generator.
            torch.manual_seed(i)
            a = cached[i]
            torch.manual_seed(i)
            b = plain[i]
            assert a.keys() == b.keys()
            for key in a:
                if torch.is_tensor(a[key]):
                    assert torch.equal(a[key], b[key]), (split, i, key)
                else:
                    assert a[key] == b[key]


def test_cache_is_read_not_rendered_again(cache_dir, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import pickle

    from spadelab.data.synthetic import dataset as synthetic_dataset

    first = SyntheticLandscapes("train", num_train=4, height=16)
    expected = first[2]["image"]

    def no_render(*args: object, **kwargs: object) -> None:
        raise AssertionError("rendered again although the scene is cached")

    # The cache renders through the dataset module's own name, so that is the one to replace.
    monkeypatch.setattr(synthetic_dataset, "render", no_render)
    again = SyntheticLandscapes("train", num_train=4, height=16)
    assert torch.equal(again[2]["image"], expected)
    # DataLoader workers get the dataset pickled: without the memory map, which they reopen.
    clone = pickle.loads(pickle.dumps(again))
    assert clone._scenes is None and torch.equal(clone[2]["image"], expected)


def test_two_processes_creating_the_same_cache(tmp_path) -> None:  # noqa: ANN001
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [
        context.Process(target=_render_chunk_in_process, args=(str(tmp_path), queue))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    results = [queue.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    fresh = render(5, 3, 24, 24)
    expected = (fresh.label.tobytes(), fresh.image.tobytes(), fresh.instance.tobytes())
    assert results == [expected, expected]
    entries = sorted(p.name for p in (tmp_path / "synthetic").iterdir())
    # One chunk directory and its lock file: no temporary directory left behind.
    assert len(entries) == 2 and not any(name.startswith(".tmp-") for name in entries)


def test_cache_rejects_a_non_boolean() -> None:
    with pytest.raises(ValueError, match="data.dataset.cache='yes' must be true or false"):
        SyntheticLandscapes("train", num_train=2, height=16, cache="yes")
