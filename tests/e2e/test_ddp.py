"""Real DDP on CPU: two gloo processes train at smoke scale with norm=syncbatch.

The SyncBatchNorm layers must hold the same running statistics in both processes, and those must
be the statistics of the *global* batch: reconstructed from what each rank saw, a rank's own half
would give different numbers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import torch.nn as nn

from smoke import QUIET

HERE = Path(__file__).resolve().parent  # tests/e2e


class SyncStatsRecorder(pl.Callback):
    """Per rank: the input sums of the generator's first batch norm, and its final buffers."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.sums: list[torch.Tensor] = []
        self.counts: list[float] = []
        self.layer: nn.Module | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        norms = [
            m
            for m in pl_module.generator.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
        ]
        self.layer = norms[0]

        def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            if module.training:
                x = args[0].detach()
                self.sums.append(x.sum(dim=(0, 2, 3)).double())
                self.counts.append(float(x.numel() / x.shape[1]))

        self.layer.register_forward_pre_hook(record)

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        assert self.layer is not None
        torch.save(
            {
                "world_size": trainer.world_size,
                "layer": type(self.layer).__name__,
                "momentum": self.layer.momentum,
                "sums": torch.stack(self.sums),
                "counts": torch.tensor(self.counts, dtype=torch.float64),
                "running_mean": self.layer.running_mean.clone(),
                "running_var": self.layer.running_var.clone(),
                "num_batches_tracked": int(self.layer.num_batches_tracked),
            },
            self.out_dir / f"rank{trainer.global_rank}.pt",
        )


def running_mean(sums: torch.Tensor, counts: torch.Tensor, momentum: float) -> torch.Tensor:
    """The running mean a batch norm reaches from per-step input sums and pixel counts."""
    estimate = torch.zeros(sums.shape[1], dtype=torch.float64)
    for step_sum, count in zip(sums, counts):
        estimate += momentum * (step_sum / count - estimate)
    return estimate


@pytest.mark.slow
def test_ddp_cpu_training_synchronises_batch_norm_statistics(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        # The ranks import this module (the callback) and, through it, tests/smoke.py.
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH")])
        ),
    }
    command = [
        sys.executable,
        "-m",
        "spadelab.commands.train",
        *QUIET,
        "trainer=ddp_cpu",
        "norm=syncbatch",
        f"run_dir={run_dir}",
        f"hydra.run.dir={run_dir}",
        "data.max_train_samples=8",
        "+callbacks.sync_stats._target_=test_ddp.SyncStatsRecorder",
        f"+callbacks.sync_stats.out_dir={tmp_path}",
    ]
    start = time.monotonic()
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-3000:]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "train_summary.json").is_file()

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["layer"] for r in ranks] == ["CPUSyncBatchNorm"] * 2
    steps = ranks[0]["num_batches_tracked"]
    assert steps == ranks[1]["num_batches_tracked"] == len(ranks[0]["sums"]) == 4
    # The two processes trained on different halves of the data...
    assert not torch.allclose(ranks[0]["sums"], ranks[1]["sums"])
    # ...and hold identical statistics,
    for key in ("running_mean", "running_var"):
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    # those of the global batch: the all-reduced sums over both halves,
    momentum = ranks[0]["momentum"]
    synced = running_mean(
        ranks[0]["sums"] + ranks[1]["sums"], ranks[0]["counts"] + ranks[1]["counts"], momentum
    )
    scale = synced.abs().max()  # the layer's activations are small (initial weights): relative
    error = (ranks[0]["running_mean"].double() - synced).abs().max() / scale
    assert error < 1e-4, f"running mean differs from the global batch's by {error:.2e}"
    # which each half alone would not give.
    for rank in ranks:
        alone = running_mean(rank["sums"], rank["counts"], momentum)
        gap = (alone - synced).abs().max() / scale
        assert gap > 100 * max(error, 1e-6), f"a rank's own half is only {gap:.2e} away"
    assert elapsed < 120, f"two-process smoke training took {elapsed:.0f}s"
