"""Loading a job spec from a file, with config-file settings and ``--set`` overrides.

Each backend's settings section (``sagemaker:``, ``azureml:``, ``vertex:``, ``local:``, a plugin's)
is taken from the registry (:mod:`cloudtrain.sections`). Where its keys come from, the first that
sets a key wins:

1. ``--set key.path=value`` on the command line (any field, not only cloud settings);
2. environment variables ``CLOUDTRAIN_<BACKEND>_<KEY>``, e.g. ``CLOUDTRAIN_SAGEMAKER_ROLE_ARN``,
   ``CLOUDTRAIN_VERTEX_STAGING_BUCKET``, ``CLOUDTRAIN_RUNS_DIR`` (local.runs_dir);
3. the spec file itself;
4. the project config ``cloudtrain.yaml``, the nearest one in the spec's directory or above it;
5. the user config ``~/.config/cloudtrain/config.yaml`` (``$XDG_CONFIG_HOME`` is honoured);
6. the clouds' own variables, as their SDKs read them and each backend declares
   (``native_variables``): ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` (sagemaker.region),
   ``AZURE_SUBSCRIPTION_ID`` (azureml.subscription_id), ``GOOGLE_CLOUD_PROJECT`` (vertex.project).

Config files hold the same per-backend sections as a spec (``local: {runs_dir: ...}`` among them).
Relative paths in a spec (``code``, local inputs) are relative to the spec file's directory and are
made absolute here. Errors name the file, the field path and, for YAML, the line.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from cloudtrain.errors import SpecError
from cloudtrain.spec import JobSpec


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec and where it came from."""

    spec: JobSpec
    path: Path | None
    base_dir: Path
    prices: tuple[dict[str, Any], ...] = ()  # the config files' `prices:` (your own prices)

    @property
    def local(self) -> dict[str, Any]:
        """The local backend's settings (``runs_dir``), from the spec and config layers."""
        return self.spec.cloud_settings("local")


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cloudtrain" / "config.yaml"


