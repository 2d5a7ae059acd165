"""Faults of issue 11: two processes on one run dir or one cache, a NaN run, a failed
checkpoint write, metrics.csv across kills. The real kill -9 loop is in test_kill_loop.py."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from cases import SMOKE, error_lines, run_cli

from spadelab.atomic import atomic_path
from spadelab.callbacks import AppendingCSVWriter, VerifiedCheckpoint
from spadelab.runtime import CheckpointWriteError, TrainingDiverged, claim_run_dir, release_run_dir


def test_second_process_on_a_run_dir_is_refused_naming_the_holder(
    capsys, monkeypatch, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from spadelab.runtime import "
            f"claim_run_dir; claim_run_dir(Path({str(run_dir)!r})); print('held', flush=True); "
            "time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        code, output = run_cli(
            capsys, monkeypatch, tmp_path, "train", *SMOKE, f"run_dir={run_dir}"
        )
        assert code == 2
        [line] = error_lines(output)
        assert (
            f"run_dir={run_dir} is in use by another spadelab process (pid {holder.pid})" in line
        )
        assert not (run_dir / "FAILED.json").exists()  # the running run is not marked failed
    finally:
        holder.kill()  # SIGKILL: the lock file stays behind, the kernel drops the lock
        holder.wait()
    claim_run_dir(run_dir)  # a killed holder's lock never blocks the resume
    release_run_dir(run_dir)


def _write_many(path: str, tag: int, count: int) -> None:
    for _ in range(count):
        with atomic_path(path) as tmp:
            tmp.write_bytes(bytes([tag]) * 200_000)


def test_two_writers_on_one_cache_file_never_fail_or_tear(tmp_path: Path) -> None:
    path = tmp_path / "cache.bin"
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_write_many, args=(str(path), t, 40)) for t in (1, 2)]
    for w in writers:
        w.start()
    torn = reads = 0
    while any(w.is_alive() for w in writers):
        if path.is_file():
            data = path.read_bytes()
            reads += 1
            torn += len(data) != 200_000 or len(set(data)) != 1
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert torn == 0 and reads > 0
    assert [p.name for p in tmp_path.iterdir()] == ["cache.bin"]  # no temp file left


def test_partial_temp_file_of_a_killed_writer_is_cleaned_up(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    stale = tmp_path / f".x.pt.{dead.stdout.strip()}.deadbeef.tmp.pt"
    stale.write_bytes(b"half")
    with atomic_path(tmp_path / "x.pt") as tmp:
        tmp.write_bytes(b"whole")
    assert not stale.exists() and (tmp_path / "x.pt").read_bytes() == b"whole"


def _judge_job(cache: str, counter: str) -> None:
    import spadelab.metrics.judge as judge

    def fake_train(*args, **kwargs):
        with open(counter, "a") as f:
            f.write("trained\n")
        time.sleep(1.0)
        return judge.JudgeNet(3, 4, 2), {"miou": 1.0}

    judge.train_judge = fake_train
    judge.load_or_train_judge(cache, "key", [], [], num_classes=3, steps=5, width=4, levels=2)


def test_two_evaluations_train_the_judge_once(tmp_path: Path) -> None:
    counter = tmp_path / "count.txt"
    ctx = multiprocessing.get_context("fork")
    jobs = [ctx.Process(target=_judge_job, args=(str(tmp_path / "c"), str(counter))) for _ in "ab"]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
        assert job.exitcode == 0
    assert counter.read_text() == "trained\n"


@pytest.mark.slow  # two smoke trainings
def test_nan_run_stops_naming_step_and_term_and_keeps_the_finite_checkpoint(
    capsys, monkeypatch, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    code, _ = run_cli(capsys, monkeypatch, tmp_path, "train", *SMOKE, f"run_dir={run_dir}")
    assert code in (0, None)
    last = run_dir / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    code, output = run_cli(
        capsys,
        monkeypatch,
        tmp_path,
        "train",
        *SMOKE,
        f"run_dir={run_dir}",
        # A resume would restore the checkpoint's learning rates with its optimizer state.
        "optim.lr_g=1e30",
        "optim.lr_d=1e30",
    )
    assert code == 2
    [line] = error_lines(output)
    assert line.startswith("spadelab train: error: diverged at step ")
    assert "(loss/" in line and "=nan)" in line
    assert last.read_bytes() == before  # never overwritten with non-finite weights
    failed = (run_dir / "FAILED.json").read_text()
    assert "diverged at step" in failed  # what a sweep reports for the row


def test_checkpoint_with_non_finite_weights_is_never_written(tmp_path: Path) -> None:
    module = torch.nn.Linear(2, 2)
    with torch.no_grad():
        module.weight[0, 0] = float("nan")
    trainer = SimpleNamespace(lightning_module=module, global_step=10, loggers=[])
    callback = VerifiedCheckpoint(dirpath=tmp_path)
    with pytest.raises(TrainingDiverged, match=r"diverged at step 5 \(non-finite weights in w"):
        callback._save_checkpoint(trainer, str(tmp_path / "last.ckpt"))
    assert not (tmp_path / "last.ckpt").exists()


def test_checkpoint_that_did_not_reach_the_disk_fails_naming_the_directory(tmp_path: Path):
    # Lightning's _atomic_save swallows a PermissionError: the file just is not there.
    trainer = SimpleNamespace(
        lightning_module=torch.nn.Linear(2, 2),
        global_step=4,
        loggers=[],
        is_global_zero=True,
        save_checkpoint=lambda *args, **kwargs: None,
    )
    callback = VerifiedCheckpoint(dirpath=tmp_path)
    with pytest.raises(CheckpointWriteError, match=f"to {tmp_path} "):
        callback._save_checkpoint(trainer, str(tmp_path / "last.ckpt"))


def test_metrics_csv_keeps_every_step_once_across_a_torn_row_and_a_resume(tmp_path: Path):
    writer = AppendingCSVWriter(str(tmp_path))
    for step in range(6):
        writer.log_metrics({"loss": float(step)}, step)
        writer.save()
    with open(tmp_path / "metrics.csv", "a") as file:
        file.write("6.0,")  # a row torn by kill -9
    resumed = AppendingCSVWriter(str(tmp_path))  # resumed from a checkpoint at step 4
    for step in range(4, 8):
        resumed.log_metrics({"loss": float(step), "eval/miou": 1.0}, step)
        resumed.save()
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0] == "eval/miou,loss,step"
    assert [int(r.split(",")[-1]) for r in rows[1:]] == list(range(8))
