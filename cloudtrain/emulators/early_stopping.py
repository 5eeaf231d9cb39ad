"""The median early-stopping rule of the three clouds' tuning services, once for their emulators.

Each service compares a running trial's objective, at its ``k``-th report, with the median of
other trials' running averages over their first ``k`` reports, and stops it when it is worse:

- SageMaker (``TrainingJobEarlyStoppingType: Auto``): the trial's current value, against the
  trials launched before it;
- Vertex AI (``medianAutomatedStoppingSpec``): the trial's best value so far, against the
  completed trials;
- Azure ML (``MedianStopping``): the trial's best value so far, against the trials (itself among
  them) that reported ``k`` values.

Which trials count and which value is compared are the caller's; a report is one value of the
objective in logging order (an epoch, for a script that logs once per epoch).
"""

from __future__ import annotations

import math
import statistics
from typing import Iterable, Sequence


def median_verdict(values: Sequence[float], peers: Iterable[Sequence[float]], maximize: bool, *,
                   use_best: bool) -> str | None:
    """Why the trial with reports ``values`` is stopped now, or None: its latest (``use_best``: best)
    value is worse than the median of the running averages, over as many reports, of the ``peers``
    that made that many. No peer with as many reports, or a value that is not finite, stops nothing."""
    k = len(values)
    finite = [value for value in values if math.isfinite(value)]
    if not k or not finite:
        return None
    averages = [statistics.fmean(peer[:k]) for peer in peers if len(peer) >= k]
    averages = [average for average in averages if math.isfinite(average)]
    if not averages:
        return None
    median = statistics.median(averages)
    mine = ((max if maximize else min)(finite)) if use_best else values[-1]
    if not math.isfinite(mine) or not (mine < median if maximize else mine > median):
        return None
    return (f"{'best' if use_best else 'its'} value {mine:g} at report {k} is worse than the median {median:g} "
            f"of {len(averages)} trials' running averages")
