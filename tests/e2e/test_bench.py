"""``spadelab bench``: the real training step, FLOPs, ratios of compared configs, bench.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spadelab.commands import bench


@pytest.fixture(autouse=True)
def _own_data_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPADELAB_CACHE", str(tmp_path / "cache"))


SMOKE = ["scale=smoke", "trainer.accelerator=cpu", "iterations=1", "warmup=1", "repeats=2"]


def test_parse_compare_accepts_mappings_strings_and_empty() -> None:
    configs = bench.parse_compare(
        "[{}, {trainer.precision: bf16-mixed, perf.compile: true}, 'perf.channels_last=true']"
    )
    assert configs == [
        [],
        ["trainer.precision=bf16-mixed", "perf.compile=true"],
        ["perf.channels_last=true"],
    ]


@pytest.mark.parametrize("text", ["[1, 2]", "{}", "[", "[]"])
def test_parse_compare_rejects_bad_input_in_one_line(text: str) -> None:
    with pytest.raises(ValueError, match="compare") as error:
        bench.parse_compare(text)
    assert "\n" not in str(error.value)


def test_bench_writes_flops_and_ratios(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bench.json"
    compare = "compare=[{}, {trainer.precision: bf16-mixed}]"
    assert bench.cli([*SMOKE, compare, "peak_tflops=2.5", f"out={out}"]) == 0
    result = json.loads(out.read_text())
    base, bf16 = result["results"]
    assert base["name"] == "base" and bf16["precision"] == "bf16-mixed"
    for row in (base, bf16):
        assert len(row["seconds_per_iteration"]["values"]) == 2
        assert row["seconds_per_iteration"]["median"] > 0
        # Counted by torch's FlopCounterMode: the same math in both precisions.
        assert row["flops_per_iteration"] > 1e6
        assert row["achieved_tflops"] == pytest.approx(
            row["flops_per_iteration"] / row["seconds_per_iteration"]["median"] / 1e12
        )
        assert row["fraction_of_peak"] == pytest.approx(row["achieved_tflops"] / 2.5)
        assert row["inference_images_per_second"]["median"] > 0
    assert base["flops_per_iteration"] == bf16["flops_per_iteration"]
    assert base["speedup"] == 1.0
    expected = base["seconds_per_iteration"]["median"] / bf16["seconds_per_iteration"]["median"]
    assert bf16["speedup"] == pytest.approx(expected)
    assert result["process_max_rss_mib"] > 0
    # The synthetic scenes were rendered into the cache before timing started.
    assert base["data_cache_warm_seconds"] > 0
    printed = capsys.readouterr().out
    assert "trainer.precision=bf16-mixed:" in printed and "GFLOP/iteration" in printed


def test_bench_flops_grow_with_the_network(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    compare = "compare=[{}, {model.generator.ngf: 8}]"
    assert bench.cli([*SMOKE[:-1], "repeats=1", compare, f"out={out}"]) == 0
    small, wide = json.loads(out.read_text())["results"]
    assert wide["flops_per_iteration"] > 1.5 * small["flops_per_iteration"]


def test_bench_bad_options_fail_in_one_line(capsys: pytest.CaptureFixture) -> None:
    assert bench.cli(["scale=smoke", "repeats=0"]) == 2
    assert "repeats=0" in capsys.readouterr().err
