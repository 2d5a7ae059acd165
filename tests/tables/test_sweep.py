"""spadelab sweep: experiment files, row configs, launchers, and real sweeps at smoke scale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf
from report_files import markdown_rows, raw, wandb_run_record

from smoke import SWEEP_ROW
from spadelab.config import REPO_ROOT, compose_config
from spadelab.runtime import ConfigError
from spadelab.tables import sweep

EXPERIMENT_FILES = sorted((REPO_ROOT / "experiments").glob("*.yaml"))
PAPER_TABLES = Path(
    os.environ.get("SPADELAB_PAPER_TABLES", REPO_ROOT / "experiments/reference/paper_tables.yaml")
)


def compose_hydra(overrides: list[str]):
    """``conf/train.yaml`` with its ``hydra`` node, as the sweep composes each row."""
    return compose_config("train", overrides, with_hydra=True)


HOLD_LOCK = """
import sys, time
from pathlib import Path
from spadelab.tables.rundirs import sweep_lock
with sweep_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(120)
"""
MINI = """
name: mini
title: a small table
source: a test
columns: [miou, accuracy, fd_judge, generator_params]
rows:
  - name: spade
    label: SPADE
    overrides: []
    paper: {ade_miou: 38.5}
  - name: batch
    label: BatchNorm
    overrides: [norm=batch]
  - name: broken
    label: planted failure
    overrides: [model.generator.ngf=-1]
  - name: crn
    label: CRN
    overrides: null
    note: not implemented
    paper: {ade_miou: 22.4}
  - name: spade_again
    label: SPADE again
    same_as: spade