def find_project_config(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        candidate = directory / "cloudtrain.yaml"
        if candidate.is_file():
            return candidate
    return None


def _yaml_load(path: Path, what: str = "job spec") -> tuple[Any, Any]:
    """Returns (data, node tree) so errors can point at lines (:mod:`cloudtrain.yamlfile`'s checks)."""
    from cloudtrain.yamlfile import read_yaml

    return read_yaml(path, what)


def _line_of(node: Any, loc: Iterable[Any]) -> int | None:
    """The 1-based line of the deepest YAML node along a pydantic error location."""
    return _locate(node, loc)[0]


def _locate(node: Any, loc: Iterable[Any]) -> tuple[int | None, int]:
    """(line of the deepest YAML node along ``loc``, how many parts of ``loc`` the file holds)."""
    import yaml

    line, depth = (node.start_mark.line + 1 if node is not None else None), 0
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        else:
            child = None
        if child is None:
            break
        node, line, depth = child, child.start_mark.line + 1, depth + 1
    return line, depth


def _models_in(annotation: Any) -> list[type]:
    """The pydantic models an annotation holds directly or through Optional, unions, lists, dicts."""
    import typing

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _close_key(loc: list[Any]) -> str | None:
    """For an unknown key at ``loc``, the most similar key the spec takes at that place."""
    import difflib

    from cloudtrain.sections import spec_model

    if not loc or not isinstance(loc[-1], str):
        return None
    models: list[type] = [spec_model()]
    for part in loc[:-1]:
        inner = [m for model in models if part in model.model_fields for m in _models_in(model.model_fields[part].annotation)]
        models = inner or models  # a dict key or list index: the same models go on
    keys = {name for model in models for name in model.model_fields}
    if loc[-1].lower() in ("gpu", "gpus") and "accelerator" in keys:
        return "accelerator"  # closer in meaning than 'cpus' is in spelling
    keys |= {f.alias for model in models for f in model.model_fields.values() if f.alias}
    found = difflib.get_close_matches(loc[-1], sorted(keys), n=1, cutoff=0.6)
    return found[0] if found else None


def format_validation_error(error: Any, source: str, node: Any = None,
                            overridden: Iterable[list[str | int]] = ()) -> SpecError:
    """One line per problem: ``file:line: field.path: message``, or ``--set key: ...`` where the
    value came from (or sits under) a ``--set`` override."""
    lines = []
    overridden = list(overridden)
    for item in error.errors():
        loc = [p for p in item["loc"] if not (isinstance(p, str) and p.startswith(("function-", "union[")))]
        path = ".".join(str(p) for p in loc) or "(top level)"
        by_set = next((o for o in overridden if loc[:len(o)] == o or (loc and o[:len(loc)] == loc)), None)
        line, depth = _locate(node, loc) if node is not None and by_set is None else (None, 0)
        if line is not None and depth < len(loc) - 1:  # the mapping holding the key is not in the file
            by_set = max((o for o in overridden if o[:depth + 1] == loc[:depth + 1]), key=len, default=None)
            line = None  # its nearest ancestor's line would point at the wrong place
        if by_set == loc:  # the override names the field itself
            where = f"--set {path}"
        else:
            where = (f"--set {'.'.join(map(str, by_set))}" if by_set else f"{source}:{line}" if line else source) + f": {path}"
        lines.append(f"{where}: {_message(item, loc)}")
    count = len(lines)
    head = "the job spec is not valid" if count == 1 else f"the job spec has {count} problems"
    return SpecError(f"{head}:\n  " + "\n  ".join(lines), "fix the field(s) named above; `cloudtrain schema` lists every key")


def _message(item: dict[str, Any], loc: list[Any]) -> str:
    message = str(item["msg"]).removeprefix("Value error, ")
    if item["type"] == "extra_forbidden":
        close = _close_key(loc)
        return f"unknown key; did you mean {close!r}?" if close else \
            "unknown key (see `cloudtrain schema` for the keys a job spec takes)"
    if item["type"] == "missing":
        return "required key is missing"
    return message


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """``resources.nodes=2`` -> (["resources", "nodes"], 2); the value is read as YAML."""

    if "=" not in text:
        raise SpecError(f"--set {text!r}: expected key.path=value", "e.g. --set resources.nodes=2")
    key, raw = text.split("=", 1)
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in key.strip().split(".")]
    if not key.strip() or any(p == "" for p in parts):
        raise SpecError(f"--set {text!r}: the key path is empty", "e.g. --set hyperparameters.lr=0.01")
    from cloudtrain.yamlfile import load_yaml

    if "\x00" in text or len(text) > 100_000:
        raise SpecError(f"--set {text[:60]!r}...: a NUL byte or more than 100,000 characters", "give a short key.path=value")
    try:
        value = load_yaml(raw, f"--set {key.strip()}")[0] if raw.strip() else ""
    except SpecError as error:
        if "not valid YAML" not in error.message:
            raise
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    data = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        target: Any = data
        for i, part in enumerate(parts[:-1]):
            nxt = parts[i + 1]
            if isinstance(target, list) and isinstance(part, int):
                if part >= len(target):
                    raise SpecError(f"--set {text!r}: index {part} is past the end of the list", None)
                target = target[part]
                continue
            if not isinstance(target, dict):
                raise SpecError(f"--set {text!r}: {'.'.join(map(str, parts[: i + 1]))} is not a mapping", None)
            if not isinstance(target.get(part), (dict, list)):
                target[part] = [] if isinstance(nxt, int) else {}
            target = target[part]
        last = parts[-1]
        if isinstance(target, list) and isinstance(last, int):
            if last < len(target):
                target[last] = value
            elif last == len(target):
                target.append(value)
            else:
                raise SpecError(f"--set {text!r}: index {last} is past the end of the list", None)
        elif isinstance(target, dict):
            target[str(last)] = value
        else:
            raise SpecError(f"--set {text!r}: cannot set a key inside a {type(target).__name__}", None)
    return data


def _merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    out = dict(low)
    for key, value in high.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif value is not None:
            out[key] = value
    return out


def _read_config(path: Path) -> dict[str, Any]:
    from cloudtrain.sections import config_sections

    data, _ = _yaml_load(path, "config file")
    if data is None:
        return {}
    sections = [*config_sections(), "prices"]
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a config file is a mapping of sections", f"allowed sections: {', '.join(sections)}")
    unknown = sorted(set(map(str, data)) - set(sections))
    if unknown:
        raise SpecError(f"{path}: unknown config section(s) {unknown}", f"allowed sections (one per backend, and prices): {', '.join(sections)}")
    if data.get("prices") is not None:
        data = {**data, "prices": your_prices(data["prices"], str(path))}
    for key, value in data.items():
        if key != "prices" and value is not None and not isinstance(value, dict):
            raise SpecError(f"{path}: section {key!r} must be a mapping", f"e.g. {key}: {{region: ...}}")
    return {k: v for k, v in data.items() if v}


PRICE_KEYS = {"cloud", "region", "instance_type", "usd_per_hour", "spot_usd_per_hour"}


