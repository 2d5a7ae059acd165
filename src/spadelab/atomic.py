"""Atomic file writes: a crash never leaves half a checkpoint, cache or metrics file behind."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

# Temporary files are named ``.<name>.<pid>.<random>.tmp<suffix>`` beside the target: unique
# per writer (two processes never share one), on the same filesystem (os.replace is atomic), and
# traceable to their writer so the leftovers of a killed one can be removed.
_TMP_MARK = ".tmp"


def _stale_temps(path: Path) -> Iterator[Path]:
    for candidate in path.parent.glob(f".{path.name}.*{_TMP_MARK}{path.suffix}"):
        parts = candidate.name[len(path.name) + 2 :].split(".")
        if not parts or not parts[0].isdigit():
            continue
        pid = int(parts[0])
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            yield candidate  # its writer is dead: a partial file nobody will finish
        except PermissionError:
            continue


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    The temporary name keeps the suffix (``x.npz`` -> ``.x.npz.<pid>.<hex>.tmp.npz``) so writers
    that append one, like ``np.savez``, write exactly the yielded path. Readers see either the
    old or the new file, never a torn one, with any number of concurrent writers.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in _stale_temps(path):
        with contextlib.suppress(OSError):
            stale.unlink()
    tmp = path.with_name(
        f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{_TMP_MARK}{path.suffix}"
    )
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """An exclusive ``fcntl`` lock on ``path`` (created if needed), held for the block.

    Around work whose result goes into a shared cache (the evaluation judge): the second
    process waits, then finds the first one's result instead of training it again. The kernel
    drops the lock when its holder dies, so a killed process never blocks the next.
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class LockHeld(Exception):
    """``try_pid_lock``: another live process holds the lock; ``holder`` is its PID as written."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


def try_pid_lock(path: str | os.PathLike[str]) -> IO[str]:
    """Take an exclusive ``fcntl`` lock on ``path`` without waiting and write our PID into it.

    Returns the open handle: the lock lasts while it stays open (the kernel drops it when the
    process dies, so a killed holder never blocks the next). Raises :class:`LockHeld` with the
    holder's PID when another process has it. Used for one run per run dir and one sweep per
    sweep dir.
    """
    import fcntl

    handle = Path(path).open("a+")  # noqa: SIM115 - the open handle is the lock, returned
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise LockHeld(holder) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
