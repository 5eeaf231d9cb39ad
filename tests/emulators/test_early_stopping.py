"""The median early-stopping rule the emulators' tuning services share, against hand-computed values."""

from __future__ import annotations

import math

from cloudtrain.emulators.early_stopping import median_verdict


def test_the_latest_value_is_compared_with_the_median_of_the_peers_running_averages() -> None:
    peers = [[0.9, 0.9, 0.9], [0.1, 0.5], [0.5, 0.7, 0.8]]  # averages over 2 reports: 0.9, 0.3, 0.6 -> median 0.6
    assert median_verdict([0.7, 0.55], peers, maximize=True, use_best=False) is not None  # 0.55 < 0.6
    assert median_verdict([0.7, 0.65], peers, maximize=True, use_best=False) is None
    assert median_verdict([0.7, 0.55], peers, maximize=True, use_best=True) is None  # best so far 0.7 >= 0.6
    verdict = median_verdict([0.7, 0.65], peers, maximize=False, use_best=False)  # minimizing: 0.65 > 0.6
    assert verdict is not None and "0.65" in verdict and "median 0.6 " in verdict and "3 trials" in verdict


def test_only_peers_with_as_many_reports_count() -> None:
    assert median_verdict([5.0, 5.0, 5.0], [[1.0, 1.0]], maximize=False, use_best=False) is None
    assert median_verdict([5.0], [[1.0, 1.0]], maximize=False, use_best=False) is not None
    assert median_verdict([5.0], [], maximize=False, use_best=False) is None


def test_values_that_are_not_finite_stop_nothing() -> None:
    assert median_verdict([math.nan], [[1.0]], maximize=True, use_best=False) is None
    assert median_verdict([0.5], [[math.nan]], maximize=True, use_best=False) is None
    assert median_verdict([math.nan, 0.1], [[0.9, 0.9]], maximize=True, use_best=True) is not None  # best finite 0.1 < 0.9
