"""One home each: Hydra quoting of paths (``config.override_value``) and the judge's settings
(``config.JudgeConfig``, used by conf/evaluate.yaml and the in-training callback)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from spadelab.callbacks import EvaluationCallback
from spadelab.config import JudgeConfig, StyleConfig, compose_config, override_value


@pytest.mark.parametrize(
    "name", ["plain-dir_1.0", "with space", "a,b", "k=v", "it's", "[brackets]", "back\\slash"]
)
def test_override_value_survives_hydra(tmp_path: Path, name: str) -> None:
    path = str(tmp_path / name)
    cfg = compose_config("train", [f"run_dir={override_value(path, 'run_dir')}"])
    assert cfg.run_dir == path


def test_override_value_leaves_plain_paths_alone() -> None:
    assert override_value("/a/b-c_d.e:f+g", "run_dir") == "/a/b-c_d.e:f+g"
    assert override_value("/a b", "run_dir") == "'/a b'"
    assert override_value("/it's", "run_dir") == '"/it\'s"'


@pytest.mark.parametrize("value", ["/both'\"quotes", "/ends\\"])
def test_override_value_refuses_what_hydra_cannot_carry(value: str) -> None:
    with pytest.raises(ValueError, match=r"^--out=.* use a plainer path$"):
        override_value(value, "--out")


def test_judge_defaults_have_one_home() -> None:
    cfg = compose_config("evaluate", ["ckpt=x"])
    assert dict(cfg.eval.judge) == dataclasses.asdict(JudgeConfig())
    tuned = compose_config("evaluate", ["ckpt=x", "eval.judge.lr=0.5", "eval.judge.steps=7"])
    assert dict(tuned.eval.judge) == dataclasses.asdict(JudgeConfig(steps=7, lr=0.5))
    callback = EvaluationCallback(judge_steps=9)
    assert callback.eval_cfg["judge"] == dataclasses.asdict(JudgeConfig(steps=9))


def test_style_classifier_defaults_have_one_home() -> None:
    cfg = compose_config("evaluate", ["ckpt=x"])
    assert dict(cfg.eval.style) == dataclasses.asdict(StyleConfig())
    tuned = compose_config("evaluate", ["ckpt=x", "eval.style.steps=7", "eval.style.lr=0.5"])
    assert dict(tuned.eval.style) == dataclasses.asdict(StyleConfig(steps=7, lr=0.5))
    callback = EvaluationCallback(max_images=5, style_fidelity=False)  # YAML's false
    assert callback.eval_cfg["style"] == dataclasses.asdict(
        StyleConfig(fidelity="false", max_images=5)
    )
    with pytest.raises(
        ValueError,
        match=r"^callbacks\.evaluation\.style_fidelity='always' is not one of auto, true, false$",
    ):
        EvaluationCallback(style_fidelity="always")


def test_judge_values_are_checked_like_every_plain_key() -> None:
    from spadelab.runtime import check_unknown_keys

    cfg = compose_config("evaluate", ["ckpt=x", "eval.judge.lr=abc"])
    with pytest.raises(ValueError, match=r"eval\.judge\.lr='abc' is not a valid value"):
        check_unknown_keys(cfg)
