"""Shared by the reliability tests: run ``spadelab ...`` in this process, build bad files."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import torch

from cli_runner import run_in_process
from smoke import SMOKE_TRAIN

SMOKE = SMOKE_TRAIN  # tests/smoke.py's whole tiny training run, by the name these tests use


def run_cli(capsys, monkeypatch, cwd: Path, *argv: str) -> tuple[int, str]:
    """``spadelab ARGV`` in this process; (exit code, stderr + stdout)."""
    return run_in_process(capsys, monkeypatch, cwd, *argv, with_stdout=True)


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if ": error:" in line]


class Evil:
    """A pickle that would run a command if loaded with weights_only=False."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def bad_checkpoints(good: Path, out: Path) -> dict[str, Path]:
    """zero-byte, truncated, random-bytes, malicious and NaN-weight copies of ``good``."""
    out.mkdir(parents=True, exist_ok=True)
    data = good.read_bytes()
    files = {
        "zero": b"",
        "truncated": data[: len(data) // 2],
        "random": random.Random(0).randbytes(4096),
    }
    paths = {}
    for name, content in files.items():
        paths[name] = out / f"{name}.ckpt"
        paths[name].write_bytes(content)
    paths["malicious"] = out / "malicious.ckpt"
    torch.save({"state_dict": {}, "payload": Evil()}, paths["malicious"])
    checkpoint = torch.load(good, map_location="cpu", weights_only=True)
    first = next(k for k, v in checkpoint["state_dict"].items() if v.is_floating_point())
    checkpoint["state_dict"][first] = torch.full_like(
        checkpoint["state_dict"][first], float("nan")
    )
    paths["nonfinite"] = out / "nonfinite.ckpt"
    torch.save(checkpoint, paths["nonfinite"])
    paths["pickle"] = out / "plain_pickle.ckpt"
    paths["pickle"].write_bytes(pickle.dumps([1, 2, 3]))
    return paths
