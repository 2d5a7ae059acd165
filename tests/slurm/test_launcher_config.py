"""conf/hydra/launcher/slurm.yaml on a CPU partition and on a GPU one, without a cluster."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from spadelab.config import compose_config
from spadelab.runtime import ConfigError, slurm_job_id
from spadelab.tables import sweep


def compose(tmp_path: Path, *overrides: str) -> DictConfig:
    return compose_config(
        "train",
        [
            "run_dir=x",
            "hydra/launcher=slurm",
            f"hydra.sweep.dir={tmp_path}",
            "hydra.job.name=sweep",
            *overrides,
        ],
        with_hydra=True,
    )


def sbatch_text(cfg: DictConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The sbatch script hydra-submitit-launcher would submit for ``cfg``."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 0\n")  # submitit checks that srun exists
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    params = dict(instantiate(cfg.hydra.launcher).params)
    executor = submitit.AutoExecutor(
        cluster="slurm",
        folder=params.pop("submitit_folder"),
        slurm_max_num_timeout=params.pop("max_num_timeout"),
    )
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    return executor._executor._make_submission_file_text("python -m spadelab.tables.sweep", "u")


def test_a_cpu_partition_requests_no_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = compose(tmp_path, "trainer.accelerator=cpu", "hydra.launcher.partition=cpu")
    queue = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert queue["gpus_per_node"] is None and queue["tasks_per_node"] == cfg.trainer.devices == 1
    sweep.check_launch(cfg, "slurm")
    sbatch = sbatch_text(cfg, tmp_path, monkeypatch)
    assert "gpus" not in sbatch and "gres" not in sbatch
    assert "#SBATCH --ntasks-per-node=1" in sbatch and "#SBATCH --partition=cpu" in sbatch


def test_a_gpu_request_on_a_cpu_run_is_refused(tmp_path: Path) -> None:
    cfg = compose(tmp_path, "trainer.accelerator=cpu", "hydra.launcher.gpus_per_node=1")
    with pytest.raises(ConfigError, match="gpus_per_node=1 .* trainer.accelerator=cpu"):
        sweep.check_launch(cfg, "slurm")


@pytest.mark.parametrize("accelerator", ["auto", "gpu"])
def test_gpu_partitions_keep_one_task_per_gpu(tmp_path: Path, accelerator: str) -> None:
    cfg = compose(tmp_path, f"trainer.accelerator={accelerator}", "trainer.devices=2")
    queue = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert queue["gpus_per_node"] == queue["tasks_per_node"] == 2
    sweep.check_launch(cfg, "slurm")
    no_gpu = compose(
        tmp_path, f"trainer.accelerator={accelerator}", "hydra.launcher.gpus_per_node=null"
    )
    with pytest.raises(ConfigError, match="must both equal trainer.devices=1"):
        sweep.check_launch(no_gpu, "slurm")


def test_slurm_job_id_names_the_array_task(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    assert slurm_job_id() is None
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    assert slurm_job_id() == "41"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "40")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert slurm_job_id() == "40_1"