def your_prices(rows: Any, source: str) -> list[dict[str, Any]]:
    """The ``prices:`` section of a config file: your own prices (negotiated, discounted), a list of
    ``{cloud, region, instance_type, usd_per_hour, spot_usd_per_hour?}``."""
    import math

    hint = "e.g. prices: [{cloud: sagemaker, region: us-east-1, instance_type: ml.p4d.24xlarge, usd_per_hour: 25.0}]"
    if not isinstance(rows, list):
        raise SpecError(f"{source}: prices is a list of {{cloud, region, instance_type, usd_per_hour}}", hint)
    out = []
    for index, row in enumerate(rows):
        where = f"{source}: prices[{index}]"
        if not isinstance(row, dict) or not {"cloud", "region", "instance_type", "usd_per_hour"} <= set(row) or set(row) - PRICE_KEYS:
            raise SpecError(f"{where}: needs cloud, region, instance_type and usd_per_hour (and may have spot_usd_per_hour)", hint)
        for key in ("usd_per_hour", "spot_usd_per_hour"):
            value = row.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value <= 0):
                raise SpecError(f"{where}.{key}: {value!r} is not a positive number of US dollars per hour", hint)
        out.append({key: (str(value) if key in ("cloud", "region", "instance_type") else value) for key, value in row.items()})
    return out


