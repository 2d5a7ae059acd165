"""``spadelab evaluate``: a deterministic judge, the run's own judge steps, out_dir respected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

import smoke
from spadelab.commands.evaluate import evaluate, judge_for
from spadelab.commands.train import train
from spadelab.config import compose_config

QUIET = [*smoke.QUIET, "callbacks.samples=null"]


def _judge_state(cache_dir: Path) -> dict[str, torch.Tensor]:
    data_cfg = compose_config("train", ["run_dir=.", *QUIET]).data
    datamodule = instantiate(data_cfg)
    eval_cfg = {
        "cache_dir": str(cache_dir),
        "judge": {"steps": 4, "batch_size": 4, "lr": 2e-3, "width": 4, "levels": 2, "seed": 0},
    }
    segmenter, report = judge_for(datamodule, eval_cfg, "cpu")
    assert report["identity"]["steps"] == 4
    return {k: v.clone() for k, v in segmenter.model.state_dict().items()}


def test_judge_is_bit_identical_whatever_ran_before(tmp_path: Path) -> None:
    """The same cache key gives the same judge after the global RNG has been consumed."""
    torch.manual_seed(123)
    fresh = _judge_state(tmp_path / "a")
    torch.manual_seed(987)
    torch.rand(1000)  # what an earlier row's training would have consumed
    for _ in range(7):
        torch.randint(0, 10, (3,))
    consumed = _judge_state(tmp_path / "b")
    assert fresh.keys() == consumed.keys()
    for key in fresh:
        assert torch.equal(fresh[key], consumed[key]), key


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("eval") / "run"
    cfg = compose_config(
        "train", [f"run_dir={run_dir}", *QUIET, "scale.judge_steps=3", "ema.enabled=true"]
    )
    train(cfg)
    return run_dir


def _evaluate(run_dir: Path, cache: Path, *overrides: str) -> dict:
    cfg = compose_config(
        "evaluate",
        [f"ckpt={run_dir}", f"eval.cache_dir={cache}", "eval.max_images=4", *overrides],
    )
    return evaluate(cfg)


def test_evaluate_takes_the_runs_judge_and_records_its_identity(
    smoke_run: Path, tmp_path: Path
) -> None:
    results = _evaluate(smoke_run, tmp_path / "cache")
    judge = results["judge"]
    assert judge["steps"] == 3  # the run's scale.judge_steps, as in a sweep of that scale
    assert len(judge["cache_key"]) == 16 and judge["ceiling_miou"] is not None
    assert {"generator", "generator_ema"} <= set(results)
    saved = json.loads((smoke_run / "metrics.json").read_text())
    assert saved["judge"] == judge


def test_evaluate_out_dir_leaves_the_runs_metrics_untouched(
    smoke_run: Path, tmp_path: Path
) -> None:
    _evaluate(smoke_run, tmp_path / "cache")
    before = (smoke_run / "metrics.json").read_bytes()
    out = tmp_path / "elsewhere"
    _evaluate(smoke_run, tmp_path / "cache", f"out_dir={out}", "eval.judge.steps=2")
    assert (out / "metrics.json").is_file()
    assert json.loads((out / "metrics.json").read_text())["judge"]["steps"] == 2
    assert (smoke_run / "metrics.json").read_bytes() == before
