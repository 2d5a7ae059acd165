"""``launcher=slurm`` against a real Slurm (scripts/slurm-local.sh): one job array per sweep, the
same numbers as ``launcher=basic``, requeue and resume, a failing task, a cancelled sweep.

Smoke-scale rows of Table 4 on a CPU partition, one thread per run. The ``basic`` sweep is the
uninterrupted reference the Slurm runs are compared with, weights and metrics bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from slurm_cluster import Cluster, array_jobs, start, stop, sweep, wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ROWS = "rows=[segmap_input,kernel1]"
# Three epochs of 2 iterations: a task can be requeued or cancelled after the first (SIGTERM
# stops Lightning at the next iteration).
COMMON = [
    "trainer.max_epochs=3",
    "data.max_train_samples=4",
    "trainer.accelerator=cpu",
    "data.max_val_samples=2",
    "callbacks.progress=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "eval.judge.steps=5",
]
SLURM = [
    "hydra.launcher.partition=cpu",
    "hydra.launcher.cpus_per_task=1",  # the launcher's default of 10 exceeds this node
    "hydra.launcher.timeout_min=60",
]


@pytest.fixture(scope="module")
def judge_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    # One judge for every sweep of the module: it is trained once (it is deterministic, so the
    # numbers are the same either way).
    return f"eval.cache_dir={tmp_path_factory.mktemp('judge')}"


@pytest.fixture(scope="module")
def basic_sweep(
    slurm_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, judge_cache: str
) -> Path:
    """The two rows under ``launcher=basic``: the reference for every test here."""
    sweep_dir = tmp_path_factory.mktemp("basic") / "table4"
    done = sweep(
        slurm_cluster,
        "table4",
        "scale=smoke",
        "launcher=basic",
        ROWS,
        f"sweep_dir={sweep_dir}",
        judge_cache,
        *COMMON,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return sweep_dir


def numbers(value: Any, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a metrics.json, except timings."""
    if isinstance(value, dict):
        found: dict[str, float] = {}
        for key, item in value.items():
            if "second" not in key:
                found.update(numbers(item, f"{prefix}{key}."))
        return found
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {prefix.rstrip("."): float(value)}
    return {}


def metrics(run_dir: Path) -> dict[str, float]:
    return numbers(json.loads((run_dir / "metrics.json").read_text()))


def assert_same_weights(run_a: Path, run_b: Path) -> None:
    a, b = (
        torch.load(r / "checkpoints" / "last.ckpt", weights_only=False) for r in (run_a, run_b)
    )
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"])
    assert a["state_dict"].keys() == b["state_dict"].keys()
    different = [k for k, v in a["state_dict"].items() if not torch.equal(v, b["state_dict"][k])]
    assert not different, f"{run_a} and {run_b} differ in {different[:5]}"


def only_array(sweep_dir: Path) -> str:
    jobs = array_jobs(sweep_dir)
    assert len(jobs) == 1, f"expected one job array, got {sorted(jobs)}"
    return jobs.pop()


MINI = """
name: mini
title: one good row, one that fails when it trains
source: tests/slurm
columns: [miou]
rows:
  - name: good
    label: SPADE
    overrides: []
  - name: broken
    label: planted failure
    overrides: [model.generator.ngf=-1]
"""


def test_a_failing_task_is_reported_with_its_job_id_and_the_others_finish(
    slurm_cluster: Cluster, judge_cache: str, tmp_path: Path
) -> None:
    experiment = tmp_path / "mini.yaml"
    experiment.write_text(MINI)
    sweep_dir = tmp_path / "mini"
    short = [arg for arg in COMMON if not arg.startswith("trainer.max_epochs")]
    args = ["scale=smoke", "launcher=slurm", f"sweep_dir={sweep_dir}", "trainer.max_epochs=1"]
    done = sweep(slurm_cluster, experiment, *args, judge_cache, *short, *SLURM)
    assert done.returncode == 0, done.stdout + done.stderr

    job = only_array(sweep_dir)
    # The failure is the run's, not Slurm's: both tasks end normally.
    assert slurm_cluster.states(job) == {f"{job}_0": "COMPLETED", f"{job}_1": "COMPLETED"}
    assert (sweep_dir / "good-seed0" / "metrics.json").is_file()
    error = json.loads((sweep_dir / "broken-seed0" / "FAILED.json").read_text())["error"]
    assert error.startswith(f"slurm job {job}_1: ") and "ngf=-1" in error
    report = (sweep_dir / "report.md").read_text()
    assert f"failed: slurm job {job}_1: " in report
    assert "1 ok, 1 failed, 0 missing" in report


