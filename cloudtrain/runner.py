"""The runner: plan -> check -> budget -> render -> record -> submit, and following jobs afterwards.

It is the one place that ties a provider to the job store. The order of a submission matters:
unsupported features and the budget are refused before anything is staged or created; the job is
recorded in the store (state PENDING, with its name and submission token) *before* the provider
sends the create request, so an interrupted submission can still be followed by its name (the
cloud job's name, or for Vertex its submission label), and calling ``submit`` again with the same
plan finds the job created before instead of creating a second one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from cloudtrain.cost import check_budget
from cloudtrain.errors import (CloudtrainError, ProviderError, SubmissionUncertainError, UnsupportedFeatureError, UsageError,
                               WaitTimeoutError)
from cloudtrain.plan import Plan, make_plan
from cloudtrain.providers.base import JobState, JobStatus, NativeRequest
from cloudtrain.providers.registry import get_provider
from cloudtrain.specfile import LoadedSpec

if TYPE_CHECKING:  # pragma: no cover
    from cloudtrain.store import JobRecord, JobStore


@dataclass(frozen=True)
class Submission:
    plan: Plan
    request: NativeRequest
    record: JobRecord | None  # None for a dry run


class Runner:
    def __init__(self, store: JobStore | None = None, providers: dict[str, Any] | None = None, catalog: Any = None) -> None:
        self._store = store
        self._providers = dict(providers or {})
        self._catalog = catalog

    @property
    def store(self) -> "JobStore":
        """The job store, opened on first use (``estimate`` and dry runs never open it)."""
        if self._store is None:
            from cloudtrain.store import JobStore

            self._store = JobStore()
        return self._store

    def provider(self, cloud: str) -> Any:
        if cloud not in self._providers:
            self._providers[cloud] = get_provider(cloud)
        return self._providers[cloud]

    @property
    def catalog(self) -> Any:
        if self._catalog is None:
            from cloudtrain.catalog import load_catalog
            from cloudtrain.paths import catalog_cache_dir

            self._catalog = load_catalog(catalog_cache_dir())
        return self._catalog

    # -- planning and submitting ----------------------------------------------------------------

    def plan(self, loaded: LoadedSpec, cloud: str, *, region: str | None = None, spot: bool | None = None,
             dry_run: bool = False) -> Plan:
        """Resolve a loaded spec for a backend (or ``cheapest``), refined and checked by the backend.
        ``dry_run``: required settings not set yet are rendered as placeholders and listed in
        ``plan.missing_settings`` instead of refused (such a plan cannot be submitted)."""
        if cloud == "cheapest":
            from cloudtrain.plan import cheapest_cloud

            cloud = cheapest_cloud(loaded.spec, self.catalog_for(loaded), self.priced_backends(loaded.spec, region), spot=spot)
        return self._plan(loaded.spec, cloud, region=region, spot=spot, dry_run=dry_run, catalog=self.catalog_for(loaded))

    def catalog_for(self, loaded: LoadedSpec) -> Any:
        """The catalog with the config files' own prices (``prices:``) over it."""
        prices = getattr(loaded, "prices", ())
        return self.catalog.with_prices(prices) if prices else self.catalog

    def _plan(self, spec: Any, cloud: str, *, region: str | None = None, spot: bool | None = None,
              created_at: Any = None, token: str | None = None, dry_run: bool = False, catalog: Any = None) -> Plan:
        provider = self.provider(cloud)
        settings, missing = spec.cloud_settings(cloud), ()
        if dry_run:
            settings, missing = provider.with_placeholders(settings)
        catalog = (catalog or self.catalog) if provider.machines_from_catalog else None
        plan = make_plan(spec, cloud, catalog=catalog, settings=settings, region=region or provider.region_of(settings),
                         spot=spot, created_at=created_at, token=token)
        plan = provider.adjust_plan(plan)
        provider.check(plan)
        if missing:
            from dataclasses import replace

            plan = replace(plan, missing_settings=missing)
        return plan

    def priced_backends(self, spec: Any, region: str | None = None) -> dict[str, str | None]:
        """The backends whose offers are in the catalog, each with the region to price it in."""
        from cloudtrain.providers import registry

        backends = {}
        for name, cls in registry.available().items():
            if cls.machines_from_catalog:
                backends[name] = region or cls.region_of(spec.cloud_settings(name))
        return backends

    def resume_plan(self, loaded: LoadedSpec, key: str) -> Plan:
        """The plan of a submission left PENDING (no answer to the create call, or interrupted),
        rebuilt with its original name and submission token, so that submitting it again finds the
        cloud job if the first create reached the cloud and creates it once if it did not."""
        from datetime import datetime, timezone

        record = self.store.resolve(key)
        if record.cloud == "local":
            raise UsageError(f"{record.id} is a local job; there is no submission to resume", "run it again with `cloudtrain run`")
        if record.details.get("kind") == "sweep":
            raise UsageError(f"{record.id} is a tuning job; `--resume` sends training jobs only",
                             f"`cloudtrain status {record.id}` says whether it exists; else run `cloudtrain sweep SPEC --cloud {record.cloud}` again")
        if record.state is JobState.PENDING and _submitter_gone(record.details):
            record = self.store.update(record.id, details={"resumable": True, "submitter": None},
                                       message="the submitting process ended before the job was sent (killed?)")
        if record.state is not JobState.PENDING or not record.details.get("resumable"):
            what = record.state.value if record.state is not JobState.PENDING else "PENDING but not interrupted (submitted, or still being submitted)"
            raise UsageError(f"{record.id} is {what}: only a submission that was interrupted or got no answer can be resumed",
                             f"follow it with `cloudtrain status {record.id}`")
        if loaded.spec.spec_hash() != record.spec_hash:
            raise UsageError(f"this spec differs from the one {record.id} was submitted with (its file, --set options, "
                             "cloudtrain.yaml or CLOUDTRAIN_* variables changed)",
                             "resume with the same spec and settings, or submit it as a new job")
        if record.details.get("code_sha256") not in (None, _code_fingerprint(loaded.spec)):
            raise UsageError(f"the code under {loaded.spec.code} changed since {record.id} was submitted",
                             "resuming would stage other code under the same job; submit it as a new job")
        token = record.details.get("submission_token")
        stamp = record.details.get("planned_at") or record.id[len(loaded.spec.name) + 1:len(loaded.spec.name) + 16]
        try:
            created_at = (datetime.fromisoformat(stamp) if "T" in stamp
                          else datetime.strptime(stamp, "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc))
        except ValueError:
            created_at = None
        if not token or created_at is None:
            raise UsageError(f"{record.id} does not hold its submission token and time", "submit it as a new job")
        plan = self._plan(loaded.spec, record.cloud, region=record.region, spot=record.details.get("spot"),
                          created_at=created_at, token=token, catalog=self.catalog_for(loaded))
        if plan.job_name != record.id or plan.instance_type != record.instance_type:
            raise UsageError(f"cannot rebuild the submission of {record.id}: it would now be {plan.job_name} on "
                             f"{plan.instance_type}, not {record.instance_type} (was the catalog refreshed?)",
                             "submit it as a new job")
        return plan

    def render(self, plan: Plan) -> NativeRequest:
        return self.provider(plan.cloud).render(plan)

    def submit(self, plan: Plan, *, dry_run: bool = False) -> Submission:
        provider = self.provider(plan.cloud)
        check_budget(plan.spec, plan.estimate)
        request = provider.render(plan)
        if dry_run:
            return Submission(plan, request, None)
        if plan.missing_settings:
            raise UsageError(f"this plan was made for a dry run: {', '.join(plan.missing_settings)} not set", "plan it again without dry_run")
        record = self._record(plan)
        return Submission(plan, request, self._send(record, lambda: provider.submit(plan, request),
                                                    resumable=plan.cloud != "local"))

    def submit_sweep(self, plan: Plan, sweep: Any, *, dry_run: bool = False) -> Submission:
        """Submit ``sweep`` to the backend's tuning service, over trials like ``plan``'s job; the
        tuning job is recorded (``details["kind"] == "sweep"``) and followed like a job."""
        provider = self.provider(plan.cloud)
        request = provider.render_sweep(plan, sweep)
        if dry_run:
            return Submission(plan, request, None)
        if not provider.capabilities.sweep_jobs:  # refused before anything is recorded
            raise UnsupportedFeatureError(f"submitting a sweep to {plan.cloud} is not built yet: only its request can be shown",
                                          f"`cloudtrain sweep SPEC --cloud {plan.cloud} --dry-run`; or run the sweep here (no --cloud)")
        if plan.missing_settings:
            raise UsageError(f"this plan was made for a dry run: {', '.join(plan.missing_settings)} not set", "plan it again without dry_run")
        from cloudtrain.sweeps.bounds import sweep_bound

        estimate = None
        if plan.estimate is not None:  # the sweep's bound is the record's: max_trials x the trial's
            bound = sweep_bound(sweep, plan.estimate)
            estimate = {**plan.estimate.to_dict(), "max_total_usd": bound.max_total_usd, "trials": bound.trials,
                        "trial_max_total_usd": bound.per_trial_usd}
        record = self._record(plan, job_id=provider.sweep_name(plan), kind="sweep", estimate=estimate)
        return Submission(plan, request, self._send(record, lambda: provider.submit_sweep(plan, request), resumable=False))

    def _send(self, record: JobRecord, send: Callable[[], Any], *, resumable: bool) -> JobRecord:
        """Send a recorded submission; the record says what became of it, whatever happens."""
        try:
            ref = send()
        except SubmissionUncertainError as error:  # stays PENDING: `status` asks the cloud
            self.store.update(record.id, message=error.message, details={"resumable": True})
            raise
        except CloudtrainError as error:
            self.store.update(record.id, state=JobState.FAILED, message=error.message)
            raise
        except BaseException as error:  # an interrupted submit stays PENDING: `submit --resume` retries it
            hint = f"; `cloudtrain submit SPEC --resume {record.id}` sends it again" if resumable else ""
            self.store.update(record.id, message=f"submission interrupted ({type(error).__name__}){hint}",
                              details={"resumable": resumable})
            raise
        return self.store.update(record.id, native_id=ref.native_id, region=ref.region or record.region,
                                 message=None, details={**ref.details, "resumable": False, "submitter": None})

    def _record(self, plan: Plan, job_id: str | None = None, kind: str = "job", estimate: dict[str, Any] | None = None) -> JobRecord:
        existing = self.store.find_by_token(plan.cloud, plan.submission_token)
        if existing is not None:
            return existing
        details: dict[str, Any] = {"submission_token": plan.submission_token}
        if kind != "job":
            details["kind"] = kind
        if plan.cloud != "local":  # what `submit --resume` needs to send the same submission again
            details.update(planned_at=plan.created_at.isoformat(), spot=plan.spot,
                           code_sha256=_code_fingerprint(plan.spec), submitter=_this_process())
        from cloudtrain.store import new_record

        job_id = job_id or plan.job_name
        return self.store.insert(new_record(
            job_id, plan.cloud, job_id, plan.spec.name, plan.spec.spec_hash(),
            region=plan.region, instance_type=plan.instance_type,
            estimate=estimate or (plan.estimate.to_dict() if plan.estimate else None), details=details,
        ))

    def run_local(self, plan: Plan, on_line: Callable[[str], None] | None = None) -> tuple[JobRecord, JobStatus]:
        """Run a job in the foreground (``cloudtrain run``): the backend returns when it ends."""
        provider = self.provider(plan.cloud)
        request = provider.render(plan)
        record = self._record(plan)

        def started(ref: Any) -> None:
            self.store.update(record.id, state=JobState.RUNNING, native_id=ref.native_id, details=dict(ref.details))

        try:
            ref, status = provider.run_foreground(plan, request, on_line=on_line, on_start=started)
        except CloudtrainError as error:
            self.store.update(record.id, state=JobState.FAILED, message=error.message)
            raise
        except KeyboardInterrupt:
            self.store.update(record.id, state=JobState.CANCELLED, message="interrupted before the job started")
            raise
        except OSError as error:
            self.store.update(record.id, state=JobState.FAILED, message=str(error))
            raise UsageError(f"cannot prepare the run directory: {error}", "check local.runs_dir / CLOUDTRAIN_RUNS_DIR") from None
        return self._sync(self.store.get(record.id), status), status

    # -- following --------------------------------------------------------------------------------

    def _sync(self, record: JobRecord, status: JobStatus) -> JobRecord:
        changes: dict[str, Any] = {}
        if status.state != record.state:
            changes["state"] = status.state
        if status.native_state != record.native_state:
            changes["native_state"] = status.native_state
        if status.message != record.message and (status.message or status.state.is_terminal):
            changes["message"] = status.message
        for key in ("started_at", "ended_at"):
            value = getattr(status, key)
            if value is not None and getattr(record, key) is None:
                changes[key] = value.isoformat()
        if status.model_uri and record.details.get("model_uri") != status.model_uri:
            changes["details"] = {"model_uri": status.model_uri}
        return self.store.update(record.id, **changes) if changes else record

    def status(self, key: str, *, stored_if_unreachable: bool = False) -> tuple[JobRecord, JobStatus]:
        """The job's state from its backend, recorded. A cloud job that has ended is shown from the
        store without asking the cloud; with ``stored_if_unreachable``, a cloud that cannot be
        asked gives the stored state with a note instead of an error."""
        record = self.store.resolve(key)
        if record.cloud != "local" and record.state.is_terminal:
            return record, stored_status(record)
        try:
            status = self.provider(record.cloud).status(record.ref())
        except ProviderError as error:
            if record.state is JobState.PENDING and _submitter_gone(record.details):
                sweep = record.details.get("kind") == "sweep"
                again = (f"run `cloudtrain sweep SPEC --cloud {record.cloud}` again" if sweep
                         else f"`cloudtrain submit SPEC --resume {record.id}` sends it (never twice)")
                note = f"the submission of {record.id} ended (interrupted or killed) before {record.cloud} had the job; {again}"
                record = self.store.update(record.id, message=note, details={"resumable": not sweep, "submitter": None})
                return record, stored_status(record)
            if not stored_if_unreachable:
                raise
            return record, stored_status(record, note=f"{record.cloud} could not be asked ({error.message}); "
                                                      f"this is the state stored at {record.updated_at[:19]}")
        return self._sync(record, status), status

    def logs(self, key: str, follow: bool = False) -> Iterator[str]:
        record = self.store.resolve(key)
        if record.cloud != "local" and record.state.is_terminal and record.details.get("submitter"):  # never sent
            raise UsageError(f"job {record.id} {record.state.value.lower()} before {record.cloud} had it, so it has no logs: "
                             f"{record.message or 'no reason was recorded'}",
                             f"`cloudtrain status {record.id}` shows it; fix the cause and submit again")
        return self.provider(record.cloud).logs(record.ref(), follow=follow)

    def cancel(self, key: str) -> JobRecord:
        record, status = self.status(key)
        if status.state.is_terminal:
            raise UsageError(f"job {record.id} has already ended ({status.state.value})", "nothing to cancel")
        self.provider(record.cloud).cancel(record.ref())
        record, status = self.status(record.id)
        if not status.state.is_terminal and status.state is not JobState.CANCELLING:
            record = self.store.update(record.id, state=JobState.CANCELLING)  # asked to stop; the backend takes its time
        return record

    def wait(self, key: str, *, timeout: float | None = None, poll_seconds: float = 2.0,
             on_change: Callable[[JobRecord, JobStatus], None] | None = None) -> tuple[JobRecord, JobStatus]:
        """Poll until the job ends (or ``timeout`` seconds pass: UsageError)."""
        deadline = time.monotonic() + timeout if timeout else None
        last: JobState | None = None
        while True:
            record, status = self.status(key)
            if status.state != last and on_change is not None:
                on_change(record, status)
            last = status.state
            if status.state.is_terminal:
                return record, status
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(f"job {record.id} is still {status.state.value} after {timeout:g} s (it goes on)",
                                       f"wait again, or `cloudtrain cancel {record.id}`")
            time.sleep(poll_seconds)

    def list(self, cloud: str | None = None, limit: int = 50, refresh: bool = True) -> list[JobRecord]:
        """The stored jobs, newest first; with ``refresh``, unfinished ones asked of their backend.
        Backends that could not be asked are in :attr:`unreachable` (name -> why): their rows show
        the stored state."""
        records = self.store.list(cloud=cloud, limit=limit)
        self.unreachable: dict[str, str] = {}
        if not refresh:
            return records
        out = []
        for record in records:
            if not record.state.is_terminal and record.cloud not in self.unreachable:
                try:
                    record = self._sync(record, self.provider(record.cloud).status(record.ref()))
                except CloudtrainError as error:  # unreachable, misconfigured or uninstalled: show what the store knows
                    self.unreachable[record.cloud] = error.message
            out.append(record)
        return out


def _code_fingerprint(spec: Any) -> str:
    """The fingerprint of the code a submission stages from ``code_dir`` (the bundle's files)."""
    from cloudtrain.providers.bundle import code_fingerprint

    return code_fingerprint(Path(spec.code), spec.bundle)


def stored_status(record: "JobRecord", note: str | None = None) -> JobStatus:
    """The job's status as the store last recorded it."""
    from datetime import datetime

    parse = lambda v: datetime.fromisoformat(v) if v else None  # noqa: E731
    return JobStatus(state=record.state, native_state=record.native_state or record.state.value,
                     message=note or record.message, started_at=parse(record.started_at), ended_at=parse(record.ended_at),
                     model_uri=record.details.get("model_uri"))


def _this_process() -> dict[str, Any]:
    """Who is submitting: the pid and its start time (a pid alone may be given to another process)."""
    import os

    return {"pid": os.getpid(), "started": _start_time(os.getpid())}


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]  # field 22: start time in clock ticks since boot
    except (OSError, IndexError):
        return None


def _submitter_gone(details: dict[str, Any]) -> bool:
    """True when the process that recorded this submission has ended without sending it."""
    import os

    submitter = details.get("submitter")
    if not isinstance(submitter, dict) or not submitter.get("pid"):
        return False
    pid = int(submitter["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    started = submitter.get("started")
    return started is not None and _start_time(pid) not in (None, started)
