"""``cloudtrain cancel JOB``."""

from __future__ import annotations

import click

from cloudtrain.cli.common import console, json_option, plain, print_json, runner, styled_state


@click.command("cancel")
@click.argument("job")
@json_option
def command(job: str, as_json: bool) -> None:
    """Ask JOB's backend to stop it; `cloudtrain wait JOB` waits until it has."""
    from cloudtrain.api import Run

    record = Run(job, runner()).cancel().record
    if as_json:
        print_json(record.to_dict())
    else:
        console().print(f"{plain(record.id)}: {styled_state(record.state.value)}")
