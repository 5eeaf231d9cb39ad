"""``cloudtrain list``: the jobs in the store, newest first."""

from __future__ import annotations

import click

from cloudtrain.cli.common import BackendChoice, console, json_option, plain, print_json, runner, styled_state


@click.command("list")
@click.option("--cloud", type=BackendChoice(), default=None, help="Only jobs on this backend.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@click.option("--no-refresh", is_flag=True, help="Show what the store knows without asking the backends.")
@json_option
def command(cloud: str | None, limit: int, no_refresh: bool, as_json: bool) -> None:
    """List recorded jobs; states of unfinished jobs are refreshed from their backend."""
    from cloudtrain.api import runs

    jobs = runner()
    records = [run.record for run in runs(cloud=cloud, limit=limit, refresh=not no_refresh, runner=jobs)]
    from cloudtrain.cli.common import err_console

    for name, why in getattr(jobs, "unreachable", {}).items():
        err_console().print(f"note: {plain(name)} could not be asked ({plain(why)}); its unfinished jobs show their stored state",
                            soft_wrap=True)
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    from rich.table import Table

    table = Table("job", "cloud", "state", "instance", "created", "est. max $", box=None, header_style="bold")
    for r in records:
        total = (r.estimate or {}).get("max_total_usd")
        table.add_row(plain(r.id), r.cloud, styled_state(r.state.value), r.instance_type or "-", r.created_at.replace("T", " ")[:19],
                      f"{total:,.2f}" if total is not None else "-")
    out = console()
    if records:
        out.print(table)
    else:
        out.print("no jobs yet: start one with `cloudtrain run SPEC` or `cloudtrain submit SPEC --cloud C`")
