"""``cloudtrain run SPEC``: run a job here through the local executor, with a live display."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from cloudtrain.cli.common import console, err_console, json_option, load, plain, print_json, runner, spec_argument, styled_state


class LiveDisplay:
    """Log lines scroll above a status line with the elapsed time and the latest metrics."""

    def __init__(self, job_id: str) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from cloudtrain.runtime.context import METRIC_PATTERN

        import re

        self.metric = re.compile(METRIC_PATTERN)
        self.latest: dict[str, str] = {}
        self.progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.fields[job]}[/]"), TimeElapsedColumn(),
                                 TextColumn("{task.fields[metrics]}"), console=err_console(), transient=True)
        self.task = self.progress.add_task("run", job=job_id, metrics="starting", total=None)

    def on_line(self, line: str) -> None:
        match = self.metric.search(line)
        if match:
            self.latest[match["name"]] = match["value"]
            shown = "  ".join(f"{k}={v}" for k, v in list(self.latest.items())[-4:])
            self.progress.update(self.task, metrics=shown)
        self.progress.console.print(line, markup=False, highlight=False, soft_wrap=True)


@click.command("run")
@spec_argument
@json_option
@click.option("--quiet", "-q", is_flag=True, help="Do not stream the job's output.")
def command(spec_path: str, overrides: tuple[str, ...], as_json: bool, quiet: bool) -> None:
    """Run SPEC on this machine, streaming its output; Ctrl-C cancels it cleanly.

    The run directory (logs, metrics, model, checkpoints, resolved spec) is
    .cloudtrain/runs/<job-id>/ under the job's code directory unless configured.
    """
    from cloudtrain.api import Job

    job = Job.from_loaded(load(spec_path, overrides), runner=runner())
    started = time.monotonic()
    if as_json or quiet:
        echo = None if quiet else (lambda line: print(line, file=sys.stderr, flush=True))
        run = job.run(on_line=echo)
    else:
        display = LiveDisplay(job.spec.name)
        with display.progress:
            run = job.run(on_line=display.on_line)
    elapsed = time.monotonic() - started
    status, record = run.status(), run.record
    run_dir = Path(record.details["run_dir"])
    metrics = run.metrics
    model_dir = run_dir / "model"
    result: dict[str, Any] = {
        "job_id": record.id, "state": status.state.value, "exit_code": status.exit_code, "message": status.message,
        "duration_seconds": round(elapsed, 3), "run_dir": str(run_dir),
        "model_dir": str(model_dir) if status.model_uri else None, "metrics": metrics,
    }
    if as_json:
        print_json(result)
    else:
        show_summary(result)
    if status.state.value != "SUCCEEDED":
        sys.exit(130 if status.state.value == "CANCELLED" else 1)


def show_summary(result: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("job", plain(result["job_id"]))
    table.add_row("state", styled_state(result["state"]) + (f"  {plain(result['message'])}" if result["message"] else ""))
    table.add_row("duration", f"{result['duration_seconds']:.1f} s")
    for name, value in sorted(result["metrics"].items()):
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        table.add_row(name, shown)
    table.add_row("run dir", plain(result["run_dir"]))
    if result["model_dir"]:
        table.add_row("model", plain(result["model_dir"]))
    out.print(table)
