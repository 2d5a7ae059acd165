"""spadelab report on fabricated run dirs: seeds, failures, missing runs, paper columns, wandb."""

from __future__ import annotations

import csv
import io
import json
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from spadelab import report
from spadelab.sweep import load_experiment

EXPERIMENT = """
name: fake
title: fabricated table
source: Park et al. 2019, Table 99
paper_setting: 256x256 on 8 GPUs
notes: a table note
columns: [miou, accuracy, fd_judge, generator_params]
seeds: [0, 1, 2]
rows:
  - name: three
    label: three seeds
    overrides: []
    paper: {coco_miou: 35.2, ade_miou: 38.5}
  - name: partial
    label: one ok, one failed, one missing
    overrides: [norm=batch]
    note: a row note
    paper: {coco_miou: 33.7, ade_miou: null}
  - name: broken
    label: all failed
    overrides: [norm=instance]
  - name: absent
    label: never ran
    overrides: [norm=none]
  - name: crn
    label: CRN
    overrides: null
    note: not implemented (cascaded refinement network)
    paper: {coco_miou: 23.7}
  - name: again
    label: the default again
    same_as: three
"""


def write_metrics(
    run_dir: Path,
    miou: float,
    accuracy: float,
    fd_judge: float = 1.5,
    params: int = 494_799,
    scale: str = "cpu",
    size: tuple[int, int] = (64, 64),
) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = {
        "data": "synthetic",
        "scale": scale,
        "image_size": list(size),
        "segmenter": "judge",
        "generator_params": params,
        "judge_ceiling": {"miou": 41.04, "accuracy": 80.96, "num_images": 200},
        "generator": {
            "miou": miou,
            "accuracy": accuracy,
            "fd_judge": fd_judge,
            "fid_status": "skipped: no Inception weights",
        },
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))


def write_failure(run_dir: Path, error: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "FAILED.json").write_text(json.dumps({"error": error, "traceback": "..."}))


@pytest.fixture
def fabricated(tmp_path: Path) -> tuple[Any, Path]:
    path = tmp_path / "fake.yaml"
    path.write_text(EXPERIMENT)
    sweep_dir = tmp_path / "sweep"
    for seed, miou in zip((0, 1, 2), (10.0, 12.0, 14.0)):
        write_metrics(sweep_dir / f"three-seed{seed}", miou, 50.0 + seed)
    write_metrics(sweep_dir / "partial-seed0", 20.0, 60.0)
    write_failure(sweep_dir / "partial-seed1", "RuntimeError: out of memory\nsecond line")
    write_failure(sweep_dir / "broken-seed0", "ValueError: bad norm")
    write_failure(sweep_dir / "broken-seed1", "ValueError: bad norm")
    write_failure(sweep_dir / "broken-seed2", "ValueError: other")
    # A trained run without metrics.json (evaluation never finished) is still missing.
    (sweep_dir / "absent-seed0" / "checkpoints").mkdir(parents=True)
    return load_experiment(path), sweep_dir


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split(" | ")]


def test_mean_and_sample_std() -> None:
    assert report.mean_std([10.0, 12.0, 14.0]) == (12.0, 2.0)
    assert report.mean_std([3.0]) == (3.0, None)


def test_report_rows_with_seeds_failures_and_missing_runs(fabricated) -> None:
    experiment, sweep_dir = fabricated
    results = report.gather(experiment, sweep_dir)
    text = report.format_markdown(experiment, results, sweep_dir, "cpu", "synthetic")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if "|" in line}

    three = rows["three seeds"]
    assert "12.0 ± 2.0" in three and "51.0 ± 1.0" in three and "ok (3 seeds)" in three
    assert "0.49M" in three and "0.49M ±" not in three  # one architecture: no spread
    assert "| 35.2 | 38.5 |" in three

    partial = rows["one ok, one failed, one missing [1]"]
    assert "| 20.0 | 60.0 |" in partial
    assert "ok (seed 0); failed (seed 1): RuntimeError: out of memory; missing (seed 2)" in partial
    assert "second line" not in text

    broken = rows["all failed"]
    assert cells(broken)[1:5] == ["failed"] * 4
    assert (
        "failed (seeds 0, 1): ValueError: bad norm; failed (seed 2): ValueError: other" in broken
    )
    assert cells(rows["never ran"])[1:] == ["missing"] * 4 + ["-", "-", "missing"]
    assert rows["CRN"].endswith("| 23.7 | - | not implemented (cascaded refinement network) |")
    assert "same run as three seeds; ok (3 seeds)" in rows["the default again"]
    assert "12.0 ± 2.0" in rows["the default again"]

    # The header says what the numbers are, so nobody reads them as the paper's.
    assert "scale=cpu, data=synthetic, 64x64 images, seeds [0, 1, 2] (mean ± sample std)" in text
    assert "judge ceiling" in text and "mIoU 41.0, accuracy 81.0" in text
    assert "Park et al. 2019, Table 99" in text and "256x256 on 8 GPUs" in text
    assert "compare the rows with each other, not with the paper" in text
    assert "a table note" in text and "[1] a row note" in text
    assert "4 ok, 4 failed, 4 missing" in text  # same_as rows are not counted twice
    header = next(line for line in text.splitlines() if line.startswith("| row"))
    assert "paper: coco_miou" in header and "paper: ade_miou" in header