"""


@pytest.fixture
def quiet_env(monkeypatch) -> None:
    # Small runs on shared cores: one OpenMP thread each is several times faster.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def write_experiment(tmp_path: Path, text: str = MINI, name: str = "mini.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run_dir_mtimes(run_dir: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}


# ---- experiment files ---------------------------------------------------------------------
@pytest.mark.parametrize("path", EXPERIMENT_FILES, ids=[p.stem for p in EXPERIMENT_FILES])
def test_every_experiment_file_loads_and_its_rows_compose(path: Path, tmp_path: Path) -> None:
    experiment = sweep.load_experiment(path)
    assert experiment.name == path.stem
    plan = sweep.plan(experiment, {"sweep_dir": str(tmp_path), "seeds": [0]}, ["scale=smoke"], [])
    assert plan.errors == {}
    assert set(plan.jobs.values()) == {"todo"}
    assert {row for row, _ in plan.jobs} == {row.name for row in experiment.run_rows}
    assert len(list((tmp_path / ".rows" / "row").glob("*.yaml"))) == len(experiment.run_rows)


def test_the_tables_hold_the_rows_the_paper_has() -> None:
    rows = {p.stem: [r.name for r in sweep.load_experiment(p).rows] for p in EXPERIMENT_FILES}
    assert set(rows) == {
        "table1",
        "table3",
        "table4",
        "table5",
        "stanford",
        "brown",
        "norm_grid",
        "spade_vs_concat",
        "beyond",
    }
    assert len(rows["table3"]) == 8 and len(rows["table4"]) == 11 and len(rows["table5"]) == 9
    grid = sweep.load_experiment("norm_grid")
    assert len(grid.rows) == 18 and grid.seeds == (0, 1, 2)
    table1 = sweep.load_experiment("table1")
    assert [r.name for r in table1.run_rows] == ["pix2pixhd", "spade"]
    assert {r.name for r in table1.rows if r.overrides is None} == {"crn", "sims"}
    table4 = sweep.load_experiment("table4")
    assert table4.row("random_input").overrides == ("model.generator.input_kind=noise",)
    assert table4.row("capacity_141m").overrides == (
        "model=spade_decoder",
        "model.generator.width_multiplier=1.25",
    )
    assert table4.row("kernel3").same_as == "segmap_input"


def test_paper_numbers_match_the_reference_transcription() -> None:
    reference = yaml.safe_load(PAPER_TABLES.read_text())
    miou = ("coco_miou", "ade_miou", "city_miou")
    for name, section in (("table3", "spade_table3"), ("table4", "spade_table4")):
        columns = reference[section]["columns"]
        theirs = [[r[columns.index(c)] for c in miou] for r in reference[section]["rows"]]
        ours = [[row.paper.get(c) for c in miou] for row in sweep.load_experiment(name).rows]
        assert ours == theirs, name
    table5 = reference["spade_table5"]
    ours5 = [[r.paper[c] for c in miou] for r in sweep.load_experiment("table5").rows]
    assert ours5 == [row[1:] for row in table5["rows"]]
    ours3 = [row.paper["params_m"] for row in sweep.load_experiment("table3").rows]
    assert ours3 == [row[1] for row in reference["spade_table3"]["rows"]]

    table1 = sweep.load_experiment("table1")
    prefix = {"coco_stuff": "coco", "ade20k": "ade", "ade20k_outdoor": "ade_outdoor"}
    prefix["cityscapes"] = "city"
    method = {"CRN": "crn", "SIMS": "sims", "pix2pixHD": "pix2pixhd", "SPADE": "spade"}
    for dataset, name, *values in reference["spade_table1"]["rows"]:
        paper = table1.row(method[name]).paper
        got = [paper[f"{prefix[dataset]}_{m}"] for m in ("miou", "accu", "fid")]
        assert got == values, (dataset, name)

    stanford = sweep.load_experiment("stanford")
    ours_s = [[r.paper["ade_miou"], r.paper["ade_accu"]] for r in stanford.rows if r.paper]
    # [-2:]: a label with a comma inside a YAML flow list splits into two items.
    assert ours_s == [row[-2:] for row in reference["stanford_ade20k"]["rows"]]
    brown = sweep.load_experiment("brown")
    assert brown.row("reduced_gaugan").paper["ade_landscape_fid"] == 60.77
    fids = {(r[0], r[1]): r[2] for r in reference["brown_landscapes"]["rows"]}
    assert brown.row("spade_paper").paper["ade_fid"] == fids["SPADE (paper)", "ade20k"]
    assert (
        brown.row("pix2pixhd_paper").paper["ade_outdoor_fid"]
        == fids["pix2pixHD (paper)", "ade20k_outdoor"]
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour: red", "unknown key(s) colour"),
        ("columns: [miou, psnr]", "unknown column(s) ['psnr']"),
        ("seeds: 3", "seeds must be a non-empty list"),
        ("rows: [{name: a, overrides: []}, {name: a, overrides: []}]", "duplicate row name"),
        ("rows: [{name: 'a b', overrides: []}]", "letters, digits"),
        ("rows: [{name: a}]", "needs `overrides`"),
        ("rows: [{name: a, overrides: norm=batch}]", "list of Hydra override strings"),
        ("rows: [{name: a, same_as: b}]", "same_as: b, which is not a row that runs"),
        ("rows: [{name: a, params_row: huge decoder}]", "not in spadelab.paper.ROWS"),
        ("rows: [{name: a, overrides: [], colour: red}]", "row a has unknown key(s) colour"),
    ],
)
def test_experiment_file_errors_name_the_file_and_the_fix(
    tmp_path: Path, text: str, expected: str
) -> None:
    body = "name: e\ntitle: t\nsource: s\n"
    if "rows:" not in text:
        body += "rows: [{name: a, overrides: []}]\n"
    path = write_experiment(tmp_path, body + text + "\n", "e.yaml")
    with pytest.raises(ConfigError) as error:
        sweep.load_experiment(path)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_unknown_experiment_lists_the_known_ones() -> None:
    with pytest.raises(FileNotFoundError, match="table4"):
        sweep.load_experiment("table99")


# ---- row configs --------------------------------------------------------------------------
def test_row_configs_carry_group_choices_values_and_wandb_names(tmp_path: Path) -> None:
    path = write_experiment(
        tmp_path,
        """
