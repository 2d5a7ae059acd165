"""Style fidelity: a classifier of the synthetic landscapes' styles, and the score it gives."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from spadelab.config import compose_config
from spadelab.data.datamodule import collate
from spadelab.metrics.style import (
    StyleNet,
    load_or_train_style_classifier,
    style_accuracy,
    style_fidelity,
)


@pytest.fixture(scope="module")
def loaders():
    cfg = compose_config(
        "train",
        ["run_dir=.", "scale=smoke", "data.max_train_samples=96", "data.max_val_samples=48"],
    )
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    generator = torch.Generator().manual_seed(0)
    train = torch.utils.data.DataLoader(
        datamodule.train_set, batch_size=16, shuffle=True, collate_fn=collate, generator=generator
    )
    val = torch.utils.data.DataLoader(datamodule.val_set, batch_size=16, collate_fn=collate)
    return train, val, len(datamodule.train_set.styles)


@pytest.fixture(scope="module")
def classifier(loaders, tmp_path_factory: pytest.TempPathFactory):
    train, val, num_styles = loaders
    cache = tmp_path_factory.mktemp("style")
    model, report = load_or_train_style_classifier(
        cache, "k", train, val, num_styles, steps=120, width=8
    )
    return model, report, cache


def test_style_classifier_is_well_above_chance_on_real_images(classifier, loaders) -> None:
    model, report, _ = classifier
    _, val, num_styles = loaders
    assert num_styles == 4
    # Chance is 25%; the four styles differ in global colour, so a small CNN separates them.
    assert report["val_accuracy"] >= 60.0, report
    assert style_accuracy(model, val)["accuracy"] == pytest.approx(report["val_accuracy"])


def test_style_classifier_is_cached(classifier, loaders) -> None:
    model, report, cache = classifier
    _, _, num_styles = loaders
    again, report_again = load_or_train_style_classifier(
        cache, "k", None, None, num_styles, steps=120, width=8
    )
    assert report_again == report
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_fidelity_of_a_generator_that_copies_its_guide_is_the_ceiling(classifier, loaders):
    """An oracle that returns the guiding image scores what the classifier gets on guides."""
    model, _, _ = classifier
    _, val, num_styles = loaders
    scores = style_fidelity(lambda batch, guide: guide, val, model, num_styles, max_images=16)
    assert scores["chance"] == 25.0
    assert scores["num_generated"] == sum(sum(row) for row in scores["confusion"])
    # Each guide is one real image of its style, so each row of the confusion is one-hot.
    assert all(max(row) == sum(row) for row in scores["confusion"])
    assert scores["style_fidelity"] >= 50.0


def test_fidelity_of_a_style_blind_generator_is_chance(classifier, loaders) -> None:
    model, _, _ = classifier
    _, val, num_styles = loaders
    constant = torch.zeros(1, 3, 32, 32)
    scores = style_fidelity(
        lambda batch, guide: constant.expand(len(guide), -1, -1, -1), val, model, num_styles
    )
    # The same output whatever the guide: exactly one of the four guides can be "right".
    assert scores["style_fidelity"] == pytest.approx(25.0)


def test_a_split_without_every_style_is_named(classifier) -> None:
    from spadelab.metrics.style import MissingStyleError

    model, _, _ = classifier
    one_style = [{"image": torch.zeros(2, 3, 32, 32), "style": [0, 0], "path": ["a", "b"]}]
    with pytest.raises(MissingStyleError, match=r"style\(s\) \[1, 2, 3\]"):
        style_fidelity(lambda batch, guide: guide, one_style, model, 4)


def test_style_net_shapes() -> None:
    assert StyleNet(4)(torch.rand(2, 3, 40, 24) * 2 - 1).shape == (2, 4)
    with pytest.raises(ValueError, match="num_styles"):
        StyleNet(1)


def test_style_fidelity_curves_in_training_and_the_same_classifier_in_evaluate(
    tmp_path: Path,
) -> None:
    """A VAE run with the in-training evaluation logs eval/style_fidelity curves (raw and EMA);
    `spadelab evaluate` then scores it with the very classifier the callback trained."""
    import csv

    from smoke import QUIET
    from spadelab.commands.evaluate import evaluate
    from spadelab.commands.train import train

    run, cache = tmp_path / "run", tmp_path / "cache"
    train(
        compose_config(
            "train",
            [
                f"run_dir={run}",
                *QUIET,
                "callbacks.samples=null",
                "encoder=vae",
                "data.max_val_samples=24",
                "callbacks=with_eval",
                f"callbacks.evaluation.cache_dir={cache}",
                "callbacks.evaluation.max_images=4",
            ],
        )
    )
    rows = list(csv.DictReader((next(run.glob("logs/**/metrics.csv"))).open()))
    curve = [float(r["eval/style_fidelity"]) for r in rows if r.get("eval/style_fidelity")]
    assert len(curve) == 2  # scale=smoke: 2 epochs, one evaluation each
    assert all(0.0 <= v <= 100.0 for v in curve)
    assert any(r.get("eval_ema/style_fidelity") for r in rows)
    classifiers = sorted(cache.glob("style-*.pt"))
    assert len(classifiers) == 1
    trained_at = classifiers[0].stat().st_mtime_ns

    results = evaluate(
        compose_config(
            "evaluate", [f"ckpt={run}", f"eval.cache_dir={cache}", "eval.style.max_images=4"]
        )
    )
    assert sorted(cache.glob("style-*.pt")) == classifiers  # read back, not retrained
    assert classifiers[0].stat().st_mtime_ns == trained_at
    assert set(results["style_classifier"]) == {"ceiling_accuracy", "styles"}
    for name in ("generator", "generator_ema"):
        assert 0.0 <= results[name]["style_fidelity"] <= 100.0
