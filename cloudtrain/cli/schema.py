"""``cloudtrain schema``: the JSON Schema of job specs."""

from __future__ import annotations

import click

from cloudtrain.cli.common import print_json


@click.command("schema")
def command() -> None:
    """Print the JSON Schema of job specs.

    \b
    Point your editor at it, e.g. for the YAML language server, on a job file's first line:
    # yaml-language-server: $schema=./cloudtrain.schema.json
    """
    from cloudtrain.sections import spec_model
    from cloudtrain.spec import json_schema

    print_json(json_schema(spec_model()))
