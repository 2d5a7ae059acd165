"""``spadelab ARGV`` inside the test process: no ~5 s interpreter start per case."""

from __future__ import annotations

import sys
from pathlib import Path

from spadelab.cli import main

# Hydra apps called in-process: no logging setup, outputs inside the test's directory.
IN_PROCESS = ["hydra/job_logging=none", "hydra/hydra_logging=none"]


def run_in_process(
    capsys, monkeypatch, cwd: Path, *argv: str, with_stdout: bool = False
) -> tuple[int, str]:
    """Returns (exit code, stderr), or (exit code, stderr + stdout) with ``with_stdout``."""
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # cli.main rewrites it
    monkeypatch.chdir(cwd)
    hydra = [*IN_PROCESS, f"hydra.run.dir={cwd / 'hydra'}"] if argv[0] != "--help" else []
    try:
        code = main([*argv, *hydra])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.err + captured.out if with_stdout else captured.err
