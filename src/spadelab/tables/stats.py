"""Statistics over seeds for results tables: pure functions of lists of numbers.

A cell is the mean over seeds with a 95% Student-t interval, ``mean ± t_{0.975, n-1} s/√n``
(``s``: the sample standard deviation). A row is compared with its reference row by the paired
difference: per seed both rows have, ``row - reference``, then the same interval over those
differences. Pairing removes what a seed does to both rows (data order, initialisation), so
it resolves smaller effects than comparing two independent means.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy.stats import t as student_t

LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """The mean of ``n`` values with its confidence interval (``half_width`` None when n < 2)."""

    mean: float
    n: int
    std: float | None = None
    half_width: float | None = None

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies wholly above or below 0 (False without an interval)."""
        if self.half_width is None:
            return False
        return self.mean - self.half_width > 0 or self.mean + self.half_width < 0


def t_quantile(n: int, level: float = LEVEL) -> float:
    """The two-sided Student-t quantile for ``n`` values (``n - 1`` degrees of freedom)."""
    if n < 2:
        raise ValueError(f"a t-interval needs at least 2 values, got {n}")
    return float(student_t.ppf(0.5 + level / 2, n - 1))


def mean_ci(values: Sequence[float], level: float = LEVEL) -> Estimate:
    """Mean and ``level`` t-interval of ``values``; one value gives the mean and no interval."""
    if not values:
        raise ValueError("mean_ci needs at least one value")
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return Estimate(mean, 1)
    std = statistics.stdev(values)
    half_width = t_quantile(len(values), level) * std / math.sqrt(len(values))
    return Estimate(mean, len(values), std, half_width)


def paired_difference(
    values: Mapping[int, float], reference: Mapping[int, float], level: float = LEVEL
) -> Estimate | None:
    """``values - reference`` paired by seed over the seeds both have; None when they share none.

    ``values`` and ``reference`` map a seed to that seed's result.
    """
    seeds = sorted(set(values) & set(reference))
    if not seeds:
        return None
    return mean_ci([values[seed] - reference[seed] for seed in seeds], level)


def resolvable_difference(differences: Sequence[Estimate | None]) -> tuple[float, int] | None:
    """The median CI half-width over the paired differences that have one, and their count.

    A table's difference smaller than this is not resolved for a typical row: its interval
    would include 0. None when no difference has an interval (fewer than 2 shared seeds).
    """
    widths = [d.half_width for d in differences if d is not None and d.half_width is not None]
    if not widths:
        return None
    return float(statistics.median(widths)), len(widths)


def seeds_for_half_width(
    std: float, target: float, level: float = LEVEL, limit: int = 1000
) -> int | None:
    """The fewest seeds ``n >= 2`` with ``t_{level, n-1} · std / √n <= target``.

    How many paired seeds a difference of spread ``std`` needs for its interval to be
    ``± target`` wide; None when even ``limit`` seeds are not enough.
    """
    if target <= 0:
        raise ValueError(f"target half-width must be > 0, got {target}")
    for n in range(2, limit + 1):
        if t_quantile(n, level) * std / math.sqrt(n) <= target:
            return n
    return None


def typical_spread(differences: Sequence[Estimate | None]) -> float | None:
    """The median sample standard deviation over the paired differences that have one."""
    spreads = [d.std for d in differences if d is not None and d.std is not None]
    return float(statistics.median(spreads)) if spreads else None
