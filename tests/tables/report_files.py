"""Reading a report's files in tests: its Markdown table, offline wandb run files (no server)."""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any


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
    A run's later ``spadelab evaluate`` adds an offline dir with the same run id: the first one
    (by its timestamped name) is the training's.
    """
    paths = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"), key=lambda p: p.parent.name)
    assert paths, f"no offline wandb run under {run_dir}/wandb"
    path = paths[0]
    deadline = time.monotonic() + timeout
    while True:
        runs = [r.run for r in wandb_records(path) if r.WhichOneof("record_type") == "run"]
        if runs or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert runs, f"no run record in {path}"
    return runs[0]


def markdown_rows(text: str) -> dict[str, dict[str, str]]:
    """The Markdown table of a report as {row label: {column header: cell}}."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split(" | ")]
    rows = {}
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def raw(row: dict[str, str], header: str) -> str:
    """A cell of the raw generator: ``header``, or ``header (raw)`` when EMA is shown too."""
    return row[header] if header in row else row[f"{header} (raw)"]
