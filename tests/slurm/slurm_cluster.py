"""A real single-node Slurm cluster (scripts/slurm-local.sh) for the tests of ``launcher=slurm``.

The cluster lives in a temporary directory, on its own ports, for the whole session; it is
brought down at the end and the fixture checks that none of its processes is left.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "slurm-local.sh"
# Not the script's default ports, so a cluster started with `make slurm-up` keeps running.
PORT_BASE = "17817"


@dataclass
class Cluster:
    dir: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 60) -> str:
        """A Slurm client command (sacct, scontrol, ...) against this cluster; its stdout."""
        done = subprocess.run(
            list(args), env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
        return done.stdout

    def states(self, job: str) -> dict[str, str]:
        """``{array task id: state}`` of a job array's tasks, from the accounting (sacct)."""
        out = self.run("sacct", "-n", "-X", "-P", "-j", job, "-o", "JobID,State")
        return dict(line.split("|")[:2] for line in out.splitlines() if line)


def processes_of(directory: Path, conf: Path) -> list[str]:
    """Processes whose command line names ``directory`` or whose environment has its
    SLURM_CONF: the daemons and the jobs of that cluster."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(directory) in cmdline or f"SLURM_CONF={conf}".encode() in environ:
            found.append(f"{proc.name}: {cmdline[:120]}")
    return found


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("the local Slurm cluster runs its daemons as root; run the tests as root")
    directory = tmp_path_factory.mktemp("slurm")
    env = {
        **os.environ,
        "SLURM_LOCAL_DIR": str(directory),
        "SLURM_LOCAL_PORT_BASE": PORT_BASE,
        "SLURM_CONF": str(directory / "etc" / "slurm.conf"),
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "offline",
    }
    installed = subprocess.run([str(SCRIPT), "install"], env=env, capture_output=True, text=True)
    if installed.returncode != 0:
        pytest.skip(f"Slurm's Debian packages cannot be installed: {installed.stderr.strip()}")
    started = time.monotonic()
    up = subprocess.run([str(SCRIPT), "up"], env=env, capture_output=True, text=True)
    if up.returncode != 0:
        subprocess.run([str(SCRIPT), "down"], env=env, capture_output=True)
        pytest.fail(f"scripts/slurm-local.sh up failed: {up.stderr}")
    print(f"slurm cluster up in {time.monotonic() - started:.0f} s")
    try:
        yield Cluster(directory, env)
    finally:
        down = subprocess.run([str(SCRIPT), "down"], env=env, capture_output=True, text=True)
        assert down.returncode == 0, down.stderr
        left = processes_of(directory, Path(env["SLURM_CONF"]))
        assert not left, f"left running after scripts/slurm-local.sh down: {left}"


def sweep(
    cluster: Cluster, experiment: str | Path, *args: str, wait: bool = True
) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    """``spadelab sweep EXPERIMENT ARGS`` on the command line, as a user runs it."""
    command = [str(REPO / ".venv" / "bin" / "spadelab"), "sweep", str(experiment), *args]
    running = start(command, cluster)
    if not wait:
        return running
    try:
        out, _ = running.communicate(timeout=1800)
    finally:
        stop(running)  # an interrupted test leaves no multirun behind
    return subprocess.CompletedProcess(command, running.returncode, out, "")


def start(command: Sequence[str], cluster: Cluster) -> subprocess.Popen[str]:
    """A command in its own process group, which :func:`stop` ends with all its children."""
    return subprocess.Popen(
        list(command),
        env=cluster.env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[str]) -> None:
    """Kill what is left of a :func:`start`ed command (the sweep and its multirun)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_until(condition: object, what: str, timeout: float = 1200) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.2)


def array_jobs(sweep_dir: Path) -> set[str]:
    """The Slurm job ids of the arrays a sweep submitted (submitit's folders: JOB_TASK)."""
    # JOB_TASK for an array, JOB for a sweep of one run (submitit submits no array of one).
    folders = (sweep_dir / ".submitit").glob("*")
    return {p.name.split("_")[0] for p in folders if re.fullmatch(r"\d+(_\d+)?", p.name)}
