"""A run's evaluation in its loggers: the axes, the summary metrics, TensorBoard's HParams
session and wandb's offline run files (read back with the loggers' own readers)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

import smoke
from spadelab import loggers
from spadelab.config import compose_config

sys.path.insert(0, str(Path(__file__).parent / "tables"))
from report_files import wandb_records  # noqa: E402

QUIET = [
    *smoke.QUIET,
    *smoke.TINY,
    "data.max_val_samples=4",  # the last value of a key wins
    "scale.judge_steps=3",
    "callbacks.samples=null",
]


def axes_of(*overrides: str) -> dict[str, Any]:
    cfg = compose_config("train", ["run_dir=.", "scale=smoke", *overrides])
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    return loggers.run_axes(plain)


def test_axes_name_the_ablation_choices() -> None:
    default = axes_of("seed=3")
    assert default["model"] == "spade_decoder" and default["norm"] == "syncbatch"
    assert default["modulation"] == "spade" and default["modulation_kernel_size"] == 3
    assert isinstance(default["modulation_hidden_channels"], int)
    assert default["encoder"] == "none" and default["width_multiplier"] == 1.0
    assert default["seed"] == 3 and default["scale"] == "smoke" and default["data"] == "synthetic"
    assert "table" not in default and "row" not in default  # not part of a sweep

    concat = axes_of("modulation=concat", "norm=instance", "encoder=vae")
    assert concat["modulation"] == "concat" and concat["norm"] == "instance"
    assert concat["modulation_sites"] == "block_input+inner" and concat["encoder"] == "vae"
    icpe = axes_of("modulation=clade_icpe", "model=pix2pixhd", "norm=none")
    assert icpe["modulation"] == "clade_icpe" and icpe["modulation_positional_encoding"] is True
    assert icpe["model"] == "pix2pixhd" and icpe["norm"] == "none"
    assert axes_of("modulation=param_free")["modulation"] == "param_free"
    swept = axes_of("experiment.table=table4", "experiment.row=kernel1")
    assert swept["table"] == "table4" and swept["row"] == "kernel1"
    # Every value is a scalar TensorBoard's hparams and wandb's config accept.
    assert all(isinstance(v, str | int | float | bool) for v in concat.values())
    assert "modulation_name" not in concat  # the group's name is the axis itself


def unnamed_axes(*overrides: str) -> dict[str, Any]:
    """The axes of a config saved before groups had ``name`` (model, data and scale always had
    one): derived from ``_target_``."""
    cfg = compose_config("train", ["run_dir=.", "scale=smoke", *overrides])
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    for group in ("norm", "modulation", "encoder"):
        if isinstance(plain.get(group), dict):
            plain[group].pop("name")
    return loggers.run_axes(plain)


@pytest.mark.parametrize(
    "overrides",
    [
        (),
        ("modulation=concat", "norm=instance", "encoder=vae"),
        ("model=pix2pixhd", "norm=none", "modulation=param_free"),
        ("modulation=clade", "norm=switchable_inln"),
    ],
)
def test_axes_of_a_config_saved_before_group_names(overrides: tuple[str, ...]) -> None:
    # Dashboards of old and new runs of a sweep line up: the names derived from _target_
    # are the file names, and the model's from its generator class.
    assert unnamed_axes(*overrides) == axes_of(*overrides)


def test_clade_icpe_is_named_by_its_file() -> None:
    # The one name _target_ cannot tell: CLADE-ICPE is the CLADE class with positional maps.
    assert axes_of("modulation=clade_icpe")["modulation"] == "clade_icpe"
    assert unnamed_axes("modulation=clade_icpe")["modulation"] == "clade"


def test_summary_metrics_of_raw_and_ema_with_fid_when_present() -> None:
    results = {
        "generator": {"miou": 40.0, "accuracy": 80.0, "fd_judge": 2.5, "fid": 60.0, "n": 4},
        "generator_ema": {"miou": 45.0, "accuracy": 82.0, "fd_judge": None},
        "data": "synthetic",
    }
    assert loggers.summary_metrics(results) == {
        "eval/miou": 40.0,
        "eval/accuracy": 80.0,
        "eval/fd_judge": 2.5,
        "eval/fid": 60.0,
        "eval_ema/miou": 45.0,
        "eval_ema/accuracy": 82.0,
    }
    assert loggers.higher_is_better("eval_ema/miou") and not loggers.higher_is_better("eval/fid")


def tensorboard_session(
    log_dir: Path,
) -> tuple[dict[str, Any], dict[str, list[tuple[int, float]]]]:
    """(hparams, {metric: [(step, value)]}) of a run's HParams session, read by TensorBoard."""
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    accumulator = EventAccumulator(str(log_dir / loggers.SESSION))
    accumulator.Reload()
    tensors = accumulator.Tags()["tensors"]
    assert metadata.SESSION_START_INFO_TAG in tensors
    assert metadata.EXPERIMENT_TAG not in tensors  # the plugin gathers every run's hparams
    content = accumulator.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content
    start = metadata.parse_session_start_info_plugin_data(content)
    hparams = {
        name: getattr(value, value.WhichOneof("kind")) for name, value in start.hparams.items()
    }
    scalars = {
        tag: [
            (event.step, float(event.tensor_proto.float_val[0]))
            for event in accumulator.Tensors(tag)
        ]
        for tag in tensors
        if not tag.startswith("_hparams_/")
    }
    return hparams, scalars


