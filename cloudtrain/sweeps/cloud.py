"""Cloud sweeps: a spec's sweep as its backend's own tuning service.

The backend renders the tuning request (:meth:`Provider.render_sweep`, validated by its SDK) over
trials planned like the spec's job without its sweep; the sweep's bound (max_trials x the trial's
bound) is checked against ``sweep.budget`` first. Submitting (:meth:`Runner.submit_sweep`) records
the tuning job in the job store, so ``status``, ``logs``, ``cancel``, ``list`` and ``wait`` follow
it like any job. Backends without a tuning service refuse, naming it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, TypeVar

from cloudtrain.sweeps.bounds import check_sweep_budget
from cloudtrain.sweeps.space import require_sweep, without_sweep

T = TypeVar("T")

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.plan import Plan
    from cloudtrain.providers.base import NativeRequest
    from cloudtrain.runner import Runner, Submission
    from cloudtrain.specfile import LoadedSpec


def plan(loaded: "LoadedSpec", cloud: str, runner: "Runner", *, dry_run: bool) -> "Plan":
    """The plan of one trial (the spec without its sweep) on ``cloud`` (``cheapest``: the cloud whose
    trial bound, and so the sweep's, is lowest), refused when the sweep's bound exceeds its budget."""
    sweep = require_sweep(loaded.spec)
    trial = runner.plan(without_sweep(loaded), cloud, dry_run=dry_run)
    check_sweep_budget(sweep, trial.estimate)
    return trial


def render(loaded: "LoadedSpec", cloud: str, runner: "Runner", *, dry_run: bool = True) -> "NativeRequest":
    """The tuning request of ``cloud`` (or ``cheapest``) for the spec's sweep; nothing is sent."""
    return rendered(loaded, cloud, runner, dry_run=dry_run)[1]


def rendered(loaded: "LoadedSpec", cloud: str, runner: "Runner", *, dry_run: bool = True) -> "tuple[Plan, NativeRequest]":
    """One trial's plan (its settings, staging and bound) and the tuning request; nothing is sent."""
    trial = plan(loaded, cloud, runner, dry_run=dry_run)
    return trial, _as_picked(cloud, trial, lambda: runner.provider(trial.cloud).render_sweep(trial, require_sweep(loaded.spec)))


def submit(loaded: "LoadedSpec", cloud: str, runner: "Runner") -> "Submission":
    """Stage the code and create the tuning job (once), recorded in the job store."""
    trial = plan(loaded, cloud, runner, dry_run=False)
    return _as_picked(cloud, trial, lambda: runner.submit_sweep(trial, require_sweep(loaded.spec)))


def _as_picked(cloud: str, trial: "Plan", action: Callable[[], T]) -> T:
    """``action()``; with ``--cloud cheapest``, a refusal says that cheapest picked that cloud."""
    from cloudtrain.errors import UnsupportedFeatureError

    try:
        return action()
    except UnsupportedFeatureError as error:
        if cloud != "cheapest":
            raise
        raise UnsupportedFeatureError(f"--cloud cheapest picked {trial.cloud} (the lowest bound), which cannot run this sweep: "
                                      f"{error.message}", "; ".join(filter(None, [error.hint, "or name another cloud with --cloud"]))) from None
