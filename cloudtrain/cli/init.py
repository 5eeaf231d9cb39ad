"""``cloudtrain init --cloud C --from-stack-outputs FILE``: write a cloud's section of the user config
from the outputs of the templates in ``infra/``.

FILE (``-`` for standard input) is what the deployment tool prints, in any of these forms:

- CloudFormation: ``aws cloudformation describe-stacks --stack-name NAME`` (``{"Stacks": [{"Outputs":
  [{"OutputKey", "OutputValue"}]}]}``), or just its ``Outputs`` list;
- ARM: ``az deployment group show -g RG -n NAME`` or ``az deployment group create ...``
  (``{"properties": {"outputs": {NAME: {"type", "value"}}}}``), or just the ``outputs`` object;
- Terraform: ``terraform output -json`` (``{NAME: {"sensitive", "type", "value"}}``);
- a flat ``{NAME: value}`` object.

Each cloud's template names its outputs after the settings they fill (:data:`OUTPUTS`). The section
is validated with the backend's own settings model before anything is written; the other sections
and the section's other keys (``azureml.experiment``...) are kept. Decisions: the target is the user
config (``~/.config/cloudtrain/config.yaml``, or ``--config PATH``), written atomically; comments in
an existing file are not kept (PyYAML does not read them), which the command says when it drops any.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from cloudtrain.errors import SpecError

#: cloud -> {template output name: settings key}; output names are matched without regard to case
OUTPUTS: dict[str, dict[str, str]] = {
    "sagemaker": {"RoleArn": "role_arn", "BucketName": "bucket", "Prefix": "prefix", "Region": "region"},
    "azureml": {"subscriptionId": "subscription_id", "resourceGroup": "resource_group", "workspace": "workspace",
                "compute": "compute", "region": "region"},
    "vertex": {"project": "project", "location": "location", "staging_bucket": "staging_bucket",
               "service_account": "service_account"},
}
#: settings a submission cannot do without, per cloud
REQUIRED: dict[str, tuple[str, ...]] = {
    "sagemaker": ("role_arn", "bucket"),
    "azureml": ("subscription_id", "resource_group", "workspace"),
    "vertex": ("project", "staging_bucket"),
}
TEMPLATES = {"sagemaker": "infra/aws (aws cloudformation describe-stacks --stack-name NAME > outputs.json)",
             "azureml": "infra/azure (az deployment group show -g RG -n NAME > outputs.json)",
             "vertex": "infra/gcp (terraform output -json > outputs.json)"}


def read_outputs(text: str, source: str) -> dict[str, str]:
    """Output name -> value from any of the forms in the module docstring."""
    try:
        data = json.loads(text)
    except ValueError as error:
        raise SpecError(f"{source}: not JSON: {error}", "give the JSON the deployment tool prints (see cloudtrain init --help)") from None
    if isinstance(data, dict) and isinstance(data.get("Stacks"), list):
        stacks = [s for s in data["Stacks"] if isinstance(s, dict) and s.get("Outputs")]
        if len(stacks) != 1:
            raise SpecError(f"{source}: {len(stacks)} stacks with outputs; expected one",
                            "describe one stack: aws cloudformation describe-stacks --stack-name NAME")
        data = stacks[0]["Outputs"]
    if isinstance(data, dict) and isinstance(data.get("properties"), dict) and "outputs" in data["properties"]:
        data = data["properties"]["outputs"] or {}
    if isinstance(data, list):  # CloudFormation Outputs
        if not all(isinstance(o, dict) and "OutputKey" in o for o in data):
            raise SpecError(f"{source}: a list, but not of CloudFormation outputs (OutputKey, OutputValue)", None)
        return {str(o["OutputKey"]): str(o.get("OutputValue", "")) for o in data}
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected stack or deployment outputs, got {type(data).__name__}", None)
    outputs: dict[str, str] = {}
    for name, value in data.items():
        if isinstance(value, dict) and "value" in value:  # ARM and Terraform: {"type", "value"}
            value = value["value"]
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            outputs[str(name)] = str(value)
    return outputs


def section_from_outputs(cloud: str, outputs: dict[str, str], source: str) -> dict[str, str]:
    by_lower = {name.lower(): value for name, value in outputs.items()}
    section = {key: by_lower[name.lower()] for name, key in OUTPUTS[cloud].items() if by_lower.get(name.lower())}
    missing = [name for name, key in OUTPUTS[cloud].items() if key in REQUIRED[cloud] and key not in section]
    if missing:
        raise SpecError(f"{source}: no output {', '.join(missing)} for {cloud} (outputs found: {', '.join(sorted(outputs)) or 'none'})",
                        f"give the outputs of the template in {TEMPLATES[cloud]}")
    return section


def validate_section(cloud: str, section: dict[str, Any]) -> None:
    from pydantic import ValidationError

    from cloudtrain.providers import registry

    try:
        registry.provider_class(cloud).settings_model.model_validate(section)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise SpecError(f"the {cloud} settings from the outputs are not valid: {problems}", "check the template outputs") from None


def write_section(path: Path, cloud: str, section: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Merge ``section`` into ``cloud``'s section of the config at ``path``; (the new section, comments dropped)."""
    import os
    import tempfile

    import yaml

    data: dict[str, Any] = {}
    text = ""
    if path.is_file():
        from cloudtrain.specfile import _read_config

        _read_config(path)  # refuses a file that is not a valid config rather than overwrite it
        text = path.read_text()
        data = yaml.safe_load(text) or {}
    merged = {**(data.get(cloud) or {}), **section}
    data[cloud] = merged
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".yaml")
    try:
        with os.fdopen(handle, "w") as stream:
            yaml.safe_dump(data, stream, sort_keys=False, default_flow_style=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return merged, any(line.lstrip().startswith("#") for line in text.splitlines())


@click.command("init")
@click.option("--cloud", required=True, type=click.Choice(sorted(OUTPUTS)), help="The cloud whose section to write.")
@click.option("--from-stack-outputs", "outputs_file", required=True, metavar="FILE",
              help="The template's outputs: describe-stacks JSON, ARM deployment outputs or `terraform output -json` (- for stdin).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Config file to write (default: the user config, ~/.config/cloudtrain/config.yaml).")
def command(cloud: str, outputs_file: str, config_path: str | None) -> None:
    """Write the CLOUD section of the user config from the outputs of its template in infra/."""
    from cloudtrain.cli.common import console
    from cloudtrain.specfile import user_config_path

    if outputs_file == "-":
        text, source = sys.stdin.read(), "<stdin>"
    else:
        try:
            text, source = Path(outputs_file).read_text(), outputs_file
        except OSError as error:
            raise SpecError(f"cannot read {outputs_file}: {error.strerror}", f"save the outputs first: {TEMPLATES[cloud]}") from None
    section = section_from_outputs(cloud, read_outputs(text, source), source)
    validate_section(cloud, section)
    path = Path(config_path) if config_path else user_config_path()
    merged, dropped_comments = write_section(path, cloud, section)
    out = console()
    out.print(f"wrote the {cloud} section of {path}:", soft_wrap=True)
    for key, value in merged.items():
        out.print(f"  {cloud}.{key}: {value}", soft_wrap=True)
    if dropped_comments:
        out.print("[yellow]note[/]: the comments that file held were not kept", soft_wrap=True)
    out.print(f"next: cloudtrain doctor --cloud {cloud}", soft_wrap=True)
