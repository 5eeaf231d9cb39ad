"""``cloudtrain submit SPEC --cloud C``: submit a job, or show its exact request with ``--dry-run``."""

from __future__ import annotations

import sys

import click

from cloudtrain.cli.common import (BackendChoice, console, err_console, json_option, load, plain, print_json, runner, spec_argument,
                                   styled_state)


@click.command("submit")
@spec_argument
@click.option("--cloud", type=BackendChoice("cheapest"),
              help="Where to run (required unless --resume); 'cheapest' picks the cloud with the lowest upper-bound cost.")
@click.option("--resume", "resume", metavar="JOB", default=None,
              help="Send again a submission left PENDING (no answer to the create call, or interrupted), "
                   "with its original name and token: the cloud job is created once at most.")
@click.option("--region", default=None, help="Region (location) to run in; the configured one otherwise.")
@click.option("--spot/--no-spot", default=None, help="Override the spec's spot setting.")
@click.option("--dry-run", is_flag=True, help="Print the exact native request and the estimate; touch nothing.")
@click.option("--wait", "wait_", is_flag=True, help="Stream the job's logs until it ends; exit non-zero unless it succeeded.")
@json_option
def command(spec_path: str, overrides: tuple[str, ...], cloud: str | None, resume: str | None, region: str | None,
            spot: bool | None, dry_run: bool, wait_: bool, as_json: bool) -> None:
    """Submit SPEC to a cloud. Unsupported features and an exceeded budget.max_usd are refused
    before anything is staged or created."""
    if resume is None and cloud is None:
        raise click.UsageError("Missing option '--cloud'.")
    if resume is not None and (cloud is not None or region is not None or spot is not None):
        raise click.UsageError("--resume takes the cloud, region and spot setting of the job it resumes; "
                               "leave out --cloud, --region and --spot/--no-spot.")
    from cloudtrain.api import Job

    jobs = runner()
    job = Job.from_loaded(load(spec_path, overrides), runner=jobs)
    plan = job.resume_plan(resume) if resume else job.plan(cloud, region=region, spot=spot, dry_run=dry_run)
    estimate = plan.estimate.to_dict() if plan.estimate else None
    code = code_summary(plan, quiet=as_json)
    if dry_run:
        request = job.dry_run(plan)
        if as_json:
            print_json({"cloud": plan.cloud, "request": request.payload, "estimate": estimate,
                        "missing_settings": list(plan.missing_settings), "code": code})
        else:
            out = console()
            out.print(f"[bold]{plan.cloud}[/] request for {plan.job_name} (dry run, nothing was sent):", highlight=False)
            out.print(request.to_text(), markup=False, highlight=False, soft_wrap=True)
            _print_estimate(plan)
            print_missing_settings(plan)
        return
    from cloudtrain import progress

    notes = err_console()
    previous = progress.set_reporter(progress.rich_reporter(notes) if notes.is_terminal and not as_json else None)
    try:  # uploads show a bar with bytes and rate on a terminal
        run = job.submit(plan)
    finally:
        progress.set_reporter(previous)
    record = run.record
    if not wait_:
        if as_json:
            print_json(record.to_dict())
        else:
            console().print(f"submitted {record.id} to {record.cloud} ({styled_state(record.state.value)}); "
                            f"follow it with `cloudtrain logs {record.id} --follow`")
            _print_estimate(plan)
        return
    import time

    started = time.monotonic()

    def changed(record, status) -> None:  # type: ignore[no-untyped-def]
        if not as_json and notes.is_terminal:  # the job's state changes, with the time since the submit
            notes.print(f"{plain(record.id)}: {styled_state(status.state.value)} after {time.monotonic() - started:.0f} s",
                        highlight=False)

    try:
        if not as_json:
            notes.print(f"submitted {record.id} to {record.cloud}; streaming its logs", highlight=False)
            for line in run.logs(follow=True):
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        run.wait(poll_seconds=1.0, on_change=changed)
    except KeyboardInterrupt:
        err_console().print(f"stopped waiting: {plain(record.id)} is still running on {record.cloud}; follow it with "
                            f"`cloudtrain logs {plain(record.id)} --follow`, stop it with `cloudtrain cancel {plain(record.id)}`",
                            soft_wrap=True, highlight=False)
        sys.exit(130)
    record, status = run.record, run.last_status
    if as_json:
        print_json({**record.to_dict(), "model_uri": status.model_uri})
    else:
        console().print(f"{plain(record.id)}: {styled_state(status.state.value)}" + (f"  {plain(status.message)}" if status.message else "")
                        + (f"\nmodel: {plain(status.model_uri)}" if status.model_uri else ""))
    if status.state.value != "SUCCEEDED":
        sys.exit(130 if status.state.value == "CANCELLED" else 1)


def _print_estimate(plan) -> None:  # type: ignore[no-untyped-def]
    estimate = plan.estimate
    if estimate is None:
        return
    if not estimate.priced:
        console().print(f"{estimate.nodes} x {estimate.instance_type} in {estimate.region}: no sourced price "
                        "(`cloudtrain prices import FILE` gives yours)", highlight=False)
        return
    bound = f", at most ${estimate.max_total_usd:,.2f}" if estimate.max_total_usd is not None else " (no max_runtime: no upper bound)"
    kind = "spot" if estimate.spot else "on-demand"
    console().print(f"{estimate.nodes} x {estimate.instance_type} in {estimate.region}: "
                    f"${estimate.effective_usd_per_hour:,.2f}/h {kind}{bound}", highlight=False)


def print_missing_settings(plan) -> None:  # type: ignore[no-untyped-def]
    """A dry run's note of the cloud settings it showed as placeholders."""
    if plan.missing_settings:
        names = ", ".join(plan.missing_settings)
        variables = ", ".join("CLOUDTRAIN_" + n.replace(".", "_").upper() for n in plan.missing_settings)
        err_console().print(f"[yellow]note:[/] not set yet, shown as SET-... placeholders: {plain(names)}; a real "
                            f"submit needs them (in the spec, cloudtrain.yaml, or {plain(variables)})", soft_wrap=True)


def code_summary(plan, quiet: bool) -> dict | None:  # type: ignore[no-untyped-def,type-arg]
    """What of the code directory is staged (one walk, reused by the upload), and what is left out."""
    if plan.cloud == "local":
        return None
    import warnings
    from pathlib import Path

    from cloudtrain.providers.bundle import BundleWarning, check_size, select_code

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BundleWarning)
        selection = select_code(Path(plan.spec.code), plan.spec.bundle, reuse=True)
    total = check_size(selection, plan.spec.bundle.max_mib)
    if not quiet:
        notes = err_console()
        notes.print(f"code: {len(selection.files)} files, {total / 2 ** 20:.1f} MiB from {plain(plan.spec.code)}", highlight=False)
        for path, reason in selection.skipped.items():
            notes.print(f"  left out {plain(path)}: {plain(reason)}", highlight=False)
    return {"files": len(selection.files), "bytes": total, "skipped": dict(selection.skipped)}