name: rows
title: t
source: s
base_overrides: [model=spade_decoder, norm=instance, loss.lambda_feat=5]
rows:
  - name: pp
    overrides: [model=pix2pixhd_pp, modulation=spade, norm=batch,
                model.generator.width_multiplier=0.75, loss.lambda_feat=0]
  - name: plain
    overrides: []
""",
    )
    experiment = sweep.load_experiment(path)
    plan = sweep.plan(experiment, {"sweep_dir": str(tmp_path / "s")}, ["scale=smoke"], [])
    searchpath = f"hydra.searchpath=[file://{plan.rows_root}]"

    cfg = compose_hydra([searchpath, "+row=pp", "seed=3", "run_dir=x", "scale=smoke"])
    # The row's choices beat the base overrides and the preset's own defaults list
    # (pix2pixhd_pp says norm=syncbatch, modulation=affine).
    assert cfg.model.name == "pix2pixhd_pp" and cfg.norm._target_.endswith(".batch")
    assert cfg.modulation._target_.endswith(".SPADE")
    assert cfg.model.generator.width_multiplier == 0.75 and cfg.loss.lambda_feat == 0
    assert cfg.ckpt_path == "auto"
    assert cfg.experiment.table == "rows" and cfg.experiment.row == "pp"
    assert cfg.experiment.group == "rows-smoke-synthetic"
    assert cfg.experiment.run_name == "pp-seed3"
    assert {"table=rows", "norm=batch", "model.generator.width_multiplier=0.75"} <= set(
        cfg.experiment.tags
    )
    assert cfg.sweep.dir == str(tmp_path / "s")

    plain = compose_hydra([searchpath, "+row=plain", "run_dir=x", "norm=batch"])
    assert plain.norm._target_.endswith(".batch")  # the command line beats the rows
    assert plain.loss.lambda_feat == 5 and plain.model.name == "spade_decoder"

    command = " ".join(plan.command())
    assert "--multirun" in command and "+row=pp,plain seed=0" in command
    assert f"hydra.sweep.dir={tmp_path / 's'}" in command
    assert "hydra.sweep.subdir=${experiment.row}-seed${seed}" in command


def test_rows_that_cannot_compose_fail_alone(tmp_path: Path) -> None:
    text = MINI.replace("[norm=batch]", "[norm=batchy]").replace(
        "overrides: []\n    paper", "overrides: [model.generator.ngff=3]\n    paper"
    )
    experiment = sweep.load_experiment(write_experiment(tmp_path, text))
    plan = sweep.plan(experiment, {"sweep_dir": str(tmp_path / "s")}, ["scale=smoke"], [])
    assert plan.jobs == {("spade", 0): "invalid", ("batch", 0): "invalid", ("broken", 0): "todo"}
    assert "batchy" in plan.errors["batch"] and "ngff" in plan.errors["spade"]
    sweep.record_states(plan)
    failed = json.loads((tmp_path / "s" / "batch-seed0" / "FAILED.json").read_text())
    assert "batchy" in failed["error"]
    assert plan.to_launch() == (["broken"], [0])


def test_a_typo_in_a_row_fails_with_the_valid_keys(tmp_path: Path) -> None:
    # A row's keys enter through a generated config file, where Hydra's struct mode allows new
    # keys: without the schema check, loss.lambda_fet=0 ran with the default and reported "ok".
    text = """
name: typo
title: t
source: s
rows:
  - name: plain
    overrides: [loss.lambda_fet=0]
  - name: added
    overrides: [+loss.lambda_fet=0]
  - name: fine
    overrides: [loss.lambda_feat=0]
