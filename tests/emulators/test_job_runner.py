"""The emulators' shared run loop: what every emulated job's processes get."""

from __future__ import annotations

import sys
from pathlib import Path

from cloudtrain.emulators.job_runner import NodeProcesses
from cloudtrain.providers.process import NodeCommand


def test_emulated_jobs_run_with_mlflow_telemetry_off_unless_they_set_it(tmp_path: Path) -> None:
    seen: list[tuple[int, str]] = []
    show = [sys.executable, "-c", "import os; print(os.environ.get('MLFLOW_DISABLE_TELEMETRY'))"]
    commands = [NodeCommand(argv=show, env={}, cwd=str(tmp_path)),
                NodeCommand(argv=show, env={"MLFLOW_DISABLE_TELEMETRY": "false"}, cwd=str(tmp_path))]
    status = NodeProcesses(tmp_path / "run", commands, grace_seconds=5, on_line=lambda node, text: seen.append((node, text))).run()
    assert status["state"] == "SUCCEEDED"
    assert sorted(seen) == [(0, "true"), (1, "false")]
