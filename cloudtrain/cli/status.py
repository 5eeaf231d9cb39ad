"""``cloudtrain status JOB``."""

from __future__ import annotations

import click

from cloudtrain.cli.common import console, json_option, plain, print_json, runner, status_dict, styled_state


@click.command("status")
@click.argument("job")
@json_option
def command(job: str, as_json: bool) -> None:
    """Show JOB's state (JOB: an id, the start of one, or a job name for its latest run)."""
    from cloudtrain.api import Run

    run = Run(job, runner())
    status = run.status(stored_if_unreachable=True)
    record = run.record
    if as_json:
        print_json(status_dict(record, status))
        return
    from rich.table import Table

    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_row("job", plain(record.id))
    table.add_row("cloud", record.cloud + (f" ({record.region})" if record.region else ""))
    native = f" ({status.native_state})" if status.native_state and status.native_state != status.state.value else ""
    table.add_row("state", styled_state(status.state.value) + native)
    if status.message:
        table.add_row("message", plain(status.message))
    if record.instance_type:
        table.add_row("instance", record.instance_type)
    table.add_row("created", record.created_at)
    if record.started_at:
        table.add_row("started", record.started_at)
    if record.ended_at:
        table.add_row("ended", record.ended_at)
    if status.model_uri:
        table.add_row("model", status.model_uri)
    console().print(table)
