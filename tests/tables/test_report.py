"""spadelab report on fabricated run dirs: seeds, failures, missing runs, paper columns, wandb."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from report_files import markdown_rows, wandb_run_record

from spadelab.runtime import ConfigError
from spadelab.tables import report
from spadelab.tables.spec import load_experiment
from spadelab.tables.stats import t_quantile

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
    ema_miou: float | None = None,
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
    if ema_miou is not None:
        metrics["generator_ema"] = {"miou": ema_miou, "accuracy": accuracy + 1, "fd_judge": 1.0}
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


def write_experiment(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "e.yaml"
    path.write_text("name: e\ntitle: t\nsource: s\n" + text)
    return load_experiment(path)


def test_report_rows_with_seeds_failures_and_missing_runs(fabricated) -> None:
    experiment, sweep_dir = fabricated
    results = report.gather(experiment, sweep_dir)
    text = report.format_markdown(experiment, results, sweep_dir, "cpu", "synthetic")
    rows = markdown_rows(text)
    half = t_quantile(3) * 2 / math.sqrt(3)  # s = 2 over 3 seeds: 4.97

    three = rows["three seeds"]
    assert three["ours: mIoU"] == f"12.0 ± {half:.1f}" == "12.0 ± 5.0"
    assert three["ours: accuracy"] == "51.0 ± 2.5" and three["Δ mIoU"] == "reference"
    assert three["ours: G params"] == "0.49M" and three["status"] == "ok (3 seeds)"
    assert (three["paper: coco_miou"], three["paper: ade_miou"]) == ("35.2", "38.5")

    partial = rows["one ok, one failed, one missing [1]"]
    assert partial["ours: mIoU"] == "20.0" and partial["ours: accuracy"] == "60.0"
    assert partial["Δ mIoU"] == "+10.0 (1 seed)"  # seed 0 only: 20 - 10
    assert partial["status"] == (
        "ok (seed 0); failed (seed 1): RuntimeError: out of memory; missing (seed 2)"
    )
    assert "second line" not in text

    broken = rows["all failed"]
    assert [broken[f"ours: {c}"] for c in ("mIoU", "accuracy", "FD (judge)", "G params")] == [
        "failed"
    ] * 4
    assert broken["status"] == (
        "failed (seeds 0, 1): ValueError: bad norm; failed (seed 2): ValueError: other"
    )
    assert rows["never ran"]["ours: mIoU"] == "missing" and rows["never ran"]["Δ mIoU"] == "-"
    assert rows["CRN"]["ours: mIoU"] == "-" and rows["CRN"]["paper: coco_miou"] == "23.7"
    assert rows["CRN"]["status"] == "not implemented (cascaded refinement network)"
    again = rows["the default again"]
    assert again["status"] == "same run as three seeds; ok (3 seeds)"
    assert again["ours: mIoU"] == "12.0 ± 5.0" and again["Δ mIoU"] == "same run"

    # The header says what the numbers are, so nobody reads them as the paper's.
    assert "scale=cpu, data=synthetic, 64x64 images, raw generator weights" in text
    assert "seeds [0, 1, 2] (3 seeds): cells are the mean over seeds ± the half-width" in text
    assert "Δ mIoU: the row minus its reference row (three seeds)" in text
    assert "smallest resolvable Δ mIoU: unknown (no row has 2 seeds shared" in text
    assert "judge ceiling" in text and "mIoU 41.0, accuracy 81.0" in text
    assert "Park et al. 2019, Table 99" in text and "256x256 on 8 GPUs" in text
    assert "compare the rows with each other, not with the paper" in text
    assert "a table note" in text and "[1] a row note" in text
    assert "4 ok, 4 failed, 4 missing" in text  # same_as rows are not counted twice
    assert "nan" not in text.lower()


PAIRS = """
seeds: [0, 1, 2]
reference: base
rows:
  - {name: base, label: base, overrides: []}
  - {name: better, label: better, overrides: [norm=batch]}
  - {name: noisy, label: noisy, overrides: [norm=instance]}
  - {name: own, label: own reference, overrides: [norm=none], reference: better}
