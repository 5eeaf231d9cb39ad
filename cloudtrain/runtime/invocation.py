"""How a job's command line is made, the same on every backend: hyperparameters as flags, and
``${{...}}`` placeholders resolved to the paths and values of the place the job runs. Stdlib only.

Hyperparameters as flags (unless the spec says ``hyperparameters_as_args: false``): each one is
appended to the entrypoint's arguments as ``--name value``, after the spec's own ``args``, in the
spec's order, the way SageMaker's training toolkit passes them and argparse scripts expect:

- numbers and strings: ``--lr 0.01``, ``--optimizer adam``;
- booleans: ``--shuffle true`` / ``--shuffle false`` (read them with a ``type=`` that accepts
  true/false; cloudtrain never drops a false flag, so the script sees the value either way);
- lists: ``--layers 64 128 256`` (``nargs="+"``); an empty list gives the bare flag.

Placeholders, in ``args`` and ``command`` (Azure ML's syntax): ``${{inputs.NAME}}``,
``${{outputs.NAME}}``, ``${{hyperparameters.NAME}}``, ``${{model_dir}}``, ``${{checkpoint_dir}}``,
``${{output_dir}}``, ``${{job_name}}``. The spec refuses unknown ones (:func:`check`). The values
the spec knows (the job's name; the hyperparameters on this machine) are put in when the request is
rendered (:func:`render_args`), exactly as written; the paths are put in inside the job by
:func:`resolve` with the values :func:`values_of` reads from the runtime context, so
``--data ${{inputs.train}}`` is ``--data /opt/ml/input/data/train`` on SageMaker and the local
input's path on this machine. In cloud jobs the hyperparameters' flags and placeholders are made
inside the job too, from the job's own values (a tuning service's trial values, which it passes
in the job's environment or command line, :func:`argv_values`), by the entry shim.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping

PLACEHOLDER = re.compile(r"\$\{\{\s*([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_.-]*))?\s*\}\}")
SCALAR_PLACEHOLDERS = ("model_dir", "checkpoint_dir", "output_dir", "job_name")
NAMED_PLACEHOLDERS = ("inputs", "outputs", "hyperparameters")


class PlaceholderError(ValueError):
    """A placeholder the job does not define."""


def flag_value(value: Any) -> list[str]:
    """A hyperparameter's value as the words after its flag."""
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, (list, tuple)):
        return [word for item in value for word in flag_value(item)]
    if isinstance(value, dict):
        return [json.dumps(value, sort_keys=True)]
    return [str(value)]


def hyperparameter_flags(hyperparameters: Mapping[str, Any]) -> list[str]:
    """``{"lr": 0.01, "shuffle": True}`` -> ``["--lr", "0.01", "--shuffle", "true"]``."""
    flags: list[str] = []
    for name, value in hyperparameters.items():
        flags += [f"--{name}", *flag_value(value)]
    return flags


def placeholders(text: str) -> list[tuple[str, str | None]]:
    """The ``(kind, name)`` of each placeholder in ``text``."""
    return [(m.group(1), m.group(2)) for m in PLACEHOLDER.finditer(text)]


def check(texts: Iterable[str], inputs: Iterable[str], outputs: Iterable[str], hyperparameters: Iterable[str],
          checkpoints: bool = True) -> None:
    """Raise :class:`PlaceholderError` naming the first placeholder the job does not define."""
    known = {"inputs": set(inputs), "outputs": set(outputs), "hyperparameters": set(hyperparameters)}
    for text in texts:
        for kind, name in placeholders(text):
            shown = "${{" + kind + (f".{name}" if name else "") + "}}"
            if kind in SCALAR_PLACEHOLDERS and name is None:
                if kind == "checkpoint_dir" and not checkpoints:
                    raise PlaceholderError(f"{shown} needs checkpoint.enabled: true")
                continue
            if kind in known and name is not None:
                if name not in known[kind]:
                    defined = ", ".join(sorted(known[kind])) or "none"
                    raise PlaceholderError(f"{shown}: the spec has no {kind[:-1] if kind != 'hyperparameters' else 'hyperparameter'} "
                                           f"{name!r} (defined: {defined})")
                continue
            raise PlaceholderError(f"{shown} is not a placeholder; use one of ${{{{inputs.NAME}}}}, ${{{{outputs.NAME}}}}, "
                                   "${{hyperparameters.NAME}}, ${{model_dir}}, ${{checkpoint_dir}}, ${{output_dir}}, ${{job_name}}")


def values_of(ctx: Any) -> dict[str, str]:
    """The path placeholders' values in a :class:`~cloudtrain.runtime.context.RunContext`."""
    values = {"model_dir": str(ctx.model_dir), "output_dir": str(ctx.output_dir)}
    if ctx.checkpoint_dir is not None:
        values["checkpoint_dir"] = str(ctx.checkpoint_dir)
    values.update({f"inputs.{name}": str(path) for name, path in ctx.inputs.items()})
    values.update({f"outputs.{name}": str(path) for name, path in ctx.outputs.items()})
    return values


def resolve(text: str, values: Mapping[str, str], strict: bool = True) -> str:
    """``text`` with each placeholder replaced by its value; with ``strict=False`` a placeholder
    without a value is left as it is (to be resolved later, inside the job)."""

    def replace(match: re.Match[str]) -> str:
        key = match.group(1) + (f".{match.group(2)}" if match.group(2) else "")
        if key not in values:
            if not strict:
                return match.group(0)
            raise PlaceholderError(f"{match.group(0)} has no value in this job")
        return values[key]

    return PLACEHOLDER.sub(replace, text)


def spec_values(hyperparameters: Mapping[str, Any], job_name: str) -> dict[str, str]:
    """The placeholders' values known when the request is rendered."""
    values = {f"hyperparameters.{name}": " ".join(flag_value(value)) for name, value in hyperparameters.items()}
    values["job_name"] = job_name
    return values


def argv_values(argv: list[str], names: Iterable[str]) -> dict[str, str]:
    """The values ``argv`` gives the hyperparameters ``names``, as a tuning service passes a trial's
    values on the command line: ``--name=value`` (Vertex AI), ``--name value`` or ``-n value``
    (SageMaker's training toolkit, single-letter names). Other words are ignored; the last wins."""
    known = set(names)
    found: dict[str, str] = {}
    index = 0
    while index < len(argv):
        word = argv[index]
        name = word.lstrip("-") if word.startswith("-") else None
        if name is not None and "=" in name:
            name, _, value = name.partition("=")
            if name in known:
                found[name] = value
        elif name in known and index + 1 < len(argv):
            found[name] = argv[index + 1]
            index += 1
        index += 1
    return found


def render_args(args: list[str], hyperparameters: Mapping[str, Any], as_flags: bool, job_name: str) -> list[str]:
    """The entrypoint's arguments as rendered: ``args`` with the spec's values put in (paths stay
    placeholders), then the hyperparameters as flags."""
    values = spec_values(hyperparameters, job_name)
    return [resolve(arg, values, strict=False) for arg in args] + (hyperparameter_flags(hyperparameters) if as_flags else [])
