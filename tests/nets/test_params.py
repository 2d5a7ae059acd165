"""The first fidelity check: our generators have the paper's parameter counts (Tables 3 and 4)."""

from __future__ import annotations

import pytest

from spadelab.params import ROWS, format_table, generator_parameters, table


def test_every_row_with_a_target_is_within_tolerance() -> None:
    results = table()
    missed = [r for r in results if r["ok"] is False]
    assert not missed, format_table(results)
    # The rows without a stated tolerance must still be in the paper's ballpark.
    for r in results:
        assert abs(r["gap"]) < 0.10, f"{r['row']}: {r['ours_m']:.1f}M vs {r['paper_m']}M"


def test_decoder_tolerances_are_the_issue_ones() -> None:
    targets = {row.label: row.tolerance for row in ROWS}
    assert targets["decoder w/ SPADE"] == 0.02
    assert targets["capacity 141M"] == 0.02
    assert targets["pix2pixHD"] == 0.03
    assert targets["compact pix2pixHD++"] == 0.03


def test_capacity_is_monotonic_in_width_multiplier() -> None:
    counts = [
        generator_parameters(["scale=paper", f"model.generator.width_multiplier={w}"])
        for w in (0.5, 0.75, 1.0)
    ]
    assert counts[0] < counts[1] < counts[2]


def test_params_cli_with_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    from spadelab.params import cli

    assert cli(["model=pix2pixhd_pp", "modulation=spade"]) == 0
    assert "generator parameters" in capsys.readouterr().out
    assert cli(["norm=batchh"]) == 2
    assert "norm" in capsys.readouterr().err
