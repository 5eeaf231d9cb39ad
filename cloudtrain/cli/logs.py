"""``cloudtrain logs JOB [--follow]``."""

from __future__ import annotations

import sys

import click

from cloudtrain.cli.common import runner


@click.command("logs")
@click.argument("job")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the job ends.")
def command(job: str, follow: bool) -> None:
    """Print JOB's log lines."""
    from cloudtrain.api import Run

    for line in Run(job, runner()).logs(follow=follow):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