"""


def test_paired_differences_with_marks_and_own_references(tmp_path: Path) -> None:
    experiment = write_experiment(tmp_path, PAIRS)
    sweep_dir = tmp_path / "sweep"
    values = {
        "base": (40.0, 50.0, 60.0),
        "better": (45.0, 55.5, 64.5),  # +5, +5.5, +4.5: resolved
        "noisy": (43.0, 47.0, 61.0),  # +3, -3, +1: not resolved
        "own": (45.0, 55.5),  # = better at seeds 0, 1; seed 2 missing
    }
    for row, mious in values.items():
        for seed, miou in enumerate(mious):
            write_metrics(sweep_dir / f"{row}-seed{seed}", miou, 50.0)
    results = report.gather(experiment, sweep_dir)
    text = report.format_markdown(experiment, results, sweep_dir, "cpu", "synthetic")
    rows = markdown_rows(text)
    better_half = t_quantile(3) * 0.5 / math.sqrt(3)  # s = 0.5: 1.24
    assert rows["better"]["Δ mIoU"] == f"+5.0 ± {better_half:.1f} *" == "+5.0 ± 1.2 *"
    assert rows["noisy"]["Δ mIoU"] == "+0.3 ± 7.6"  # s = 3.06: the interval holds 0
    assert rows["own reference"]["Δ mIoU"] == "0.0 ± 0.0"  # paired over seeds 0, 1 only
    assert rows["own reference"]["compared with"] == "better"
    assert rows["noisy"]["compared with"] == "base" and rows["base"]["compared with"] == "-"
    assert "rows naming their own: better" in text
    # Half-widths 1.24, 7.59, 0.0 -> median 1.24 over 3 rows.
    assert "smallest resolvable Δ mIoU: 1.2 = the median over 3 row(s) of the half-width" in text
    # Paired sds 0.5, 3.06, 0.0 -> median 0.5; ±3 needs n = 3 (t_2 · 0.5/√3 = 1.24; n = 2: 4.49).
    assert "For ±3.0 (the target) at the rows' median paired sd 0.5: 3 paired seeds." in text

    records = {
        r["row"]: r
        for r in csv.DictReader(io.StringIO(report.format_csv(experiment, results, "cpu", "x")))
    }
    better = records["better"]
    assert float(better["miou_diff"]) == pytest.approx(5.0)
    assert float(better["miou_diff_ci_low"]) == pytest.approx(5.0 - better_half)
    assert float(better["miou_diff_ci_high"]) == pytest.approx(5.0 + better_half)
    assert better["miou_diff_n"] == "3" and better["reference"] == "base"
    assert records["own"]["miou_diff_n"] == "2" and records["own"]["reference"] == "better"
    assert records["base"]["miou_diff"] == "" and records["base"]["reference"] == ""


def test_a_failed_reference_row_is_named(tmp_path: Path) -> None:
    experiment = write_experiment(tmp_path, PAIRS)
    sweep_dir = tmp_path / "sweep"
    for seed in (0, 1):
        write_failure(sweep_dir / f"base-seed{seed}", "ValueError: planted")
        write_metrics(sweep_dir / f"better-seed{seed}", 50.0 + seed, 50.0)
    results = report.gather(experiment, sweep_dir, seeds=[0, 1])
    text = report.format_markdown(experiment, results, sweep_dir, "cpu", "synthetic")
    assert "reference row base (base) is failed: the rows compared with it have no Δ" in text
    assert "ValueError: planted" in text
    rows = markdown_rows(text)
    assert rows["better"]["Δ mIoU"] == "ref. failed"
    assert rows["noisy"]["Δ mIoU"] == "ref. failed"  # its own runs are missing as well
    assert rows["own reference"]["Δ mIoU"] == "-"  # its reference (better) ran, it did not


def test_one_seed_gives_means_and_says_no_ci_is_possible(fabricated, tmp_path: Path) -> None:
    experiment, sweep_dir = fabricated
    results = report.gather(experiment, sweep_dir, seeds=[0])
    text = report.format_markdown(experiment, results, sweep_dir, "cpu", "synthetic")
    assert "no CI possible (1 seed)" in text and "nan" not in text.lower()
    rows = markdown_rows(text)
    assert rows["three seeds"]["ours: mIoU"] == "10.0" and "±" not in text.split("\n| row")[1]
    assert rows["one ok, one failed, one missing [1]"]["Δ mIoU"] == "+10.0 (1 seed)"
    records = list(csv.DictReader(io.StringIO(report.format_csv(experiment, results, "cpu", "x"))))
    assert records[0]["miou_mean"] == "10.0" and records[0]["miou_ci_low"] == ""
    assert "nan" not in report.format_csv(experiment, results, "cpu", "x").lower()


def test_report_csv_holds_numbers(fabricated) -> None:
    experiment, sweep_dir = fabricated
    results = report.gather(experiment, sweep_dir)
    records = {
        r["row"]: r
        for r in csv.DictReader(io.StringIO(report.format_csv(experiment, results, "cpu", "x")))
    }
    three = records["three"]
    half = t_quantile(3) * 2 / math.sqrt(3)
    assert float(three["miou_mean"]) == 12.0 and float(three["miou_std"]) == 2.0
    assert float(three["miou_ci_low"]) == pytest.approx(12.0 - half)
    assert float(three["miou_ci_high"]) == pytest.approx(12.0 + half)
    assert three["miou_n"] == "3" and three["n_ok"] == "3" and three["seeds"] == "0 1 2"
    assert float(three["generator_params"]) == 494_799
    assert three["scale"] == "cpu" and three["image_size"] == "64x64"
    assert float(three["paper_coco_miou"]) == 35.2
    assert float(records["partial"]["miou_diff"]) == 10.0
    assert (
        records["partial"]["miou_diff_n"] == "1" and records["partial"]["miou_diff_ci_low"] == ""
    )
    assert records["partial"]["paper_ade_miou"] == ""
    assert records["partial"]["note"] == "a row note"
    assert records["broken"]["miou_mean"] == "" and records["broken"]["n_ok"] == "0"
    assert records["crn"]["status"].startswith("not implemented")
    # Every statistic column is a number or empty, never formatted text.
    statistic = ("_mean", "_std", "_ci_low", "_ci_high", "_n", "_diff")
    for record in records.values():
        for key, value in record.items():
            if key.endswith(statistic) and value:
                float(value)


def test_raw_and_ema_side_by_side_and_selectable(tmp_path: Path, capsys) -> None:
    experiment = write_experiment(tmp_path, PAIRS)
    sweep_dir = tmp_path / "sweep"
    for seed in (0, 1):
        write_metrics(sweep_dir / f"base-seed{seed}", 40.0 + seed, 50.0, ema_miou=50.0 + seed)
        write_metrics(sweep_dir / f"better-seed{seed}", 42.0 + seed, 50.0, ema_miou=49.0 + seed)
    assert report.cli([str(experiment.path), f"sweep_dir={sweep_dir}", "seeds=[0,1]"]) == 0
    out = capsys.readouterr().out
    assert "mIoU (raw)" in out and "mIoU (EMA)" in out and "raw and EMA generator weights" in out
    rows = markdown_rows((sweep_dir / "report.md").read_text())
    assert rows["better"]["ours: mIoU (raw)"] == "42.5 ± 6.4"
    assert rows["better"]["ours: mIoU (EMA)"] == "49.5 ± 6.4"
    assert rows["better"]["Δ mIoU (raw)"] == "+2.0 ± 0.0 *" and rows["better"]["Δ mIoU (EMA)"] == (
        "-1.0 ± 0.0 *"
    )
    text_csv = (sweep_dir / "report.csv").read_text()
    assert "miou_mean" in text_csv and "miou_ema_mean" in text_csv and "miou_ema_diff" in text_csv

    args = [str(experiment.path), f"sweep_dir={sweep_dir}", "seeds=[0,1]"]
    assert report.cli([*args, "generator=generator_ema"]) == 0
    out = capsys.readouterr().out
    assert "EMA generator weights" in out and "mIoU (raw)" not in out
    assert "miou_ema_mean" in (sweep_dir / "report.csv").read_text()

    # An unknown generator is refused in one line; nothing is rewritten.
    before = (sweep_dir / "report.md").read_text()
    assert report.cli([*args, "generator=best"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "generator=best is not one of: generator, generator_ema" in err
    assert (sweep_dir / "report.md").read_text() == before


def test_no_ema_metrics_refuses_generator_ema_and_keeps_the_report(fabricated, capsys) -> None:
    experiment, sweep_dir = fabricated
    args = [str(experiment.path), f"sweep_dir={sweep_dir}"]
    assert report.cli(args) == 0
    capsys.readouterr()
    before = {name: (sweep_dir / name).read_bytes() for name in ("report.md", "report.csv")}
    assert report.cli([*args, "generator=generator_ema"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has generator_ema metrics" in err
    assert "ema.enabled=true" in err and "use generator=generator" in err
    # Seeds with no runs would empty the mIoU column: the report with numbers is kept.
    assert report.cli([*args, "seeds=[7]"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "would leave empty" in err and "miou_mean" in err
    assert before == {name: (sweep_dir / name).read_bytes() for name in before}
    with pytest.raises(ConfigError, match="generator=both"):
        report.pick_generators("both", report.gather(experiment, sweep_dir), sweep_dir)


HYDRA_ERROR = (
    "MissingConfigException: In 'row/broken': Could not find 'norm/batchy' Available options "
    "in 'norm': batch instance none Config search path: provider=hydra, path=pkg://hydra.conf "
    "provider=main, path=file:///work/main/conf provider=command-line, path=file:///tmp/x/.rows"
)


def test_terminal_table_fits_120_columns_and_failures_show_their_first_line(
    fabricated, capsys
) -> None:
    experiment, sweep_dir = fabricated
    write_failure(sweep_dir / "broken-seed2", HYDRA_ERROR + "\nTraceback line")
    code = report.cli([str(experiment.path), f"sweep_dir={sweep_dir}"])
    out = capsys.readouterr().out
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= report.TERMINAL_WIDTH
    table_lines = out.split("\n\n")[1].splitlines()
    assert table_lines[0].split() == ["row", "mIoU", "Δ", "mIoU", "G", "params", "status"]
    assert "paper" not in table_lines[0]  # paper columns go to report.md only
    assert any(line.startswith("three seeds") and "12.0 ± 5.0" in line for line in table_lines)
    markdown = (sweep_dir / "report.md").read_text()
    assert "Could not find 'norm/batchy' Available options in 'norm': batch instance none" in (
        markdown
    )
    assert "Config search path" not in markdown and "Traceback line" not in markdown
    assert "Config search path" not in (sweep_dir / "report.csv").read_text()
    assert "report.md" in out and "report.png" in out


def test_chart_is_a_png_next_to_the_report(fabricated) -> None:
    experiment, sweep_dir = fabricated
    results = report.gather(experiment, sweep_dir)
    report.publish(experiment, results, sweep_dir, "cpu", "synthetic")
    with Image.open(sweep_dir / "report.png") as image:
        assert image.format == "PNG" and image.width >= 800 and image.height >= 300
    rows = report.table(experiment, results).chart_rows
    assert [row.label for row in rows] == [row.label for row in experiment.rows]
    assert rows[0].ours["raw"] is not None and rows[0].ours["raw"].mean == 12.0
    assert rows[0].paper == {"coco_miou": 35.2, "ade_miou": 38.5}
    assert rows[4].ours["raw"] is None and rows[4].paper == {"coco_miou": 23.7}  # CRN


def test_report_command_writes_and_prints(fabricated, capsys) -> None:
    experiment, sweep_dir = fabricated
    code = report.cli([str(experiment.path), f"sweep_dir={sweep_dir}"])
    out = capsys.readouterr().out
    assert code == 0
    assert "fake: fabricated table" in out and "12.0 ± 5.0" in out
    assert (sweep_dir / "report.md").read_text().startswith("## fake: fabricated table")
    assert (sweep_dir / "report.csv").read_text().startswith("table,row,label,scale,data")
    assert (sweep_dir / "report.png").is_file()


def test_report_command_errors_name_the_fix(fabricated, tmp_path: Path, capsys) -> None:
    experiment, _ = fabricated
    assert report.cli([str(experiment.path), f"sweep_dir={tmp_path / 'nowhere'}"]) == 2
    err = capsys.readouterr().err
    assert "no sweep at" in err and "spadelab sweep" in err
    assert report.cli([str(experiment.path), "colour=blue"]) == 2
    assert "unknown setting colour=; valid settings: sweep_dir" in capsys.readouterr().err
    assert report.cli([str(experiment.path), "generator=best"]) == 2
    assert "generator_ema" in capsys.readouterr().err


def test_report_seeds_come_from_the_run_dirs(tmp_path: Path) -> None:
    experiment = write_experiment(tmp_path, "rows: [{name: a, overrides: []}]\n")
    write_metrics(tmp_path / "sweep" / "a-seed0", 10.0, 50.0)
    write_metrics(tmp_path / "sweep" / "a-seed4", 20.0, 50.0)  # from `seeds=[0,4]`
    (result,) = report.gather(experiment, tmp_path / "sweep")
    assert [run.seed for run in result.runs] == [0, 4]
    # s = 7.07 over 2 seeds: 12.71 * 7.07 / sqrt(2) = 63.5
    assert report.table(experiment, [result]).cells[0][1] == "15.0 ± 63.5"


def test_paper_setting_params_counts_the_row_at_the_paper_setting(tmp_path: Path) -> None:
    experiment = write_experiment(
        tmp_path,
        "columns: [paper_setting_params]\nrows: [{name: a, params_row: decoder w/ SPADE}]\n",
    )
    assert experiment.rows[0].paper["params_m"] == 96
    content = report.table(experiment, report.gather(experiment, tmp_path))
    assert abs(content.records[0]["paper_setting_params"] / 96e6 - 1) < 0.02
    assert content.cells[0][1].endswith("M") and content.cells[0][-2] == "96"


def test_every_row_with_a_parameter_count_shows_it(tmp_path: Path) -> None:
    # Table 4's "capacity 96M" is the default configuration: same_as the first row, with the
    # published size from its params_row.
    experiment = write_experiment(
        tmp_path,
        "columns: [miou, generator_params, paper_setting_params]\nrows:\n"
        "  - {name: base, overrides: [modulation.kernel_size=1]}\n"
        "  - {name: cap96, label: capacity 96M, same_as: base, params_row: capacity 96M}\n",
    )
    write_metrics(tmp_path / "s" / "base-seed0", 10.0, 50.0, params=123_456)
    content = report.table(experiment, report.gather(experiment, tmp_path / "s"))
    base, cap96 = content.records
    assert cap96["paper_params_m"] == 96 and cap96["generator_params"] == 123_456
    # The same run, so the same architecture at the paper's setting (kernel 1, not the default).
    assert cap96["paper_setting_params"] == base["paper_setting_params"] is not None
    assert content.cells[1][3] == "0.12M" and content.cells[1][-2] == "96"


@pytest.mark.slow
def test_report_logs_a_numeric_wandb_table_offline(fabricated, monkeypatch) -> None:
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
    assert len(table["data"]) == len(experiment.rows)
    rows = {
        row[table["columns"].index("row")]: dict(zip(table["columns"], row))
        for row in table["data"]
    }
    three = rows["three"]
    # Numbers, not strings: wandb can sort and plot them.
    assert three["miou_mean"] == 12.0 and isinstance(three["miou_ci_low"], float)
    assert three["miou_n"] == 3 and three["generator_params"] == 494_799
    assert rows["partial"]["miou_diff"] == 10.0 and rows["broken"]["miou_mean"] is None
    assert rows["crn"]["paper_coco_miou"] == 23.7