def test_make_table4_on_slurm_is_one_array_and_a_requeued_task_resumes_to_the_basic_numbers(
    slurm_cluster: Cluster, basic_sweep: Path, judge_cache: str, tmp_path: Path
) -> None:
    sweep_dir = tmp_path / "table4"
    requeued = sweep_dir / "segmap_input-seed0"
    args = " ".join([ROWS, f"sweep_dir={sweep_dir}", judge_cache, *COMMON, *SLURM])
    # -o: never reinstall the venv from inside a test.
    make = ["make", "-s", "-o", ".venv/.installed", "table4", "SCALE=smoke", "LAUNCHER=slurm"]
    running = start([*make, f"SWEEP_ARGS={args}"], slurm_cluster)
    try:
        # Mid-training: the first epoch's last.ckpt is written, the training has not ended.
        wait_until(lambda: (requeued / "checkpoints" / "last.ckpt").is_file(), "an epoch")
        assert not (requeued / "train_summary.json").exists(), "trained before the requeue"
        job = only_array(sweep_dir)
        slurm_cluster.run("scontrol", "requeue", f"{job}_0")  # task 0: the first row
        out, _ = running.communicate(timeout=1800)
    finally:
        stop(running)
    assert running.returncode == 0, out
    assert "launcher=slurm (2 todo)" in out

    # One array of two tasks; the first ran twice and resumed from its checkpoint.
    assert only_array(sweep_dir) == job
    assert slurm_cluster.states(job) == {f"{job}_0": "COMPLETED", f"{job}_1": "COMPLETED"}
    history = slurm_cluster.run("sacct", "-n", "-X", "-D", "-P", "-j", f"{job}_0", "-o", "State")
    assert history.split() == ["REQUEUED", "COMPLETED"]
    log = (requeued / "sweep.log").read_text()
    assert f"resuming from {requeued / 'checkpoints' / 'last.ckpt'}" in log

    for run in ("segmap_input-seed0", "kernel1-seed0"):
        assert_same_weights(sweep_dir / run, basic_sweep / run)
        assert metrics(sweep_dir / run) == metrics(basic_sweep / run)
    # The same table, number for number (report.csv holds no paths or timings).
    assert (sweep_dir / "report.csv").read_text() == (basic_sweep / "report.csv").read_text()
    assert "2 ok, 0 failed" in (sweep_dir / "report.md").read_text()


def test_a_cancelled_sweep_leaves_resumable_runs_and_reruns_only_the_missing(
    slurm_cluster: Cluster, basic_sweep: Path, judge_cache: str, tmp_path: Path
) -> None:
    sweep_dir = tmp_path / "table4"
    first, second = sweep_dir / "segmap_input-seed0", sweep_dir / "kernel1-seed0"
    # One task at a time, so that the first is complete when the second is cancelled.
    args = ["scale=smoke", "launcher=slurm", ROWS, f"sweep_dir={sweep_dir}", judge_cache]
    args += [*COMMON, *SLURM, "hydra.launcher.array_parallelism=1"]
    running = sweep(slurm_cluster, "table4", *args, wait=False)
    try:
        wait_until(
            lambda: (
                (first / "metrics.json").is_file()
                and (second / "checkpoints" / "last.ckpt").is_file()
            ),
            "the first run to finish and the second to checkpoint",
        )
        assert not (second / "train_summary.json").exists(), "trained before the scancel"
        job = only_array(sweep_dir)
        slurm_cluster.run("scancel", job)
        out, _ = running.communicate(timeout=1200)
    finally:
        stop(running)
    assert running.returncode != 0, out  # the sweep says that it did not finish
    assert slurm_cluster.states(job)[f"{job}_1"].startswith("CANCELLED")
    assert not (second / "metrics.json").exists()
    mtimes = {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()}

    done = sweep(slurm_cluster, "table4", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(1 complete, 1 todo)" in done.stdout
    (rerun,) = array_jobs(sweep_dir) - {job}
    assert list(slurm_cluster.states(rerun).values()) == ["COMPLETED"]  # only the missing run
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()} == mtimes
    assert "resuming from" in (second / "sweep.log").read_text()
    assert_same_weights(second, basic_sweep / "kernel1-seed0")
    assert "2 ok, 0 failed" in (sweep_dir / "report.md").read_text()
