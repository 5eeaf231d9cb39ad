"""``cloudtrain validate SPEC``: check a spec's fields and files without running anything."""

from __future__ import annotations

import click

from cloudtrain.cli.common import console, json_option, load, plain, print_json, spec_argument


@click.command("validate")
@spec_argument
@json_option
def command(spec_path: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Check SPEC: every field, and that the code directory, entrypoint and local inputs exist."""
    from cloudtrain.errors import SpecError

    try:
        loaded = load(spec_path, overrides)
    except SpecError as error:
        if not as_json:
            raise
        print_json({"valid": False, "error": error.message, "hint": error.hint})
        raise SystemExit(2) from None
    spec = loaded.spec
    if as_json:
        print_json({"valid": True, "spec": spec.model_dump(mode="json")})
        return
    if spec.command is not None:
        what = f"command {plain(spec.command)}"
    elif spec.entrypoint or spec.module:
        what = f"entrypoint {plain(spec.entrypoint)}" if spec.entrypoint else f"module {plain(spec.module)}"
    else:
        what = "the image's own entrypoint"
    accel = f", {spec.resources.accelerator} per node" if spec.resources.accelerator else ""
    console().print(f"[green]valid[/]: {spec.name} ({what} in {spec.code}, {spec.resources.nodes} node(s){accel})", soft_wrap=True)
