"""Every new choice of issue 13 trains and resumes at smoke scale through the real ``train()``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

import smoke
from spadelab.checkpoints import load_checkpoint
from spadelab.commands.train import train
from spadelab.config import compose_config
from spadelab.data.labels import LabelSpec
from spadelab.losses import ClassBalance
from spadelab.module import OasisObjective, SemanticSynthesis
from spadelab.nets.oasis import OASISDiscriminator

QUIET = [
    *smoke.QUIET,
    "data.max_val_samples=2",
    "callbacks.samples.num_samples=2",
    # The OASIS discriminator halves the image six times.
    "data.crop_size=64",
]
ROWS = {
    "clade": ["modulation=clade"],
    "clade_icpe": ["modulation=clade_icpe", "norm=instance"],
    "oasis": ["model=oasis"],
    "spade_oasis_d": ["model=spade_oasis_d"],
    "crn": ["model=crn"],
}


def compose(run_dir: Path, *overrides: str) -> DictConfig:
    return compose_config("train", [f"run_dir={run_dir}", *QUIET, *overrides])


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.parametrize("overrides", list(ROWS.values()), ids=list(ROWS))
def test_new_choice_trains_and_its_checkpoint_generates(tmp_path: Path, overrides) -> None:
    run_dir = tmp_path / "run"
    cfg = compose(run_dir, "trainer.max_epochs=1", "data.max_train_samples=4", *overrides)
    summary = train(cfg)
    assert summary["iterations"] == 2
    metrics = summary["metrics"]
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    oasis_d = "oasis" in overrides[0]
    assert ("loss/d_labelmix" in metrics) == oasis_d
    assert ("loss/g_feat" in metrics) == (not oasis_d)
    module = load_checkpoint(run_dir)
    assert isinstance(module.discriminator, OASISDiscriminator) == oasis_d
    label = torch.zeros(2, 1, 64, 64, dtype=torch.long)
    fake = module.synthesize({"label": label, "instance": torch.zeros_like(label)})
    assert fake.shape == (2, 3, 64, 64) and torch.isfinite(fake).all()


@pytest.mark.slow
def test_oasis_resume_is_bit_identical(tmp_path: Path) -> None:
    # 3D noise and LabelMix's coin flips draw from the global RNG every step; EMA is on.
    common = ["model=oasis", "data.max_train_samples=4", "trainer.max_epochs=2"]
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    train(compose(run_a, *common))
    train(compose(run_b, *common, "trainer.max_epochs=1"))
    summary = train(compose(run_b, *common, f"ckpt_path={run_b}"))
    assert summary["iterations"] == 4
    a, b = load(run_a / "checkpoints" / "last.ckpt"), load(run_b / "checkpoints" / "last.ckpt")
    assert a["global_step"] == b["global_step"] == 8
    assert {key.split(".")[0] for key in a["state_dict"]} >= {"generator_ema", "discriminator"}
    different = [k for k, v in a["state_dict"].items() if not torch.equal(v, b["state_dict"][k])]
    assert not different, different[:5]


def test_dataset_class_weights_are_counted_once_and_cached(tmp_path: Path) -> None:
    objective = OasisObjective(
        num_classes=4,
        ignore_index=3,
        class_balance=ClassBalance.dataset,
        lambda_labelmix=10.0,
        cache_dir=str(tmp_path / "cache"),
    )
    labels = [torch.tensor([[[[0, 0, 1, 3]]]]), torch.tensor([[[[0, 2, 2, 2]]]])]
    calls = []

    def read_labels():
        calls.append(1)
        return iter(labels)

    data_cfg = {"name": "synthetic", "label_nc": 3}
    path = objective.load_dataset_counts(data_cfg, read_labels)
    assert calls == [1] and json.loads(path.read_text())["counts"] == [3, 1, 3, 1]
    # counts 3, 1, 3 (don't-care left out): total 7 over 3 classes.
    expected = torch.tensor([7 / 9, 7 / 3, 7 / 9, 0.0])
    torch.testing.assert_close(objective.weights(torch.zeros(1, 2, 2, dtype=torch.long)), expected)
    # A second run (another process) reads the cache instead of the dataset.
    again = OasisObjective(4, 3, ClassBalance.dataset, 10.0, str(tmp_path / "cache"))
    assert again.load_dataset_counts(data_cfg, read_labels) == path and calls == [1]
    torch.testing.assert_close(again.dataset_weights, expected)
    # Another dataset config gets its own file.
    assert again.load_dataset_counts({"name": "other"}, read_labels) != path


def test_dataset_class_balance_trains(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cfg = compose(
        tmp_path / "run",
        "model=spade_oasis_d",
        "loss.class_balance=dataset",
        f"loss.class_stats_cache={cache}",
        "trainer.max_epochs=1",
        "data.max_train_samples=4",
    )
    assert train(cfg)["iterations"] == 2
    assert len(list(cache.glob("class-counts-*.json"))) == 1


def test_oasis_loss_settings_fail_at_start_in_one_line(tmp_path: Path) -> None:
    def module(*overrides: str) -> SemanticSynthesis:
        cfg = compose(tmp_path / "run", *overrides)
        return SemanticSynthesis(OmegaConf.to_container(cfg, resolve=True))

    with pytest.raises(ValueError, match=r"loss.lambda_feat=10(\.0)?: the OASIS discriminator"):
        module("model=oasis", "loss.lambda_feat=10")
    with pytest.raises(ValueError, match="loss.class_balance=often must be one of"):
        module("model=oasis", "loss.class_balance=often")
    with pytest.raises(ValueError, match="loss.lambda_labelmix=10.0 needs the OASIS"):
        module("model=spade_decoder", "+loss.lambda_labelmix=10")
    assert (
        module("model=oasis", "loss.class_balance=none")
        .oasis.weights(torch.zeros(1, 1, 1, dtype=torch.long))
        .eq(1)
        .all()
    )


def test_class_weights_batch_mode_ignores_dont_care() -> None:
    spec = LabelSpec(3, contain_dontcare_label=True)
    d = OASISDiscriminator(spec.semantic_nc, ndf=1, num_res_blocks=2)
    objective = OasisObjective.from_config({"lambda_labelmix": 0}, d, spec)
    classes = torch.tensor([[[0, 0, 1, 3]]])
    torch.testing.assert_close(objective.weights(classes), torch.tensor([0.75, 1.5, 0, 0]))
