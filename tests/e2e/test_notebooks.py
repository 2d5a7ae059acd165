"""Every notebook in notebooks/ is committed executed, with its figures, and runs top to bottom.

Notebooks that train a model read their budget from ``SPADELAB_NOTEBOOK_BUDGET`` (a cell tagged
``parameters``): the committed outputs come from the ``full`` budget, the re-execution here
runs ``tiny``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from spadelab.config import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
# A notebook on a code host must stay small: PNG figures at a modest dpi, no raw arrays.
MAX_NOTEBOOK_BYTES = 600_000
EXPECTED = {
    "01_wash_away.ipynb",
    "02_results.ipynb",
    "03_multimodal_style.ipynb",
    "04_norm_statistics.ipynb",
}


def outputs(notebook: nbformat.NotebookNode) -> list[dict]:
    return [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]


def images(notebook: nbformat.NotebookNode) -> list[str]:
    return [o["data"]["image/png"] for o in outputs(notebook) if "image/png" in o.get("data", {})]


def errors(notebook: nbformat.NotebookNode) -> list[dict]:
    return [o for o in outputs(notebook) if o.get("output_type") == "error"]


def budget_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    tagged = [c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    return tagged[0] if tagged else None


def test_there_are_notebooks() -> None:
    assert {path.name for path in NOTEBOOKS} >= EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_with_outputs(path: Path) -> None:
    """On a code host the notebook shows what it computed: every code cell ran, in order, with
    no error, and at least one figure is there."""
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES, f"{path.name} is {path.stat().st_size} bytes"
    notebook = nbformat.read(path, as_version=4)
    counts = [c.get("execution_count") for c in notebook.cells if c.cell_type == "code"]
    assert None not in counts, f"{path.name} has code cells that were not executed: {counts}"
    assert counts == sorted(counts), f"{path.name} was executed out of order: {counts}"
    assert not errors(notebook)
    assert images(notebook), f"{path.name} has no PNG figure in its outputs"
    assert all(len(image) > 1000 for image in images(notebook))  # not an empty canvas


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_budget_parameter(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A training notebook's parameters cell knows `tiny` and `full` and refuses anything else."""
    cell = budget_cell(nbformat.read(path, as_version=4))
    if cell is None:
        assert "SPADELAB_NOTEBOOK_BUDGET" not in path.read_text(), "untagged budget cell"
        return
    for budget in ("tiny", "full"):
        monkeypatch.setenv("SPADELAB_NOTEBOOK_BUDGET", budget)
        namespace: dict = {}
        exec(cell.source, namespace)
        assert namespace["BUDGET"] == budget
    monkeypatch.setenv("SPADELAB_NOTEBOOK_BUDGET", "huge")
    with pytest.raises(ValueError, match="SPADELAB_NOTEBOOK_BUDGET=huge is unknown"):
        exec(cell.source, {})


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel inherits this process's environment, so training notebooks run tiny.
    monkeypatch.setenv("SPADELAB_NOTEBOOK_BUDGET", "tiny")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    assert not errors(notebook)
    assert images(notebook), f"{path.name} drew no figure when re-executed"
