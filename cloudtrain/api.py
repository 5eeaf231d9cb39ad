"""The public Python API: the same things the CLI does, as objects.

>>> import cloudtrain
>>> job = cloudtrain.Job.from_file("examples/digits-sklearn.yaml", overrides={"resources.nodes": 1})
>>> for row in job.estimate():                       # the cheapest matching offer on each cloud
...     print(row.cloud, row.instance_type, row.usd_per_hour, row.max_total_usd)
>>> print(job.dry_run("sagemaker").to_text())        # the exact native request; nothing is sent
>>> run = job.run()                                  # on this machine, in the foreground
>>> run.state, run.metrics["test_accuracy"]
>>> run = job.submit("sagemaker")                    # or wait=True to return when it ends
>>> run.wait().state
>>> cloudtrain.runs(cloud="sagemaker")               # the recorded jobs

A :class:`Job` is a validated spec (from a file, or keyword arguments with the spec's fields); a
:class:`Run` is a handle on one recorded job, on any backend. Errors are
:class:`~cloudtrain.errors.CloudtrainError` s with a message and a hint, as in the CLI, which is a
thin layer over this module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.cost import SpecEstimate
    from cloudtrain.plan import Plan
    from cloudtrain.providers.base import JobState, JobStatus, NativeRequest
    from cloudtrain.runner import Runner
    from cloudtrain.spec import JobSpec
    from cloudtrain.specfile import LoadedSpec
    from cloudtrain.store import JobRecord


def _override_strings(overrides: Mapping[str, Any] | Iterable[str]) -> list[str]:
    """``{"resources.nodes": 2}`` -> ``["resources.nodes=2"]`` (values written as JSON, read as YAML)."""
    if isinstance(overrides, Mapping):
        return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    return [str(item) for item in overrides]


def _runner(runner: "Runner | None") -> "Runner":
    from cloudtrain.runner import Runner

    return runner or Runner()


class Job:
    """A training job spec, validated, with what can be done with it.

    ``Job(name="digits", code=".", entrypoint="train.py", resources={"cpus": 2})`` builds one from
    the spec's fields (relative paths are relative to ``base_dir``, the current directory by
    default); :meth:`from_file` reads a YAML or Python spec. Both merge the config layers
    (``cloudtrain.yaml``, the user config, ``CLOUDTRAIN_<BACKEND>_<KEY>``) as the CLI does."""

    def __init__(self, *, base_dir: str | os.PathLike[str] | None = None, runner: "Runner | None" = None,
                 check_files: bool = True, **fields: Any) -> None:
        from cloudtrain.specfile import build_spec, check_spec_files

        loaded = build_spec(fields, source="<Job(...)>", base_dir=Path(base_dir or Path.cwd()).resolve())
        if check_files:
            check_spec_files(loaded)
        self._loaded, self._runner = loaded, runner

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], overrides: Mapping[str, Any] | Iterable[str] = (), *,
                  check_files: bool = True, runner: "Runner | None" = None) -> "Job":
        """Load a YAML or Python spec; ``overrides`` as ``{"resources.nodes": 2}`` or ``["resources.nodes=2"]``."""
        from cloudtrain.specfile import load_spec

        return cls.from_loaded(load_spec(path, _override_strings(overrides), check_files=check_files), runner=runner)

    @classmethod
    def from_loaded(cls, loaded: "LoadedSpec", runner: "Runner | None" = None) -> "Job":
        job = cls.__new__(cls)
        job._loaded, job._runner = loaded, runner
        return job

    @property
    def spec(self) -> "JobSpec":
        return self._loaded.spec

    @property
    def runner(self) -> "Runner":
        if self._runner is None:
            self._runner = _runner(None)
        return self._runner

    def __repr__(self) -> str:
        return f"Job({self.spec.name!r})"

    def estimate(self, cloud: str | None = None, *, region: str | None = None, spot: bool | None = None) -> "SpecEstimate":
        """The cheapest matching offer on each backend (or ``cloud``), cheapest first. Iterating
        gives the priced rows (``cloud``, ``region``, ``instance_type``, ``usd_per_hour``,
        ``max_total_usd``, ...); backends without sourced prices are in ``.unpriced``."""
        from cloudtrain.cost import estimate_spec
        from cloudtrain.providers import registry

        spec, runner = self.spec, self.runner
        priced = runner.priced_backends(spec, region)
        if cloud is not None:
            registry.provider_class(cloud)  # an unknown name is refused
            priced = {cloud: priced[cloud]} if cloud in priced else {}
        unpriced = {name: "no sourced price: this backend's machines are not in cloudtrain's catalog"
                    for name, cls in registry.available().items()
                    if name != "local" and not cls.machines_from_catalog and cloud in (None, name)}
        return estimate_spec(spec, runner.catalog_for(self._loaded), clouds=priced, unpriced=unpriced, spot=spot)

    def plan(self, cloud: str, *, region: str | None = None, spot: bool | None = None, dry_run: bool = False) -> "Plan":
        """Where and how one submission would run (offer, job name, estimate); refuses what the backend
        cannot do. ``dry_run``: settings not set yet become placeholders (``plan.missing_settings``)."""
        return self.runner.plan(self._loaded, cloud, region=region, spot=spot, dry_run=dry_run)

    def dry_run(self, cloud: "str | Plan", *, region: str | None = None, spot: bool | None = None) -> "NativeRequest":
        """The exact native request a submission would send (``.payload``, ``.to_text()``); nothing
        is sent. ``cloud``: a backend name, or a plan from :meth:`plan`."""
        plan = cloud if not isinstance(cloud, str) else self.plan(cloud, region=region, spot=spot, dry_run=True)
        return self.runner.submit(plan, dry_run=True).request

    def run(self, on_line: Callable[[str], None] | None = None) -> "Run":
        """Run the job on this machine in the foreground; returns when it ends (see ``Run.state``)."""
        runner = self.runner
        record, _ = runner.run_local(runner.plan(self._loaded, "local"), on_line=on_line)
        return Run(record.id, runner)

    def resume_plan(self, job_id: str) -> "Plan":
        """The plan of a submission left PENDING (interrupted, or no answer to its create call),
        with its original name and token: submitting it creates the cloud job once at most."""
        return self.runner.resume_plan(self._loaded, job_id)

    def submit(self, cloud: "str | Plan", *, region: str | None = None, spot: bool | None = None, wait: bool = False) -> "Run":
        """Submit to a backend (``cheapest`` picks the cloud), or send a plan from :meth:`plan` or
        :meth:`resume_plan`; ``wait=True`` returns once the job ended."""
        runner = self.runner
        plan = cloud if not isinstance(cloud, str) else runner.plan(self._loaded, cloud, region=region, spot=spot)
        record = runner.submit(plan).record
        assert record is not None
        run = Run(record.id, runner)
        return run.wait() if wait else run


class Run:
    """One recorded job on any backend: its state, metrics, logs; cancel it or wait for it."""

    def __init__(self, job_id: str, runner: "Runner | None" = None) -> None:
        """``job_id``: an id, the start of one, or a job name (its latest run)."""
        self._runner = _runner(runner)
        self._record = self._runner.store.resolve(job_id)
        self._status: "JobStatus | None" = None

    @classmethod
    def from_record(cls, record: "JobRecord", runner: "Runner") -> "Run":
        run = cls.__new__(cls)
        run._runner, run._record, run._status = runner, record, None
        return run

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def cloud(self) -> str:
        return self._record.cloud

    @property
    def record(self) -> "JobRecord":
        """What the job store holds (updated by :meth:`status` and :meth:`wait`)."""
        return self._record

    @property
    def state(self) -> "JobState":
        """The last known state (call :meth:`status` to ask the backend)."""
        return self._record.state

    def __repr__(self) -> str:
        return f"Run({self.id!r}, cloud={self.cloud!r}, state={self.state.value})"

    @property
    def last_status(self) -> "JobStatus | None":
        """What the backend said when last asked (by :meth:`status` or :meth:`wait`)."""
        return self._status

    def status(self, stored_if_unreachable: bool = False) -> "JobStatus":
        """Ask the backend for the job's state now, and record it (a finished cloud job is answered
        from the store; ``stored_if_unreachable``: the stored state, with a note, when the backend
        cannot be asked)."""
        self._record, self._status = self._runner.status(self.id, stored_if_unreachable=stored_if_unreachable)
        return self._status

    def logs(self, follow: bool = False) -> Iterator[str]:
        """The job's log lines; with ``follow``, until it ends."""
        return self._runner.logs(self.id, follow=follow)

    def cancel(self) -> "Run":
        self._record = self._runner.cancel(self.id)
        return self

    def wait(self, timeout: float | None = None, poll_seconds: float = 2.0,
             on_change: "Callable[[JobRecord, JobStatus], None] | None" = None) -> "Run":
        """Return once the job ended (``timeout`` seconds at most: then a UsageError);
        ``on_change`` is called with the record and status at each change of state."""
        self._record, self._status = self._runner.wait(self.id, timeout=timeout, poll_seconds=poll_seconds, on_change=on_change)
        return self

    @property
    def metrics(self) -> dict[str, float]:
        """The last value of each metric the job logged (``log_metric`` or its metric lines; on the
        local backend also what it reported to MLflow or cloudml-hypertune)."""
        run_dir = self._record.details.get("run_dir")
        if self.cloud == "local" and run_dir and Path(run_dir).is_dir():
            from cloudtrain.runtime.reports import last_values

            found = last_values(Path(run_dir))
            if found:
                return found
        return _metrics_from_lines(self.logs())


def _metrics_from_lines(lines: Iterable[str]) -> dict[str, float]:
    import re

    from cloudtrain.runtime.context import METRIC_PATTERN

    pattern = re.compile(METRIC_PATTERN)
    found: dict[str, float] = {}
    for line in lines:
        match = pattern.search(line)
        if match:
            try:
                found[match.group("name")] = float(match.group("value"))
            except ValueError:
                continue
    return found


def runs(cloud: str | None = None, limit: int = 50, refresh: bool = False, runner: "Runner | None" = None) -> list[Run]:
    """The recorded jobs, newest first (``cloud``: one backend's); ``refresh`` asks the backends
    for the state of jobs that have not ended."""
    runner = _runner(runner)
    if cloud is not None:
        from cloudtrain.providers import registry

        registry.provider_class(cloud)
    return [Run.from_record(record, runner) for record in runner.list(cloud=cloud, limit=limit, refresh=refresh)]
