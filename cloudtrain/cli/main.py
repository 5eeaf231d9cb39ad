"""The ``cloudtrain`` command: a click group whose verbs live in one small module each and are
imported only when used, so ``cloudtrain --help`` starts fast.

Errors a user can cause are :class:`~cloudtrain.errors.CloudtrainError`: printed as a message and a
hint, no traceback, with the error's exit code (2 bad input, 3 cloud/environment, 4 over budget).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

# verb -> (module in cloudtrain.cli, one-line help shown by --help without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "Run a job on this machine through the local executor."),
    "validate": ("validate", "Check a job spec (fields, files) without running it."),
    "schema": ("schema", "Print the JSON Schema of job specs (for editors)."),
    "estimate": ("estimate", "Show what a job costs per hour and at most, on every cloud."),
    "catalog": ("catalog", "List instance offers and prices."),
    "submit": ("submit", "Submit a job to a cloud (or --cloud local), or show the request with --dry-run."),
    "list": ("list_jobs", "List recorded jobs."),
    "status": ("status", "Show a job's state."),
    "logs": ("logs", "Print a job's logs (--follow to stream until it ends)."),
    "cancel": ("cancel", "Cancel a running job."),
    "wait": ("wait", "Wait until a job ends; exit non-zero unless it succeeded."),
    "prices": ("prices", "Manage the price catalog (prices refresh)."),
    "emulator": ("emulator", "Start a local emulator of a cloud."),
    "init": ("init", "Write a cloud's config section from its infra/ template's outputs."),
    "doctor": ("doctor", "Check a cloud's set-up: config, credentials, bucket, role, quotas."),
    "sweep": ("sweep", "Run a hyperparameter sweep of a spec here, or on a cloud's tuning service (--cloud)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"cloudtrain.cli.{COMMANDS[name][0]}")
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cloudtrain", message="cloudtrain %(version)s")
def cli() -> None:
    """Train models on managed clouds from one provider-neutral job spec.

    \b
    cloudtrain run job.yaml                       run it here, offline
    cloudtrain estimate job.yaml                  what it costs on every cloud
    cloudtrain submit job.yaml --cloud sagemaker  run it on a cloud (--dry-run shows the request)
    cloudtrain list | status | logs | cancel | wait JOB
    """


def print_error(error: Any) -> None:
    from cloudtrain.cli.common import err_console

    from rich.markup import escape

    console = err_console()
    console.print(f"[bold red]error:[/] {escape(error.message)}", highlight=False, markup=True, soft_wrap=True)
    if getattr(error, "hint", None):
        console.print(f"[yellow]hint:[/] {escape(error.hint)}", highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    from cloudtrain.errors import CloudtrainError

    try:
        code = cli.main(args=argv, prog_name="cloudtrain", standalone_mode=False)
    except CloudtrainError as error:
        print_error(error)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(2 if isinstance(error, click.UsageError) else error.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as error:  # a bug in cloudtrain, not the user's input
        import os

        if os.environ.get("CLOUDTRAIN_DEBUG"):
            raise
        click.echo(f"internal error: {type(error).__name__}: {error}\nThis is a bug in cloudtrain; run again with "
                   "CLOUDTRAIN_DEBUG=1 for the traceback and report it.", err=True)
        sys.exit(70)
    sys.exit(code if isinstance(code, int) else 0)
