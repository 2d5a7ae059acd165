"""The CI and paired-difference functions on known data (t quantiles from tables)."""

from __future__ import annotations

import math

import pytest

from spadelab.tables import stats


@pytest.mark.parametrize(
    ("n", "quantile"),
    # t_{0.975, n-1} from a printed t table: 12.706 (1 df), 4.303 (2), 2.776 (4), 2.262 (9).
    [(2, 12.706), (3, 4.303), (5, 2.776), (10, 2.262)],
)
def test_t_quantile_matches_the_printed_table(n: int, quantile: float) -> None:
    assert stats.t_quantile(n) == pytest.approx(quantile, abs=5e-4)


def test_mean_ci_on_known_data() -> None:
    estimate = stats.mean_ci([10.0, 12.0, 14.0])
    # mean 12, s = 2, half-width = 4.303 * 2 / sqrt(3) = 4.968
    assert estimate.mean == 12.0 and estimate.n == 3 and estimate.std == 2.0
    assert estimate.half_width == pytest.approx(4.3027 * 2 / math.sqrt(3), abs=1e-3)
    assert estimate.low == pytest.approx(12 - 4.9683, abs=1e-3)
    assert estimate.high == pytest.approx(12 + 4.9683, abs=1e-3)
    assert estimate.excludes_zero


def test_one_value_has_a_mean_and_no_interval() -> None:
    estimate = stats.mean_ci([3.5])
    assert (estimate.mean, estimate.n, estimate.std, estimate.half_width) == (3.5, 1, None, None)
    assert estimate.low is None and not estimate.excludes_zero
    with pytest.raises(ValueError, match="at least one value"):
        stats.mean_ci([])
    with pytest.raises(ValueError, match="at least 2 values"):
        stats.t_quantile(1)


def test_paired_difference_uses_only_shared_seeds() -> None:
    row = {0: 12.0, 1: 15.0, 2: 11.0, 7: 99.0}  # seed 7: the reference has no run
    reference = {0: 10.0, 1: 12.0, 2: 10.0, 3: 50.0}
    diff = stats.paired_difference(row, reference)
    assert diff is not None
    # differences 2, 3, 1: mean 2, s = 1, half-width 4.303 / sqrt(3) = 2.484
    assert diff.mean == 2.0 and diff.n == 3 and diff.std == 1.0
    assert diff.half_width == pytest.approx(4.3027 / math.sqrt(3), abs=1e-3)
    assert not diff.excludes_zero  # -0.48..4.48


def test_paired_difference_resolves_what_unpaired_means_do_not() -> None:
    # A seed effect shared by both rows (+-10) and a steady +1 from the row itself.
    reference = {0: 40.0, 1: 50.0, 2: 60.0, 3: 45.0}
    row = {seed: value + 1.0 + 0.1 * (seed % 2) for seed, value in reference.items()}
    diff = stats.paired_difference(row, reference)
    assert diff is not None and diff.excludes_zero and diff.mean == pytest.approx(1.05)
    separate = stats.mean_ci(list(row.values())).half_width
    assert separate is not None and separate > 5  # unpaired, the seed effect swamps it
    negative = stats.paired_difference(reference, row)
    assert negative is not None and negative.excludes_zero and negative.high < 0


def test_paired_difference_without_shared_seeds_or_with_one() -> None:
    assert stats.paired_difference({0: 1.0}, {1: 2.0}) is None
    one = stats.paired_difference({0: 5.0, 1: 6.0}, {1: 2.0})
    assert one == stats.Estimate(4.0, 1)


def test_resolvable_difference_is_the_median_half_width() -> None:
    differences = [
        stats.Estimate(1.0, 3, 1.0, 2.0),
        stats.Estimate(0.0, 3, 1.0, 4.0),
        stats.Estimate(0.0, 3, 1.0, 3.0),
        stats.Estimate(0.0, 1),  # no interval: not counted
        None,
    ]
    assert stats.resolvable_difference(differences) == (3.0, 3)
    assert stats.resolvable_difference([None, stats.Estimate(0.0, 1)]) is None


def test_seeds_for_half_width_is_the_fewest_that_reach_the_target() -> None:
    # sd 4: n = 9 gives t_8 · 4/3 = 3.07 > 3, n = 10 gives t_9 · 4/√10 = 2.86.
    assert stats.seeds_for_half_width(4.0, 3.0) == 10
    n = stats.seeds_for_half_width(4.0, 3.0)
    assert stats.t_quantile(n) * 4.0 / math.sqrt(n) <= 3.0
    assert stats.t_quantile(n - 1) * 4.0 / math.sqrt(n - 1) > 3.0
    assert stats.seeds_for_half_width(0.0, 3.0) == 2
    assert stats.seeds_for_half_width(1e6, 3.0) is None
    with pytest.raises(ValueError, match="> 0"):
        stats.seeds_for_half_width(1.0, 0.0)


def test_typical_spread_is_the_median_sd_of_the_differences() -> None:
    differences = [stats.Estimate(0.0, 3, 1.0, 2.0), stats.Estimate(0.0, 3, 5.0, 9.0), None]
    assert stats.typical_spread([*differences, stats.Estimate(0.0, 3, 2.0, 3.0)]) == 2.0
    assert stats.typical_spread([None, stats.Estimate(0.0, 1)]) is None