def config_layers(base_dir: Path, environ: dict[str, str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(settings from config files over the clouds' own variables, settings from cloudtrain's variables)."""
    from cloudtrain.sections import native_settings, variable_settings

    environ = dict(os.environ) if environ is None else environ
    files: dict[str, Any] = native_settings(environ)
    prices: list[dict[str, Any]] = []
    for path in (user_config_path(), find_project_config(base_dir)):
        if path is not None and path.is_file():
            config = _read_config(path)
            prices += config.pop("prices", [])  # the project's after the user's: a later row wins
            files = _merge(files, config)
    if prices:
        files["prices"] = prices
    return files, variable_settings(environ)


def _resolved(path: Path, field: str) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as error:  # a symlink loop, a name too long
        raise SpecError(f"{field}: {path} cannot be resolved ({getattr(error, 'strerror', None) or error})",
                        "check the path (a symlink loop?)") from None


def _absolute(spec: JobSpec, base_dir: Path) -> JobSpec:
    code = _resolved(base_dir / spec.code, "code")
    inputs = {
        name: item.model_copy(update={"uri": str(_resolved(base_dir / item.uri, f"inputs.{name}"))}) if item.is_local else item
        for name, item in spec.inputs.items()
    }
    return spec.model_copy(update={"code": str(code), "inputs": inputs})


def build_spec(
    data: Any,
    *,
    source: str,
    base_dir: Path,
    overrides: Iterable[str] = (),
    node: Any = None,
    environ: dict[str, str] | None = None,
) -> LoadedSpec:
    """Validate raw spec data merged with config layers and overrides."""
    from pydantic import ValidationError

    if not isinstance(data, dict):
        raise SpecError(f"{source}: a job spec is a mapping with at least name, code and entrypoint", "see examples/")
    from cloudtrain.sections import config_sections, spec_model

    files, env = config_layers(base_dir, environ)
    merged = dict(data)
    for cloud in config_sections():
        if data.get(cloud) is not None and not isinstance(data[cloud], dict):
            line = _line_of(node, [cloud]) if node is not None else None
            raise SpecError(f"{source}{f':{line}' if line else ''}: {cloud}: the backend's settings are a mapping",
                            f"e.g. {cloud}: {{region: ...}}")
        layered = _merge(_merge(files.get(cloud, {}), data.get(cloud) or {}), env.get(cloud, {}))
        if layered:
            merged[cloud] = layered
    overrides = list(overrides)
    merged = apply_overrides(merged, overrides)
    try:
        spec = spec_model().model_validate(merged)
    except ValidationError as error:
        raise format_validation_error(error, source, node, [parse_override(o)[0] for o in overrides]) from None
    check_instance_types(spec, source, node)
    check_placeholders(spec, source, node)
    return LoadedSpec(spec=_absolute(spec, base_dir), path=None, base_dir=base_dir, prices=tuple(files.get("prices") or ()))


def check_placeholders(spec: JobSpec, source: str, node: Any = None) -> None:
    """Every ``${{...}}`` in ``args`` and ``command`` names something the job defines."""
    if not any("${{" in text for text in [*spec.args, spec.command or ""]):
        return
    from cloudtrain.runtime.invocation import PlaceholderError, check

    for field, texts in (("args", spec.args), ("command", [spec.command or ""])):
        try:
            check(texts, spec.inputs, spec.outputs, spec.hyperparameters, spec.checkpoint.enabled)
        except PlaceholderError as error:
            line = _line_of(node, [field]) if node is not None else None
            raise SpecError(f"{source}{f':{line}' if line else ''}: {field}: {error}",
                            "placeholders name the spec's inputs, outputs and hyperparameters, or model_dir, "
                            "checkpoint_dir, output_dir, job_name") from None


def check_instance_types(spec: JobSpec, source: str, node: Any = None) -> None:
    """``resources.instance_type`` is keyed by backend names the registry knows."""
    from cloudtrain.providers import registry

    known = registry.names()
    keyed = [(["resources", "instance_type"], spec.resources.instance_type)]
    if isinstance(spec.image, dict):
        keyed.append((["image"], spec.image))
    for loc, mapping in keyed:
        for key in mapping:
            if key not in known:
                import difflib

                line = _line_of(node, [*loc, key]) if node is not None else None
                close = difflib.get_close_matches(key, known, n=1)
                raise SpecError(f"{source}{f':{line}' if line else ''}: {'.'.join(loc)}.{key}: no backend is named {key!r}"
                                + (f"; did you mean {close[0]!r}?" if close else ""), f"backends: {', '.join(known)}")


def _load_python(path: Path) -> Any:
    import runpy

    try:
        namespace = runpy.run_path(str(path), run_name="cloudtrain_spec")
    except Exception as error:  # the user's file failed: show where, briefly
        raise SpecError(f"{path}: running the Python spec failed: {type(error).__name__}: {error}", None) from None
    job = namespace.get("job")
    if job is None:
        raise SpecError(f"{path}: a Python spec defines a module-level `job` (a JobSpec or a dict)", None)
    if isinstance(job, JobSpec):
        return job.model_dump(mode="json", exclude_defaults=True)
    return job


def load_spec(path: str | os.PathLike[str], overrides: Iterable[str] = (), check_files: bool = True) -> LoadedSpec:
    """Load, merge and validate a YAML or Python job spec; optionally check code and entrypoint exist."""
    path = Path(path)
    if not path.exists():
        raise SpecError(f"no job spec at {path}", "give the path of a .yaml or .py job file, e.g. examples/digits-sklearn.yaml")
    node = None
    if path.suffix == ".py":
        data = _load_python(path)
    else:
        data, node = _yaml_load(path)
    loaded = build_spec(data, source=str(path), base_dir=_resolved(path, "the spec's path").parent, overrides=overrides, node=node)
    loaded = LoadedSpec(spec=loaded.spec, path=path, base_dir=loaded.base_dir, prices=loaded.prices)
    if check_files:
        check_spec_files(loaded, node, [parse_override(text)[0] for text in overrides])
    return loaded


def check_spec_files(loaded: LoadedSpec, node: Any = None, overridden: Iterable[list[str | int]] = ()) -> None:
    """The code directory, the entrypoint and local inputs must exist; each problem names where
    its value came from (the file's line, or the ``--set`` that gave it)."""
    spec, source = loaded.spec, str(loaded.path or "<spec>")
    problems: list[str] = []
    overridden = list(overridden)

    def where(*loc: str) -> str:
        by_set = next((o for o in reversed(overridden) if list(loc[:len(o)]) == o or o[:len(loc)] == list(loc)), None)
        if by_set is not None:  # the last --set of it wins, as it does for the value
            return f"--set {'.'.join(map(str, by_set))}"
        line = _line_of(node, loc) if node is not None else None
        return f"{source}:{line}" if line else source

    code = Path(spec.code)
    if not code.is_dir():
        problems.append(f"{where('code')}: code: directory {code} does not exist")
    elif spec.entrypoint:
        script = code / spec.entrypoint
        if not script.is_file():
            problems.append(f"{where('entrypoint')}: entrypoint: {spec.entrypoint} not found in {code}")
    elif spec.module:
        parts = spec.module.split(".")
        as_file = code.joinpath(*parts).with_suffix(".py")
        as_package = code.joinpath(*parts) / "__main__.py"
        if not (as_file.is_file() or as_package.is_file()):
            problems.append(f"{where('module')}: module: {spec.module} not found in {code}")
    if code.is_dir() and spec.requirements and not (code / spec.requirements).is_file():
        problems.append(f"{where('requirements')}: requirements: {spec.requirements} not found in {code}")
    for name, item in spec.inputs.items():
        if item.is_local and not Path(item.uri).exists():
            problems.append(f"{where('inputs', name)}: inputs.{name}: {item.uri} does not exist")
    if problems:
        raise SpecError("the job spec names files that do not exist:\n  " + "\n  ".join(problems), "fix the paths (relative to the spec file's directory)")
