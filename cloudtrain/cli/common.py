"""Options and output helpers shared by the verbs."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

import click


def _width(stream: Any) -> int | None:
    """Terminals get their own width; pipes and files get a wide one so tables are not cut."""
    import os

    if stream.isatty():
        return None
    return int(os.environ.get("COLUMNS", 200))


def console() -> Any:
    from rich.console import Console

    return Console(highlight=False, width=_width(sys.stdout))


def err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, width=_width(sys.stderr))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


class BackendChoice(click.ParamType):
    """A backend name from the registry (built-ins and installed plugins), plus ``extra`` words
    such as ``cheapest``; the names are read only when an option is used or help is shown."""

    name = "backend"

    def __init__(self, *extra: str, priced_only: bool = False) -> None:
        self.extra, self.priced_only = extra, priced_only

    def choices(self) -> list[str]:
        from cloudtrain.providers import registry

        if self.priced_only:
            names = [name for name, cls in registry.available().items() if cls.machines_from_catalog]
        else:
            names = registry.names()
        return [*names, *self.extra]

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(self.choices()) + "]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        choices = self.choices()
        if value in choices:
            return value
        import difflib

        close = difflib.get_close_matches(str(value), choices, n=1)
        self.fail(f"{value!r} is not a backend{f'; did you mean {close[0]!r}?' if close else ''} "
                  f"(choose from {', '.join(choices)})", param, ctx)


def spec_argument(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
                        help="Override a spec field, e.g. --set resources.nodes=2 (repeatable).")(func)
    return click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))(func)


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(func)


def load(spec_path: str, overrides: tuple[str, ...], check_files: bool = True) -> Any:
    from cloudtrain.specfile import load_spec

    return load_spec(spec_path, overrides, check_files=check_files)


def runner() -> Any:
    from cloudtrain.runner import Runner

    return Runner()


STATE_STYLE = {
    "PENDING": "yellow", "RUNNING": "cyan", "SUCCEEDED": "green", "FAILED": "red",
    "CANCELLING": "magenta", "CANCELLED": "magenta",
}


def plain(text: object) -> str:
    """User or job text made safe for rich markup (``[`` is literal)."""
    from rich.markup import escape

    return escape(str(text))


def styled_state(state: str) -> str:
    return f"[{STATE_STYLE.get(state, 'white')}]{state}[/]"


def status_dict(record: Any, status: Any | None = None) -> dict[str, Any]:
    data = record.to_dict()
    if status is not None:
        data["model_uri"] = status.model_uri
        data["exit_code"] = status.exit_code
    return data
