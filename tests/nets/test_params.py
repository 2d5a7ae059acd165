"""The first fidelity check: our generators have the paper's parameter counts (Tables 3 and 4)."""

from __future__ import annotations

import pytest

from spadelab.commands.params import ROWS, format_table, generator_parameters, table


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
    from spadelab.commands.params import cli

    assert cli(["model=pix2pixhd_pp", "modulation=spade"]) == 0
    assert "generator parameters" in capsys.readouterr().out
    assert cli(["norm=batchh"]) == 2
    assert "norm" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # The official code's counts (tests/nets/test_fidelity.py, test_pix2pixhd_parity.py).
        (["data=ade20k"], "(data=ade20k, scale=paper): 96,492,483 (96.49M)"),
        (["model=pix2pixhd", "data=cityscapes"], "scale=paper): 182,525,379 (182.53M)"),
        (["model=spade_decoder"], "(model=spade_decoder, paper's COCO-Stuff setting): 97,480,899"),
    ],
)
def test_params_cli_honours_data_and_prints_exact_counts(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    from spadelab.commands.params import cli

    assert cli(argv) == 0
    assert expected in capsys.readouterr().out


def test_setting_for_keeps_the_users_data_keys() -> None:
    from spadelab.commands.params import COCO_SETTING, setting_for

    assert setting_for([]) == list(COCO_SETTING)
    assert setting_for(["data=ade20k"]) == ["scale=paper"]
    assert setting_for(["data=ade20k", "scale=smoke"]) == []
    assert "data.crop_size=256" not in setting_for(["data.crop_size=512"])