def test_tensorboard_session_appends_each_evaluation(tmp_path: Path) -> None:
    axes = {"model": "spade_decoder", "seed": 0, "width_multiplier": 1.0, "row": "kernel1"}
    loggers.write_tensorboard(tmp_path, axes, {"eval/miou": 30.0}, step=10)
    loggers.write_tensorboard(tmp_path, axes, {"eval/miou": 40.0, "eval/fid": 7.0}, step=20)
    hparams, scalars = tensorboard_session(tmp_path)
    assert hparams == {
        "model": "spade_decoder",
        "seed": 0.0,
        "width_multiplier": 1.0,
        "row": "kernel1",
    }
    assert scalars == {"eval/miou": [(10, 30.0), (20, 40.0)], "eval/fid": [(20, 7.0)]}


@pytest.mark.slow
def test_evaluation_reaches_tensorboard_and_wandb_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-training callback and a later `spadelab evaluate` write into the run's own
    TensorBoard dir and wandb run (offline: a second run dir with the same id)."""
    from spadelab.commands.evaluate import evaluate
    from spadelab.commands.train import train

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_dir = tmp_path / "run"
    cache = tmp_path / "cache"
    cfg = compose_config(
        "train",
        [
            f"run_dir={run_dir}",
            *QUIET,
            "logger=[wandb,tensorboard]",
            "callbacks=with_eval",
            f"callbacks.evaluation.cache_dir={cache}",
            "callbacks.evaluation.max_images=4",
            "experiment.table=table4",
            "experiment.row=kernel1",
            "modulation.kernel_size=1",
        ],
    )
    summary = train(cfg)
    step = summary["global_step"]
    hparams, scalars = tensorboard_session(run_dir / "tensorboard")
    assert hparams["modulation"] == "spade" and hparams["modulation_kernel_size"] == 1
    assert hparams["row"] == "kernel1" and hparams["scale"] == "smoke"
    assert {"eval/miou", "eval/accuracy", "eval_ema/miou"} <= set(scalars)
    assert [s for s, _ in scalars["eval/miou"]] == [step]

    results = evaluate(
        compose_config(
            "evaluate", [f"ckpt={run_dir}", f"eval.cache_dir={cache}", "eval.max_images=4"]
        )
    )
    _, scalars = tensorboard_session(run_dir / "tensorboard")
    assert scalars["eval/miou"][-1] == (step, pytest.approx(results["generator"]["miou"]))
    assert scalars["eval_ema/miou"][-1][1] == pytest.approx(results["generator_ema"]["miou"])

    training, evaluation = sorted(run_dir.glob("wandb/offline-run-*"))
    assert training.name.rsplit("-", 1)[1] == evaluation.name.rsplit("-", 1)[1]  # one run id
    records = wait_for_summary(training, "eval/miou")
    config = {
        u.key: u.value_json
        for r in records
        if r.WhichOneof("record_type") == "config"
        for u in r.config.update
    }
    assert config["modulation"] == '"spade"' and config["modulation_kernel_size"] == "1"
    assert config["row"] == '"kernel1"' and config["seed"] == "0"
    # Set at wandb.init (the run record), before any evaluation: training curves group by them.
    started = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    initial = {u.key: u.value_json for u in started.config.update}
    assert initial["modulation_kernel_size"] == "1" and initial["norm"] == '"syncbatch"'
    summary_updates = wait_for_summary(evaluation, "eval/miou")
    final = {
        u.key: float(u.value_json)
        for r in summary_updates
        if r.WhichOneof("record_type") == "summary"
        for u in r.summary.update
        if u.key.startswith("eval")
    }
    # Plain numbers (sortable in the runs table), the final evaluation's.
    assert final["eval/miou"] == pytest.approx(results["generator"]["miou"])
    assert final["eval_ema/accuracy"] == pytest.approx(results["generator_ema"]["accuracy"])
    run = next(r.run for r in summary_updates if r.WhichOneof("record_type") == "run")
    assert run.resume  # appended to the training's run when synced


def wait_for_summary(run_dir: Path, key: str, timeout: float = 30.0) -> list[Any]:
    """The records of an offline run once its summary has ``key`` (wandb's service process may
    still be writing after ``finish()`` returned)."""
    (path,) = run_dir.glob("run-*.wandb")
    deadline = time.monotonic() + timeout
    while True:
        records = wandb_records(path)
        keys = {
            u.key
            for r in records
            if r.WhichOneof("record_type") == "summary"
            for u in r.summary.update
        }
        if key in keys or time.monotonic() > deadline:
            return records
        time.sleep(0.5)