def test_report_csv_has_raw_numbers(fabricated) -> None:
    experiment, sweep_dir = fabricated
    results = report.gather(experiment, sweep_dir)
    records = {
        r["row"]: r
        for r in csv.DictReader(io.StringIO(report.format_csv(experiment, results, "cpu", "x")))
    }
    assert float(records["three"]["miou_mean"]) == 12.0
    assert float(records["three"]["miou_std"]) == 2.0
    assert records["three"]["n_ok"] == "3" and records["three"]["seeds"] == "0 1 2"
    assert records["three"]["scale"] == "cpu" and records["three"]["image_size"] == "64x64"
    assert float(records["three"]["paper_coco_miou"]) == 35.2
    assert records["partial"]["paper_ade_miou"] == ""
    assert records["partial"]["note"] == "a row note"
    assert records["broken"]["miou_mean"] == "" and records["broken"]["n_ok"] == "0"
    assert records["crn"]["status"].startswith("not implemented")


def test_report_command_writes_and_prints(fabricated, capsys) -> None:
    experiment, sweep_dir = fabricated
    code = report.cli([str(experiment.path), f"sweep_dir={sweep_dir}"])
    out = capsys.readouterr().out
    assert code == 0
    assert "## fake: fabricated table" in out and "12.0 ± 2.0" in out
    assert (sweep_dir / "report.md").read_text() in out
    assert (sweep_dir / "report.csv").read_text().startswith("table,row,label,scale,data")


def test_report_command_errors_name_the_fix(fabricated, tmp_path: Path, capsys) -> None:
    experiment, _ = fabricated
    assert report.cli([str(experiment.path), f"sweep_dir={tmp_path / 'nowhere'}"]) == 2
    err = capsys.readouterr().err
    assert "no sweep at" in err and "spadelab sweep" in err
    assert report.cli([str(experiment.path), "colour=blue"]) == 2
    assert "unknown argument 'colour=blue'" in capsys.readouterr().err
    assert report.cli([str(experiment.path), "generator=best"]) == 2
    assert "generator_ema" in capsys.readouterr().err


def test_report_seeds_come_from_the_run_dirs(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("name: e\ntitle: t\nsource: s\nrows: [{name: a, overrides: []}]\n")
    experiment = load_experiment(path)
    write_metrics(tmp_path / "sweep" / "a-seed0", 10.0, 50.0)
    write_metrics(tmp_path / "sweep" / "a-seed4", 20.0, 50.0)  # from `seeds=[0,4]`
    (result,) = report.gather(experiment, tmp_path / "sweep")
    assert [run.seed for run in result.runs] == [0, 4]
    assert report.table(experiment, [result])[1][0][1] == "15.0 ± 7.1"


def test_paper_setting_params_counts_the_row_at_the_paper_setting(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(
        "name: e\ntitle: t\nsource: s\ncolumns: [paper_setting_params]\n"
        "rows: [{name: a, params_row: decoder w/ SPADE}]\n"
    )
    experiment = load_experiment(path)
    assert experiment.rows[0].paper["params_m"] == 96
    _, cells, records, _ = report.table(experiment, report.gather(experiment, tmp_path))
    assert abs(records[0]["paper_setting_params_mean"] / 96e6 - 1) < 0.02
    assert cells[0][1].endswith("M") and cells[0][-2] == "96"


# ---- wandb offline files -------------------------------------------------------------------
def wandb_records(path: Path) -> list[Any]:
    """The protobuf records of a ``.wandb`` file (a LevelDB-style log after a 7-byte header)."""
    from wandb.proto import wandb_internal_pb2

    data, records, pending, offset, block = path.read_bytes(), [], b"", 7, 32768
    while offset + 7 <= len(data):
        left = block - offset % block
        if left < 7:
            offset += left
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + 7])
        if kind == 0 and length == 0:
            offset += left
            continue
        chunk = data[offset + 7 : offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):  # full record / last chunk
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending + chunk if kind == 4 else chunk)
            records.append(record)
            pending = b""
        else:  # first / middle chunk
            pending += chunk
    return records


def wandb_run_record(run_dir: Path, timeout: float = 20.0) -> Any:
    """The run record (group, tags, name) of the one offline wandb run under ``run_dir``.

    wandb's service process may still be writing the file after ``finish()`` returned: poll.
    """
    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    deadline = time.monotonic() + timeout
    while True:
        runs = [r.run for r in wandb_records(path) if r.WhichOneof("record_type") == "run"]
        if runs or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert runs, f"no run record in {path}"
    return runs[0]


@pytest.mark.slow
def test_report_logs_a_wandb_table_offline(fabricated, monkeypatch) -> None:
    experiment, sweep_dir = fabricated
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    results = report.gather(experiment, sweep_dir)
    text = report.publish(experiment, results, sweep_dir, "cpu", "synthetic", use_wandb=True)
    assert "wandb: report logged to" in text
    run = wandb_run_record(sweep_dir)
    assert run.run_group == "fake-cpu-synthetic" and run.job_type == "report"
    assert "table=fake" in list(run.tags)
    (table_file,) = sweep_dir.glob(
        "wandb/offline-run-*/files/media/table/report/fake_*.table.json"
    )
    table = json.loads(table_file.read_text())
    assert "miou_mean" in table["columns"] and len(table["data"]) == len(experiment.rows)
