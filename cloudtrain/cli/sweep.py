"""``cloudtrain sweep SPEC``: a hyperparameter sweep of the spec's ``sweep:`` section.

Locally, Optuna drives trials as local jobs with a live display (quiet under ``--json`` or when
stdout is not a terminal); the study is ``$CLOUDTRAIN_HOME/sweeps/<spec name>.db`` and running the
command again continues it. With ``--cloud``, the sweep is the cloud's own tuning service:
``--dry-run`` prints the request; SageMaker and Vertex tuning jobs and Azure ML sweep jobs are
submitted and recorded in the job store.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

import click

from cloudtrain.cli.common import BackendChoice, console, err_console, json_option, load, plain, print_json, runner, spec_argument


class SweepDisplay:
    def __init__(self, name: str, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(SpinnerColumn(), TextColumn(f"[bold]{plain(name)}[/]"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=err_console(), transient=True)
        self.task = self.progress.add_task("sweep", total=total, info="starting")

    def update(self, progress: Any) -> None:
        best = "-" if progress.best_value is None else f"{progress.best_value:.4g}"
        info = (f"running {progress.running}  complete {progress.complete}  pruned {progress.pruned}  "
                f"failed {progress.failed}  best {best}")
        self.progress.update(self.task, completed=progress.done, info=info)


@click.command("sweep")
@spec_argument
@click.option("--cloud", default=None, type=BackendChoice("cheapest"),
              help="Run it as this cloud's tuning service (default: here, with Optuna); 'cheapest': the cloud with the lowest bound.")
@click.option("--dry-run", is_flag=True, help="With --cloud: print the tuning request; send nothing.")
@click.option("--wait", "wait_", is_flag=True, help="With --cloud: return when the tuning job has ended.")
@click.option("--new", is_flag=True, help="Local: start a new study (the old one is kept aside in the same file).")
@click.option("--seed", type=int, default=None, help="Local: the sampler's seed.")
@json_option
def command(spec_path: str, overrides: tuple[str, ...], cloud: str | None, dry_run: bool, wait_: bool, new: bool,
            seed: int | None, as_json: bool) -> None:
    """Sweep SPEC's hyperparameters (its sweep: section), here or on a cloud's tuning service."""
    loaded = load(spec_path, overrides, check_files=cloud in (None, "local") and not dry_run)
    if cloud not in (None, "local"):
        run_on_cloud(loaded, cloud, dry_run=dry_run, wait=wait_, as_json=as_json)
        return
    if dry_run:
        from cloudtrain.errors import UsageError

        raise UsageError("--dry-run shows a cloud's tuning request", "add --cloud sagemaker, vertex or azureml")
    run_local(loaded, seed=seed, new=new, as_json=as_json)


def run_on_cloud(loaded: Any, cloud: str, *, dry_run: bool, wait: bool, as_json: bool) -> None:
    """``--cloud``: print the tuning request (``--dry-run``), or submit it and, with ``--wait``,
    follow it until it ends (the best trial is in the final status)."""
    from cloudtrain.sweeps import cloud as cloud_sweeps

    jobs = runner()
    if dry_run:
        from cloudtrain.cli.submit import code_summary, print_missing_settings
        from cloudtrain.cost import usd
        from cloudtrain.sweeps.bounds import sweep_bound

        trial, request = cloud_sweeps.rendered(loaded, cloud, jobs)
        code = code_summary(trial, quiet=as_json)
        bound = sweep_bound(loaded.spec.sweep, trial.estimate)
        if as_json:
            print_json({"cloud": request.cloud, "request": request.payload, "sweep_bound": bound.to_dict(),
                        "missing_settings": list(trial.missing_settings), "code": code})
            return
        notes = err_console()
        if cloud == "cheapest":
            notes.print(f"cheapest: {request.cloud}", highlight=False)
        console().print(request.to_text(), markup=False, highlight=False, soft_wrap=True)
        total = ("no upper bound" if bound.per_trial_usd is None
                 else f"at most {usd(bound.per_trial_usd * bound.trials)}")
        notes.print(f"sweep on {bound.cloud} {bound.instance_type}: {total} ({bound.trials} trials; dry run, nothing was sent)",
                    highlight=False)
        print_missing_settings(trial)
        return
    record = cloud_sweeps.submit(loaded, cloud, jobs).record
    if not wait:
        if as_json:
            print_json(record.to_dict())
        else:
            console().print(f"submitted the tuning job {plain(record.id)} to {record.cloud}; follow it with "
                            f"`cloudtrain status {plain(record.id)}`, `cloudtrain logs {plain(record.id)} --follow`", highlight=False)
        return
    import time

    started, notes = time.monotonic(), err_console()

    def changed(record: Any, status: Any) -> None:
        if not as_json:
            notes.print(f"{plain(record.id)}: {status.state.value} after {time.monotonic() - started:.0f} s"
                        + (f"  {plain(status.message)}" if status.message else ""), highlight=False)

    try:
        record, status = jobs.wait(record.id, poll_seconds=2.0, on_change=changed)
    except KeyboardInterrupt:
        notes.print(f"stopped waiting: the tuning job {plain(record.id)} goes on; stop it with `cloudtrain cancel {plain(record.id)}`",
                    highlight=False)
        sys.exit(130)
    if as_json:
        print_json({**record.to_dict(), "message": status.message, "model_uri": status.model_uri})
    else:
        console().print(f"{plain(record.id)}: {status.state.value}  {plain(status.message or '')}"
                        + (f"\nbest trial's model: {plain(status.model_uri)}" if status.model_uri else ""), highlight=False)
    if status.state.value != "SUCCEEDED":
        sys.exit(130 if status.state.value == "CANCELLED" else 1)


def run_local(loaded: Any, *, seed: int | None, new: bool, as_json: bool) -> None:
    from cloudtrain.sweeps.local import LocalSweep, plan_check
    from cloudtrain.sweeps.report import result, write_figure

    the_runner = runner()
    plan_check(loaded, the_runner)
    sweep = LocalSweep(loaded, the_runner, seed=seed, new=new)
    live = not as_json and sys.stdout.isatty()
    previous = signal.signal(signal.SIGTERM, _terminated)  # a SIGTERM stops the sweep as Ctrl-C does: its trials too
    try:
        if live:
            display = SweepDisplay(sweep.name, sweep.sweep.max_trials)
            with display.progress:
                final = sweep.run(on_progress=display.update)
        elif as_json:
            final = sweep.run()
        else:  # not a terminal (a log, CI): a line as each trial ends, to stderr
            final = sweep.run(on_trial_end=_trial_line)
    except KeyboardInterrupt as stop:  # the running trials' jobs were cancelled; they will run again
        progress = sweep.progress()
        err_console().print(f"the sweep {plain(sweep.name)} stopped ({'SIGTERM' if isinstance(stop, Terminated) else 'interrupted'}) "
                            f"with {progress.done} of {sweep.sweep.max_trials} trials ended; the trials that were running were "
                            f"cancelled. Run the same command to continue it: it runs their values again first (the study: "
                            f"{plain(sweep.path)}).",
                            highlight=False)
        sys.exit(143 if isinstance(stop, Terminated) else 130)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)  # None: not set from Python
    figure, notes = write_figure(sweep.study, sweep.path.with_suffix(".png"))
    data = result(sweep.study, sweep.path, figure, notes)
    if final.note:
        data["note"] = final.note
    if as_json:
        print_json(data)
    else:
        show_result(data, sweep.sweep)
    if data["best"] is None:
        sys.exit(1)


def _trial_line(trial: Any, progress: Any) -> None:
    value = "" if trial.value is None else f" {trial.value:.6g}"
    params = ", ".join(f"{name}={_short(given)}" for name, given in trial.params.items())
    best = "" if progress.best_value is None else f"; best so far {progress.best_value:.6g}"
    err_console().print(f"trial {trial.number} {trial.state.name}{value} ({plain(params)}); {progress.done} of {progress.total} "
                        f"ended{best}", highlight=False, soft_wrap=True)


class Terminated(KeyboardInterrupt):
    """A SIGTERM while a local sweep runs."""


def _terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def show_result(data: dict[str, Any], sweep: Any) -> None:
    from rich import box
    from rich.table import Table

    out = console()
    names = list(sweep.parameters)
    table = Table(title=f"sweep {data['study']}: {sweep.objective.metric} ({sweep.objective.goal})", title_justify="left",
                  box=box.SIMPLE_HEAD, header_style="bold")
    for column in ["#", "state", "value", *names, "job"]:
        table.add_column(column, justify="right" if column in ("#", "value") else "left")
    best_number = data["best"]["number"] if data["best"] else None
    for row in data["trials"]:
        value = "-" if row["value"] is None else f"{row['value']:.4g}"
        state = row["state"] + (" (interrupted)" if row["interrupted"] else "") + (
            f" (rerun of {row['rerun_of']})" if row.get("rerun_of") is not None else "")
        mark = " *" if row["number"] == best_number else ""
        table.add_row(f"{row['number']}{mark}", state, value, *[plain(_short(row["params"].get(n))) for n in names],
                      plain(row["job_id"] or "-"))
    out.print(table)
    for row in data["trials"]:
        if row.get("reason") and not row["interrupted"]:
            out.print(f"trial {row['number']} failed: {plain(row['reason'])}", highlight=False)
    if data["best"]:
        params = ", ".join(f"{k}={_short(v)}" for k, v in data["best"]["params"].items())
        out.print(f"best: {sweep.objective.metric} = {data['best']['value']:.6g} with {plain(params)} (trial {best_number})")
    notes = err_console()
    from cloudtrain.sweeps.space import grid_size

    ended = sum(not row["interrupted"] for row in data["trials"])
    target = min(sweep.max_trials, grid_size(sweep)) if sweep.algorithm == "grid" else sweep.max_trials
    more = ("the note below says how to go on" if data.get("note") else "run the same command again to continue it"
            if ended < target else "it has ended; --new starts a new study")
    notes.print(f"study: {plain(data['storage'])} (study name {plain(data['study'])}); {more}")
    if data["figure"]:
        notes.print(f"figure: {plain(data['figure'])}")
    for note in data["figure_notes"] + ([data["note"]] if data.get("note") else []):
        notes.print(f"note: {plain(note)}")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
