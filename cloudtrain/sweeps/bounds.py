"""A sweep's cost bound and budget: ``max_trials`` x one trial's bound (nodes x $/h x max_runtime).

A cloud sweep whose bound exceeds ``sweep.budget.max_usd`` is refused before anything is sent
(:class:`~cloudtrain.errors.BudgetExceededError`, exit 4). A local sweep is checked trial by trial
with :class:`SpendTracker`: it launches a trial only while the spend so far plus the next trial's
bound stays within the budget. Local trials run on this machine and cost $0 in cloudtrain's
figures (the local backend has no price), so a budget never stops a local sweep; the tracker is
the same one the figures of a priced trial go through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloudtrain.errors import BudgetExceededError

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.cost import CostEstimate
    from cloudtrain.spec import Sweep


@dataclass(frozen=True)
class SweepBound:
    """The upper bound of a sweep on one offer."""

    trials: int
    per_trial_usd: float | None  # None: no bound (no max_runtime or no price)
    cloud: str = ""
    instance_type: str = ""

    @property
    def max_total_usd(self) -> float | None:
        return None if self.per_trial_usd is None else round(self.per_trial_usd * self.trials, 2)

    def to_dict(self) -> dict[str, Any]:
        return {"trials": self.trials, "per_trial_usd": self.per_trial_usd, "max_total_usd": self.max_total_usd,
                "cloud": self.cloud, "instance_type": self.instance_type}


def trial_count(sweep: "Sweep") -> int:
    """At most how many trials run: ``max_trials``, or fewer for a smaller grid."""
    if sweep.algorithm == "grid":
        from cloudtrain.sweeps.space import grid_size

        return min(sweep.max_trials, grid_size(sweep))
    return sweep.max_trials


def sweep_bound(sweep: "Sweep", estimate: "CostEstimate | None") -> SweepBound:
    """``trials`` x the per-trial bound of ``estimate`` (None when it has no bound)."""
    trials = trial_count(sweep)
    if estimate is None:  # local: nothing is billed
        return SweepBound(trials, 0.0, "local")
    exact = estimate.exact_max_total_usd
    per_trial = None if exact is None else round(exact, 6)  # not to cents: a budget may be smaller
    return SweepBound(trials, per_trial, estimate.cloud, estimate.instance_type)


def check_sweep_budget(sweep: "Sweep", estimate: "CostEstimate | None") -> SweepBound:
    """Refuse a sweep whose bound exceeds ``sweep.budget.max_usd``; returns the bound."""
    bound = sweep_bound(sweep, estimate)
    if sweep.budget is None:
        return bound
    from cloudtrain.cost import usd

    limit = sweep.budget.max_usd
    if bound.per_trial_usd is None and estimate is not None and not estimate.priced:
        raise BudgetExceededError(
            f"sweep.budget.max_usd is {usd(limit)} but {estimate.instance_type} on {estimate.cloud} in {estimate.region} has "
            "no sourced price, so a trial's cost bound cannot be proven; nothing was submitted",
            f"give your price for it (a `prices:` entry in cloudtrain.yaml or the user config, e.g. prices: [{{cloud: "
            f"{estimate.cloud}, region: {estimate.region}, instance_type: {estimate.instance_type}, usd_per_hour: ...}}], or "
            f"`cloudtrain prices import FILE`), choose a priced instance type (`cloudtrain catalog --cloud {estimate.cloud}`), "
            "or remove sweep.budget")
    if bound.per_trial_usd is None:
        raise BudgetExceededError(
            f"sweep.budget.max_usd is {usd(limit)} but the spec has no max_runtime, so a trial on {bound.cloud} "
            f"{bound.instance_type} has no cost bound; nothing was submitted",
            "set max_runtime (e.g. max_runtime: 30m), or remove sweep.budget")
    total = bound.per_trial_usd * bound.trials
    if total > limit + 1e-12:
        per_trial = f"${bound.per_trial_usd:,.4f}".rstrip("0").rstrip(".")  # to a hundredth of a cent: the figures add up
        raise BudgetExceededError(
            f"the sweep could cost up to {usd(total)} ({bound.trials} trials x {per_trial} on {bound.cloud} "
            f"{bound.instance_type}), over sweep.budget.max_usd {usd(limit)}; nothing was submitted",
            "lower max_trials, max_runtime or resources, or raise sweep.budget.max_usd")
    return bound


class SpendTracker:
    """Spend so far against a budget: a trial is launched only while it fits."""

    def __init__(self, max_usd: float | None, per_trial_usd: float) -> None:
        self.max_usd, self.per_trial_usd, self.spent_usd = max_usd, per_trial_usd, 0.0

    def can_launch(self, committed_trials: int = 0) -> bool:
        """Whether the spend so far, the bounds of ``committed_trials`` still running, and the next
        trial's bound stay within the budget."""
        if self.max_usd is None:
            return True
        return self.spent_usd + (committed_trials + 1) * self.per_trial_usd <= self.max_usd + 1e-9

    def add(self, usd: float) -> None:
        self.spent_usd += usd
