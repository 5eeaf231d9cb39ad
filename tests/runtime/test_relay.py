"""The entry shim's relay of a sweep objective (cloudtrain.runtime.relay), run as a cloud trial runs
it: in a process of its own, with the program a child in a session of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: a trial's entry: relay the objective `loss` of the program given as arguments, as on SageMaker
DRIVER = textwrap.dedent("""
    import sys
    from cloudtrain.runtime.relay import prepare, run_relaying
    sources = prepare("sagemaker")
    print("home", sources["home"], flush=True)
    raise SystemExit(run_relaying([sys.executable, "-c", sys.argv[1]], "loss", sources))
""")

#: a script written for Vertex AI: its objective through cloudml-hypertune's file
HYPERTUNE = textwrap.dedent("""
    import json, os, time
    path = os.environ["CLOUD_ML_HP_METRIC_FILE"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lines = []
    for step, loss in enumerate([0.9, 0.5, 0.25], 1):
        lines.append(json.dumps({"timestamp": time.time(), "trial": "0", "loss": str(loss), "global_step": str(step)}))
        with open(path, "w") as handle:
            handle.write("\\n".join(lines) + "\\n")
    print("trained", flush=True)
""")


def run(tmp_path: Path, program: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CLOUDTRAIN_ENVIRONMENT": "sagemaker",
           "CLOUDTRAIN_METRICS_FILE": str(tmp_path / "metrics.jsonl"), **extra}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("CLOUD_ML_HP_METRIC_FILE", None)
    return subprocess.run([sys.executable, "-c", DRIVER, program], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def metric_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("cloudtrain-metric name=loss")]


def test_each_report_reaches_the_log_lines_the_tuning_job_reads_once_and_the_folder_goes(tmp_path: Path) -> None:
    done = run(tmp_path, HYPERTUNE)
    assert done.returncode == 0, done.stderr
    assert metric_lines(done.stdout) == ["cloudtrain-metric name=loss value=0.9 step=1", "cloudtrain-metric name=loss value=0.5 step=2",
                                         "cloudtrain-metric name=loss value=0.25 step=3"], done.stdout
    home = next(line.split(" ", 1)[1] for line in done.stdout.splitlines() if line.startswith("home "))
    assert not Path(home).exists()  # the relay's own folder is removed


def test_a_program_that_logs_the_metric_itself_is_not_relayed_twice(tmp_path: Path) -> None:
    program = HYPERTUNE.replace('print("trained", flush=True)', textwrap.dedent("""
        from cloudtrain.runtime import context
        for loss in (0.9, 0.5, 0.25):
            context().log_metric("loss", loss)
    """))
    done = run(tmp_path, program)
    assert done.returncode == 0, done.stderr
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(metric_lines(done.stdout)) == len(logged) and len(logged) in (3, 6)  # its own three (and three relayed before it logged)


def test_the_exit_code_is_the_programs_and_a_signal_is_passed_on_once(tmp_path: Path) -> None:
    assert run(tmp_path, "raise SystemExit(3)").returncode == 3
    waits = textwrap.dedent("""
        import os, signal, sys
        print("session", os.getpid() == os.getsid(0), flush=True)  # in a session of its own
        signal.pause()
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "CLOUDTRAIN_ENVIRONMENT": "sagemaker",
           "CLOUDTRAIN_METRICS_FILE": str(tmp_path / "metrics.jsonl")}
    shim = subprocess.Popen([sys.executable, "-c", DRIVER, waits], env=env, stdout=subprocess.PIPE, text=True, cwd=tmp_path,
                            start_new_session=True)
    assert shim.stdout is not None
    lines = [shim.stdout.readline(), shim.stdout.readline()]
    assert "session True\n" in lines, lines
    os.killpg(shim.pid, signal.SIGTERM)  # as the cloud stops the job's processes: the program is not in this group
    assert shim.wait(timeout=60) == 128 + signal.SIGTERM  # it got the signal from the shim, and died of it


def test_a_relay_that_fails_warns_once_and_the_training_goes_on(tmp_path: Path) -> None:
    (tmp_path / "a-folder").mkdir()
    done = run(tmp_path, HYPERTUNE, CLOUDTRAIN_METRICS_FILE=str(tmp_path / "a-folder"))  # log_metric cannot write there
    assert done.returncode == 0 and "trained" in done.stdout, done.stderr
    assert done.stderr.count("cloudtrain entry: relaying loss stopped: IsADirectoryError") == 1, done.stderr


@pytest.mark.parametrize("environment", ["local", "bare"])
def test_nothing_is_relayed_where_no_tuning_service_reads(environment: str) -> None:
    from cloudtrain.runtime.relay import prepare

    assert prepare(environment) == {}
