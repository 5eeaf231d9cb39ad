"""Property-based: thousands of malformed specs, config files and --set values end in a clear
error (exit 2) or a valid spec (exit 0), never an internal error (exit 70) or a hang.

Fixed seed (``derandomize``) and bounded example counts, so a run is repeatable and short."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudtrain.cli.main import main

FUZZ = settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
KEYS = ["name", "code", "entrypoint", "module", "command", "args", "hyperparameters", "framework", "image", "resources",
        "distribution", "spot", "max_runtime", "checkpoint", "inputs", "outputs", "env", "secrets", "tags", "metrics",
        "budget", "sagemaker", "azureml", "vertex", "local", "setup", "requirements", "bundle", "hyperparameters_as_args"]
NASTY_TEXT = st.sampled_from(["", " ", "\x00", "a\x00b", "../../etc/passwd", "/abs/train.py", "x" * 300, "${{inputs.nope}}",
                              "${{", "90m", "2h", ".inf", "1e400", "9" * 400, "-1", "A100:8", "T4:0", "nan", "~", "é", "\ud7ff"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
                    st.floats(allow_nan=True, allow_infinity=True), NASTY_TEXT, st.text(max_size=20))
VALUES = st.recursive(SCALARS, lambda children: st.one_of(st.lists(children, max_size=4),
                                                         st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)),
                                                                         children, max_size=4)), max_leaves=12)
SPECS = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8).map(
    lambda d: {"name": "fuzz", "code": ".", "entrypoint": "train.py", **d})


def exit_code(argv: list[str]) -> int:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        else:
            code = 0
    assert "Traceback" not in err.getvalue(), err.getvalue()[-2000:]
    assert len(err.getvalue()) < 20_000  # errors never echo megabytes of input
    return code


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text("print('ok')\n")
    return tmp_path


def dump(data: object) -> str:
    try:
        return yaml.safe_dump(data, allow_unicode=True)
    except yaml.YAMLError:
        return "name: [unclosed\n"


@FUZZ
@given(SPECS)
def test_malformed_specs_are_clear_errors(project: Path, data: dict) -> None:
    path = project / "job.yaml"
    path.write_text(dump(data), encoding="utf-8", errors="surrogatepass")
    assert exit_code(["validate", str(path)]) in (0, 2)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["utf-8", "utf-16", "latin-1", "raw"]))
def test_arbitrary_bytes_as_spec_or_config(project: Path, raw: bytes, encoding: str) -> None:
    text = raw if encoding == "raw" else raw.decode("latin-1").encode(encoding)
    (project / "job.yaml").write_bytes(text)
    assert exit_code(["validate", str(project / "job.yaml")]) in (0, 2)
    (project / "job.yaml").write_text("name: fuzz\ncode: .\nentrypoint: train.py\n")
    (project / "cloudtrain.yaml").write_bytes(text)
    try:
        assert exit_code(["validate", str(project / "job.yaml")]) in (0, 2)
    finally:
        (project / "cloudtrain.yaml").unlink()


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(KEYS + ["resources.nodes", "env.A", "args.0", "sagemaker.region", "x.y.z", ""]),
                          st.one_of(NASTY_TEXT, st.text(max_size=30))), max_size=4))
def test_malformed_set_values(project: Path, overrides: list[tuple[str, str]]) -> None:
    (project / "job.yaml").write_text("name: fuzz\ncode: .\nentrypoint: train.py\n")
    argv = ["validate", str(project / "job.yaml")]
    for key, value in overrides:
        argv += ["--set", f"{key}={value}"]
    assert exit_code(argv) in (0, 2)


def test_hostile_files_are_refused_quickly(project: Path) -> None:
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))
    (project / "laughs.yaml").write_text("name: fuzz\ncode: .\nentrypoint: train.py\nenv:\n  " + laughs.replace("\n", "\n  "))
    assert exit_code(["validate", str(project / "laughs.yaml")]) == 2
    os.mkfifo(project / "fifo.yaml")
    assert exit_code(["validate", str(project / "fifo.yaml")]) == 2  # never opened for reading: no hang
    assert exit_code(["validate", "/dev/zero"]) == 2
    (project / "dup.yaml").write_text("name: fuzz\ncode: .\nentrypoint: train.py\nname: other\n")
    assert exit_code(["validate", str(project / "dup.yaml")]) == 2
    (project / "deep.yaml").write_text("name: fuzz\ncode: .\nentrypoint: train.py\nargs: " + "[" * 500 + "]" * 500 + "\n")
    assert exit_code(["validate", str(project / "deep.yaml")]) == 2
    (project / "outside.yaml").write_text("name: fuzz\ncode: .\nentrypoint: ../train.py\n")
    assert exit_code(["validate", str(project / "outside.yaml")]) == 2
    (project / "envnull.yaml").write_text("name: fuzz\ncode: .\nentrypoint: train.py\nenv: {A: ~, B: {c: 1}}\n")
    assert exit_code(["validate", str(project / "envnull.yaml")]) == 2
    loop = project / "loop"
    loop.symlink_to(loop)
    (project / "loop.yaml").write_text("name: fuzz\ncode: loop\nentrypoint: train.py\n")
    assert exit_code(["validate", str(project / "loop.yaml")]) == 2
