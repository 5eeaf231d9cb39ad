"""``cloudtrain wait JOB``."""

from __future__ import annotations

import sys

import click

from cloudtrain.cli.common import err_console, json_option, plain, print_json, runner, status_dict, styled_state


@click.command("wait")
@click.argument("job")
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds (exit 124; the job goes on).")
@click.option("--poll", "poll_seconds", type=click.FloatRange(0.05), default=2.0, show_default=True, help="Seconds between checks.")
@json_option
def command(job: str, timeout: float | None, poll_seconds: float, as_json: bool) -> None:
    """Wait until JOB ends. Exit 0 if it succeeded, 1 if it failed, 130 if it was cancelled."""
    out = err_console()

    def changed(record, status) -> None:  # type: ignore[no-untyped-def]
        if not as_json:
            out.print(f"{plain(record.id)}: {styled_state(status.state.value)}" + (f"  {plain(status.message)}" if status.message else ""))

    from cloudtrain.api import Run

    run = Run(job, runner()).wait(timeout=timeout, poll_seconds=poll_seconds, on_change=changed)
    record, status = run.record, run.last_status
    if as_json:
        print_json(status_dict(record, status))
    if status.state.value != "SUCCEEDED":
        sys.exit(130 if status.state.value == "CANCELLED" else 1)