"""
    experiment = sweep.load_experiment(write_experiment(tmp_path, text, "typo.yaml"))
    plan = sweep.plan(experiment, {"sweep_dir": str(tmp_path / "s")}, ["scale=smoke"], [])
    assert plan.jobs == {("plain", 0): "invalid", ("added", 0): "invalid", ("fine", 0): "todo"}
    for row in ("plain", "added"):
        assert plan.errors[row].startswith("unknown key loss.lambda_fet; valid keys of loss: ")
        assert "lambda_feat" in plan.errors[row]


def test_sweep_options_and_errors(tmp_path: Path, capsys) -> None:
    path = str(write_experiment(tmp_path))
    assert sweep.cli([path, "seed=1"]) == 2
    assert "seeds=[0,1,2]" in capsys.readouterr().err
    assert sweep.cli([path, "launcher=pbs"]) == 2
    assert "basic, joblib, submitit_local, slurm" in capsys.readouterr().err
    assert sweep.cli([path, "rows=[nope]"]) == 2
    assert "no row named 'nope'" in capsys.readouterr().err
    assert sweep.cli([path, "norm=batchy"]) == 2
    assert "do not compose" in capsys.readouterr().err
    assert sweep.cli([path, "trainer=ddp", f"sweep_dir={tmp_path / 's'}"]) == 2
    assert "ddp_spawn" in capsys.readouterr().err
    assert sweep.cli([path, "hydra.sweep.dir=/elsewhere"]) == 2
    assert "use sweep_dir=PATH" in capsys.readouterr().err
    code = sweep.cli([path, "rows=batch", "seeds=[1,2]", "dry_run=true", f"sweep_dir={tmp_path}"])
    assert code == 0
    out = capsys.readouterr().out
    assert "+row=batch seed=1,2" in out and "launcher=basic" in out
    # A row that repeats another's configuration runs as that row.
    assert sweep.cli([path, "rows=[spade_again]", "dry_run=true", f"sweep_dir={tmp_path}"]) == 0
    assert "+row=spade seed=0" in capsys.readouterr().out


def test_a_second_sweep_on_the_same_dir_is_refused_naming_the_pid(tmp_path: Path, capsys) -> None:
    path = str(write_experiment(tmp_path))
    sweep_dir = tmp_path / "s"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(sweep_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert sweep.cli([path, f"sweep_dir={sweep_dir}", "dry_run=true"]) == 2
        err = capsys.readouterr().err
        assert (
            err.count("\n") == 1 and f"{sweep_dir} is being swept by process {holder.pid}" in err
        )
        assert not (sweep_dir / ".rows").exists()  # refused before writing anything
    finally:
        holder.kill()
        holder.wait()
    # Killed while holding it: the lock file still names it, but a dead process blocks nothing.
    assert (sweep_dir / ".sweep.lock").read_text().strip() == str(holder.pid)
    assert sweep.cli([path, f"sweep_dir={sweep_dir}", "dry_run=true"]) == 0
    assert (sweep_dir / ".sweep.lock").read_text() == ""  # released on exit
    capsys.readouterr()


# ---- launchers ----------------------------------------------------------------------------
@pytest.mark.parametrize(("trainer", "devices"), [("default", 1), ("ddp", 2), ("paper", 8)])
def test_slurm_launcher_gives_one_task_per_gpu(
    tmp_path: Path, monkeypatch, trainer: str, devices: int
) -> None:
    overrides = ["scale=paper"] if trainer == "paper" else [f"trainer={trainer}"]
    cfg = compose_hydra(
        [
            "run_dir=x",
            "hydra/launcher=slurm",
            f"hydra.sweep.dir={tmp_path}",
            "hydra.job.name=sweep",
            "hydra.launcher.partition=gpu",
            *overrides,
        ]
    )
    queue = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert queue["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert queue["tasks_per_node"] == queue["gpus_per_node"] == cfg.trainer.devices == devices
    assert queue["nodes"] == cfg.trainer.num_nodes == 1
    assert queue["partition"] == "gpu" and queue["max_num_timeout"] > 0
    if devices > 1:
        # One process per GPU started by SLURM: a strategy that does not spawn its own.
        assert cfg.trainer.strategy == "ddp_find_unused_parameters_true"
    sweep.check_launch(cfg, "slurm")

    # The plugin's own translation to sbatch, with a stand-in `srun` so submitit accepts it.
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    launcher = instantiate(cfg.hydra.launcher)
    params = dict(launcher.params)
    executor = submitit.AutoExecutor(
        cluster="slurm",
        folder=params.pop("submitit_folder"),
        slurm_max_num_timeout=params.pop("max_num_timeout"),
    )
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    sbatch = executor._executor._make_submission_file_text(
        "python -m spadelab.tables.sweep", "uid"
    )
    assert f"#SBATCH --ntasks-per-node={devices}" in sbatch
    assert f"#SBATCH --gpus-per-node={devices}" in sbatch
    assert "#SBATCH --partition=gpu" in sbatch and "#SBATCH --nodes=1" in sbatch


def test_slurm_launcher_refuses_tasks_that_differ_from_the_gpus(tmp_path: Path) -> None:
    experiment = sweep.load_experiment(write_experiment(tmp_path))
    options = {"sweep_dir": str(tmp_path / "s"), "launcher": "slurm"}
    with pytest.raises(ConfigError, match="must both equal trainer.devices=2"):
        sweep.plan(experiment, options, ["trainer=ddp", "hydra.launcher.tasks_per_node=1"], [])


@pytest.mark.parametrize(
    ("launcher", "target", "key", "value"),
    [
        ("joblib", "joblib_launcher.JoblibLauncher", "n_jobs", 2),
        ("submitit_local", "submitit_launcher.LocalLauncher", "gpus_per_node", 0),
        ("basic", "basic_launcher.BasicLauncher", None, None),
    ],
)
def test_local_launchers_compose(tmp_path: Path, launcher, target, key, value) -> None:
    cfg = compose_hydra(
        ["run_dir=x", f"hydra/launcher={sweep.LAUNCHERS[launcher]}", f"hydra.sweep.dir={tmp_path}"]
    )
    assert cfg.hydra.launcher._target_.endswith(target)
    if key is not None:
        assert cfg.hydra.launcher[key] == value


# ---- real sweeps --------------------------------------------------------------------------
@pytest.mark.slow
def test_sweep_runs_a_table_reports_a_failed_row_then_skips_and_resumes(
    tmp_path: Path, quiet_env, capsys
) -> None:
    path = str(write_experiment(tmp_path))
    sweep_dir = tmp_path / "sweep"
    assert sweep.cli([path, f"sweep_dir={sweep_dir}", *SWEEP_ROW]) == 0
    out = capsys.readouterr().out
    assert "3 todo" in out

    spade, batch, broken = (sweep_dir / f"{r}-seed0" for r in ("spade", "batch", "broken"))
    for run in (spade, batch):
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["scale"] == "smoke" and 0 <= metrics["generator"]["miou"] <= 100
        assert not (run / "FAILED.json").exists()
    saved = OmegaConf.load(batch / "config.yaml")
    assert saved.experiment.group == "mini-smoke-synthetic"
    assert saved.experiment.run_name == "batch-seed0" and saved.ckpt_path == "auto"
    assert saved.norm._target_.endswith(".batch")
    assert "ngf=-1" in json.loads((broken / "FAILED.json").read_text())["error"]
    assert not (broken / "metrics.json").exists()
    assert len(list((sweep_dir / ".cache").glob("judge-*.pt"))) == 1  # one judge per sweep

    text = (sweep_dir / "report.md").read_text()
    assert "mini: a small table" in out and (sweep_dir / "report.png").is_file()
    rows = markdown_rows(text)
    broken = rows["planted failure"]
    assert [raw(broken, f"ours: {c}") for c in ("mIoU", "accuracy", "FD (judge)")] == [
        "failed"
    ] * 3
    assert broken["ours: G params"] == "failed"
    assert broken["status"].startswith("failed: ") and "model.generator.ngf=-1" in text
    assert rows["CRN"]["paper: ade_miou"] == "22.4" and rows["CRN"]["status"] == "not implemented"
    assert rows["SPADE again"]["status"] == "same run as SPADE; ok"
    assert raw(rows["SPADE again"], "Δ mIoU") == "same run"
    assert raw(rows["BatchNorm"], "Δ mIoU").endswith("(1 seed)")
    assert "no CI possible (1 seed)" in text
    assert "scale=smoke, data=synthetic, 32x32 images" in text
    assert "2 ok, 1 failed, 0 missing" in text

    # Interrupt one run (its evaluation never happened) and ask for a longer training:
    # the finished run is skipped untouched, the interrupted one resumes from last.ckpt.
    before_spade = run_dir_mtimes(spade)
    before_batch = run_dir_mtimes(batch)
    first_steps = json.loads((batch / "train_summary.json").read_text())["global_step"]
    (batch / "metrics.json").unlink()
    tiny = [arg.replace("max_epochs=1", "max_epochs=2") for arg in SWEEP_ROW]
    assert sweep.cli([path, f"sweep_dir={sweep_dir}", *tiny]) == 0
    out = capsys.readouterr().out
    assert "1 complete, 2 todo" in out
    assert run_dir_mtimes(spade) == before_spade
    after_batch = run_dir_mtimes(batch)
    assert after_batch["epoch0000.ckpt"] == before_batch["epoch0000.ckpt"]  # not retrained
    assert "epoch0001.ckpt" in after_batch and "epoch0001.ckpt" not in before_batch
    summary = json.loads((batch / "train_summary.json").read_text())
    assert summary["epochs"] == 2 and summary["global_step"] == 2 * first_steps
    assert "resuming from" in (batch / "sweep.log").read_text()
    assert (batch / "metrics.json").is_file()
    assert "2 ok, 1 failed, 0 missing" in (sweep_dir / "report.md").read_text()


@pytest.mark.slow
def test_sweep_of_table4_rows_with_seeds_and_offline_wandb(
    tmp_path: Path, quiet_env, capsys
) -> None:
    sweep_dir = tmp_path / "table4"
    args = ["table4", "rows=[segmap_input,kernel1]", "seeds=[0,1]", "logger=wandb"]
    assert sweep.cli([*args, f"sweep_dir={sweep_dir}", *SWEEP_ROW]) == 0
    out = capsys.readouterr().out
    assert "wandb: report logged to" in out
    text = (sweep_dir / "report.md").read_text()
    rows = markdown_rows(text)
    kernel1 = rows["SPADE kernel 1x1"]
    assert "±" in raw(kernel1, "ours: mIoU") and kernel1["status"] == "ok (2 seeds)"
    assert "±" in raw(kernel1, "Δ mIoU")  # paired with segmap_input (the first row) over 2 seeds
    assert rows["SPADE kernel 3x3 (default)"]["status"] == (
        "same run as input: segmap (default); ok (2 seeds)"
    )
    assert rows["capacity 96M (default)"]["paper: params_m"] == "96"
    assert rows["param-free norm: BatchNorm"]["status"] == "missing"
    assert "seeds [0, 1] (2 seeds): cells are the mean over seeds ± the half-width" in text
    assert "smallest resolvable Δ mIoU" in text

    for seed in (0, 1):
        run = wandb_run_record(sweep_dir / f"kernel1-seed{seed}")
        assert run.run_group == "table4-smoke-synthetic"
        assert run.display_name == f"kernel1-seed{seed}" and run.job_type == "train"
        assert {"table=table4", "row=kernel1", "modulation.kernel_size=1", "scale=smoke"} <= set(
            run.tags
        )
    assert wandb_run_record(sweep_dir).run_group == "table4-smoke-synthetic"  # the report


@pytest.mark.slow
def test_sweep_with_the_submitit_local_launcher(tmp_path: Path, quiet_env, capsys) -> None:
    path = str(write_experiment(tmp_path))
    sweep_dir = tmp_path / "sweep"
    args = [path, "rows=[spade,broken]", "launcher=submitit_local", f"sweep_dir={sweep_dir}"]
    assert sweep.cli([*args, *SWEEP_ROW]) == 0
    capsys.readouterr()
    assert sweep.read_metrics(sweep_dir / "spade-seed0") is not None
    assert (sweep_dir / "broken-seed0" / "FAILED.json").is_file()
    assert list((sweep_dir / ".submitit").glob("*/*_log.out"))  # submitit ran the jobs
    assert "1 ok, 1 failed, 1 missing" in (sweep_dir / "report.md").read_text()
