"""The command line as a user meets it: exit codes, messages without tracebacks, --json output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cloudtrain", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_help_lists_the_verbs() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for verb in ("run", "validate", "schema", "estimate", "submit", "list", "status", "logs", "cancel", "wait"):
        assert f"  {verb} " in result.stdout


def test_validate_ok_and_json() -> None:
    result = cli("validate", str(REPO / "examples" / "digits-sklearn.yaml"), "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["spec"]["name"] == "digits-sklearn"


def test_validate_says_what_runs(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text('name: shell\ncode: .\ncommand: "bash run.sh --epochs 2"\n')
    result = cli("validate", str(tmp_path / "job.yaml"))
    assert result.returncode == 0 and "valid: shell (command bash run.sh --epochs 2 in " in result.stdout, result.stdout


def test_validate_bad_spec_exits_2_with_field_and_line(tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("name: a\ncode: .\nentrypoint: t.py\nresources: {nodes: 0}\n")
    assert_clean_error(cli("validate", str(spec)), 2, f"{spec}:4: resources.nodes:", "hint:")
    as_json = cli("validate", str(spec), "--json")
    assert as_json.returncode == 2 and json.loads(as_json.stdout)["valid"] is False


def test_missing_spec_file_exits_2() -> None:
    assert_clean_error(cli("run", "does-not-exist.yaml"), 2, "no job spec at does-not-exist.yaml")


def test_bad_override_exits_2() -> None:
    assert_clean_error(cli("validate", str(REPO / "examples" / "digits-sklearn.yaml"), "--set", "resources"), 2, "key.path=value")


def test_unknown_job_exits_2() -> None:
    for verb in ("status", "logs", "cancel", "wait"):
        assert_clean_error(cli(verb, "no-such-job"), 2, "no job matches 'no-such-job'")


def test_submit_resume_options() -> None:
    spec = str(REPO / "examples" / "digits-sklearn.yaml")
    assert_clean_error(cli("submit", spec), 2, "Missing option '--cloud'")
    assert_clean_error(cli("submit", spec, "--resume", "x", "--cloud", "vertex"), 2, "--resume takes the cloud")
    assert_clean_error(cli("submit", spec, "--resume", "no-such-job"), 2, "no job matches 'no-such-job'")


def test_usage_error_exits_2() -> None:
    result = cli("submit", str(REPO / "examples" / "digits-sklearn.yaml"), "--cloud", "mars")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_run_json_then_list_status_logs(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("from cloudtrain.runtime import context\ncontext().log_metric('acc', 0.5)\nprint('hello from the job')\n")
    (tmp_path / "job.yaml").write_text("name: tiny\ncode: .\nentrypoint: train.py\n")
    result = cli("run", str(tmp_path / "job.yaml"), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["state"] == "SUCCEEDED" and summary["metrics"] == {"acc": 0.5}
    jobs = json.loads(cli("list", "--json").stdout)
    assert [j["id"] for j in jobs] == [summary["job_id"]]
    status = json.loads(cli("status", "tiny", "--json").stdout)
    assert status["state"] == "SUCCEEDED"
    assert "hello from the job" in cli("logs", summary["job_id"]).stdout
    assert cli("wait", "tiny").returncode == 0


def test_failing_run_exits_1(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("raise SystemExit('no data found')\n")
    (tmp_path / "job.yaml").write_text("name: tiny\ncode: .\nentrypoint: train.py\n")
    result = cli("run", str(tmp_path / "job.yaml"), "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["state"] == "FAILED"
    assert cli("wait", "tiny").returncode == 1


def test_schema_is_json() -> None:
    result = cli("schema")
    assert result.returncode == 0 and json.loads(result.stdout)["title"] == "cloudtrain job spec"


def test_unsupported_feature_exits_2(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    (tmp_path / "job.yaml").write_text("name: tiny\ncode: .\nentrypoint: train.py\ninputs: {train: gs://b/x}\n")
    assert_clean_error(cli("run", str(tmp_path / "job.yaml")), 2, "inputs.train", "hint:")


def test_brackets_in_user_text_are_printed_literally() -> None:
    assert_clean_error(cli("status", "[/]"), 2, "no job matches '[/]'")
    assert_clean_error(cli("validate", str(REPO / "examples" / "digits-sklearn.yaml"), "--set", "name=Bad"), 2, "[a-z0-9]")


def test_failure_message_with_brackets_exits_1(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("raise RuntimeError('bad [/x] value')\n")
    (tmp_path / "job.yaml").write_text("name: tiny\ncode: .\nentrypoint: train.py\n")
    result = cli("run", str(tmp_path / "job.yaml"))
    assert result.returncode == 1 and "Traceback" not in result.stderr.split("bad [/x] value")[-1]
    assert "bad [/x] value" in result.stdout + result.stderr
