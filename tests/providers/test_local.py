"""The local executor: success, failure, cancel (foreground and detached), torchrun, run directory."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from cloudtrain.errors import SpecError, UnsupportedFeatureError
from cloudtrain.providers.base import JobState
from cloudtrain.runner import Runner
from cloudtrain.specfile import load_spec

OK_SCRIPT = """
import json, os
from cloudtrain.runtime import context
ctx = context()
print("inputs", json.dumps({k: str(v) for k, v in ctx.inputs.items()}))
print("secret is set", bool(os.environ.get("TOKEN")))
ctx.log_metric("accuracy", 0.75)
(ctx.model_dir / "model.txt").write_text("trained")
"""

FAIL_SCRIPT = """
import sys
print("about to fail")
raise ValueError("bad learning rate")
"""

# Prints "ready", then waits for SIGTERM, then exits on its own: a clean, cancellable job.
WAIT_SCRIPT = """
import signal, sys, threading
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: (print("got SIGTERM", flush=True), done.set()))
print("ready", flush=True)
done.wait()
sys.exit(0)
"""


def wait_for(predicate, what: str, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    """Poll a condition (the job's own progress), failing after a generous deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_foreground_run_succeeds(project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("x\n1\n")
    before = sorted(p.name for p in data.iterdir())
    spec = project(OK_SCRIPT, "name: tiny\ncode: .\nentrypoint: train.py\ninputs: {train: ../data}\nsecrets: {TOKEN: {env: MY_TOKEN}}\n")
    monkeypatch.setenv("MY_TOKEN", "s3cr3t-value")
    lines: list[str] = []
    runner = Runner()
    plan = runner.plan(load_spec(spec), "local")
    record, status = runner.run_local(plan, on_line=lines.append)
    assert status.state is JobState.SUCCEEDED and status.exit_code == 0
    run_dir = Path(record.details["run_dir"])
    assert run_dir.parent == spec.parent / ".cloudtrain" / "runs"
    assert (run_dir / "model" / "model.txt").read_text() == "trained"
    assert json.loads((run_dir / "metrics.jsonl").read_text())["value"] == 0.75
    assert json.loads((run_dir / "spec.json").read_text())["name"] == "tiny"
    assert f'"train": "{data}"' in "\n".join(lines)
    assert "secret is set True" in lines
    assert sorted(p.name for p in data.iterdir()) == before  # inputs untouched
    for path in run_dir.rglob("*"):  # the secret's value is written nowhere
        if path.is_file():
            assert "s3cr3t-value" not in path.read_text(errors="replace"), path
    assert runner.store.get(record.id).state is JobState.SUCCEEDED


def test_missing_secret_is_refused_before_running(project) -> None:  # type: ignore[no-untyped-def]
    spec = project(OK_SCRIPT, "name: tiny\ncode: .\nentrypoint: train.py\nsecrets: {TOKEN: {env: NOT_SET_ANYWHERE}}\n")
    runner = Runner()
    with pytest.raises(SpecError, match="NOT_SET_ANYWHERE is not set"):
        runner.run_local(runner.plan(load_spec(spec), "local"))


def test_failure_is_reported_with_its_error(project) -> None:  # type: ignore[no-untyped-def]
    runner = Runner()
    record, status = runner.run_local(runner.plan(load_spec(project(FAIL_SCRIPT)), "local"))
    assert status.state is JobState.FAILED and status.exit_code == 1
    assert "ValueError: bad learning rate" in status.message
    assert runner.store.get(record.id).message == status.message


def test_detached_submit_logs_and_wait(project) -> None:  # type: ignore[no-untyped-def]
    runner = Runner()
    submission = runner.submit(runner.plan(load_spec(project(OK_SCRIPT)), "local"))
    record, status = runner.wait(submission.record.id, poll_seconds=0.05, timeout=120)
    assert status.state is JobState.SUCCEEDED
    assert status.model_uri and Path(status.model_uri, "model.txt").exists()
    assert any("cloudtrain-metric name=accuracy" in line for line in runner.logs(record.id))


def test_cancel_a_detached_job(project) -> None:  # type: ignore[no-untyped-def]
    runner = Runner()
    job = runner.submit(runner.plan(load_spec(project(WAIT_SCRIPT)), "local")).record.id
    wait_for(lambda: "ready" in list(runner.logs(job)), "the job to start")
    runner.cancel(job)
    record, status = runner.wait(job, poll_seconds=0.05, timeout=60)
    assert status.state is JobState.CANCELLED
    assert "got SIGTERM" in list(runner.logs(job))  # it was asked to stop, not killed


def test_cancel_kills_after_the_grace_period(project) -> None:  # type: ignore[no-untyped-def]
    stubborn = "import signal, threading\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\nthreading.Event().wait()\n"
    runner = Runner()
    plan = runner.plan(load_spec(project(stubborn)), "local")
    provider = runner.provider("local")
    request = provider.render(plan)
    request.payload["grace_seconds"] = 0.5
    provider.submit(plan, request)
    ref = provider.local_ref(plan, Path(request.payload["run_dir"]))
    wait_for(lambda: "ready" in list(provider.logs(ref)), "the job to start")
    provider.cancel(ref)
    assert wait_for(lambda: provider.status(ref).state.is_terminal, "the job to end") is True
    assert provider.status(ref).state is JobState.CANCELLED


@pytest.mark.parametrize("detached", [False, True], ids=["foreground", "detached"])
def test_a_job_still_running_at_max_runtime_is_stopped_and_failed(project, detached: bool) -> None:  # type: ignore[no-untyped-def]
    runner = Runner()
    plan = runner.plan(load_spec(project(WAIT_SCRIPT, "name: tiny\ncode: .\nentrypoint: train.py\nmax_runtime: 1s\n")), "local")
    assert runner.provider("local").render(plan).payload["max_runtime_seconds"] == 1
    if detached:
        job = runner.submit(plan).record.id
        record, status = runner.wait(job, poll_seconds=0.05, timeout=60)
    else:
        record, status = runner.run_local(plan)
    assert status.state is JobState.FAILED
    assert status.message == "stopped at max_runtime (1s): the job was still running, as a cloud would stop it"
    logs = list(runner.logs(record.id))
    if "ready" in logs:  # it had set its handler: it was asked to stop, as a cancel asks
        assert "got SIGTERM" in logs
    assert runner.store.get(record.id).state is JobState.FAILED


def test_foreground_ctrl_c_cancels_cleanly(project) -> None:  # type: ignore[no-untyped-def]
    runner = Runner()
    plan = runner.plan(load_spec(project(WAIT_SCRIPT)), "local")

    def on_line(line: str) -> None:
        if line == "ready":  # the user presses Ctrl-C once the job runs
            threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGINT)).start()

    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        record, status = runner.run_local(plan, on_line=on_line)
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
    assert status.state is JobState.CANCELLED
    assert runner.store.get(record.id).state is JobState.CANCELLED


def test_torchrun_two_processes(project) -> None:  # type: ignore[no-untyped-def]
    script = """
import os, torch, torch.distributed as dist
from cloudtrain.runtime import context
dist.init_process_group("gloo")
ctx = context()
value = torch.tensor([float(ctx.rank + 1)])
dist.all_reduce(value)
print(f"rank {ctx.rank}/{ctx.world_size} local {ctx.local_rank} sum {value.item()}", flush=True)
ctx.log_metric("sum", value.item())
dist.destroy_process_group()
"""
    spec = project(script, "name: ddp\ncode: .\nentrypoint: train.py\ndistribution: {type: torchrun, processes_per_node: 2}\n")
    runner = Runner()
    plan = runner.plan(load_spec(spec), "local")
    assert "torch.distributed.run" in runner.render(plan).payload["nodes"][0]["argv"]
    record, status = runner.run_local(plan)
    log = (Path(record.details["run_dir"]) / "logs" / "job.log").read_text()
    assert status.state is JobState.SUCCEEDED, log
    assert "rank 0/2 local 0 sum 3.0" in log and "rank 1/2 local 1 sum 3.0" in log
    metrics = (Path(record.details["run_dir"]) / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 1  # only rank 0 logs metrics


def test_cloud_only_features_are_refused_at_plan_time(project) -> None:  # type: ignore[no-untyped-def]
    runner = Runner()
    spec = project(OK_SCRIPT, "name: tiny\ncode: .\nentrypoint: train.py\ninputs: {train: s3://bucket/train}\n")
    with pytest.raises(UnsupportedFeatureError, match=r"inputs.train: s3://bucket/train .* cannot read") as caught:
        runner.plan(load_spec(spec), "local")
    assert "--set inputs.train=" in caught.value.hint
    with pytest.raises(UnsupportedFeatureError, match="^image:"):
        runner.plan(load_spec(spec, ["inputs={}", "image=repo/img:1"]), "local")
    with pytest.raises(UnsupportedFeatureError, match="distribution.type: torchrun"):
        runner.plan(load_spec(spec, ["inputs={}", "resources.nodes=2"]), "local")


def test_foreground_run_puts_the_signal_handlers_back(project) -> None:  # type: ignore[no-untyped-def]
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    runner = Runner()
    runner.run_local(runner.plan(load_spec(project(OK_SCRIPT)), "local"))
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_dead_supervisor_whose_pid_was_reused_is_neither_trusted_nor_signalled(project) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from cloudtrain.providers.run_directory import write_json_atomic

    runner = Runner()
    job = runner.submit(runner.plan(load_spec(project(WAIT_SCRIPT)), "local")).record.id
    wait_for(lambda: "ready" in list(runner.logs(job)), "the job to start")
    run_dir = Path(runner.store.get(job).details["run_dir"])
    assert runner.status(job)[1].state is JobState.RUNNING  # the live supervisor holds its lock

    # The supervisor dies without a word (its job with it) and the system gives its pid to another
    # process: here a process whose pid is written into the run directory as the supervisor's.
    data = json.loads((run_dir / "status.json").read_text())
    os.killpg(data["pids"][0], signal.SIGKILL)
    os.kill(data["supervisor_pid"], signal.SIGKILL)
    wait_for(lambda: _lock_free(run_dir), "the supervisor's lock to be released")
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_json_atomic(run_dir / "status.json", {**data, "supervisor_pid": stranger.pid})
        provider = runner.provider("local")
        ref = runner.store.get(job).ref()
        assert provider.status(ref).state is JobState.FAILED  # not RUNNING because some pid is alive
        provider.cancel(ref)
        assert stranger.poll() is None  # the stranger was not sent SIGTERM
    finally:
        stranger.kill()
        stranger.wait()


def _lock_free(run_dir: Path) -> bool:
    from cloudtrain.providers.run_directory import supervisor_alive

    return not supervisor_alive(run_dir, None)


def test_a_job_dies_with_its_supervisor(tmp_path: Path) -> None:
    """SIGKILL of the supervisor (no chance to clean up) still ends the training process."""
    import signal
    import time

    (tmp_path / "train.py").write_text("import os, time\nopen('pid', 'w').write(str(os.getpid()))\nprint('ready', flush=True)\ntime.sleep(600)\n")
    (tmp_path / "job.yaml").write_text("name: orphan\ncode: .\nentrypoint: train.py\n")
    runner = Runner()
    record = runner.submit(runner.plan(load_spec(tmp_path / "job.yaml"), "local")).record
    deadline = time.monotonic() + 60
    while not (tmp_path / "pid").exists() or not (tmp_path / "pid").read_text():
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    child = int((tmp_path / "pid").read_text())
    supervisor = int((Path(record.details["run_dir"]) / "supervisor.pid").read_text())
    os.kill(supervisor, signal.SIGKILL)
    while True:
        try:
            os.kill(child, 0)
            with open(f"/proc/{child}/stat") as handle:
                if handle.read().split(")")[-1].split()[0] == "Z":
                    break  # ended; waiting for its parent (init) to reap it
        except (ProcessLookupError, FileNotFoundError):
            break
        assert time.monotonic() < deadline, "the training process outlived its supervisor"
        time.sleep(0.05)
    # the kernel may end the child (its parent thread died) a moment before the rest of the
    # supervisor, which releases its lock last: the run reads FAILED once that lock is free
    while (state := runner.status(record.id)[1].state) is JobState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state is JobState.FAILED


MLFLOW_URI_SCRIPT = """
import os
print("tracking", os.environ.get("MLFLOW_TRACKING_URI"))
print("telemetry off", os.environ.get("MLFLOW_DISABLE_TELEMETRY"))
"""


def test_mlflows_default_store_is_the_runs_not_the_codes(project, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    spec = project(MLFLOW_URI_SCRIPT, "name: tracked\ncode: .\nentrypoint: train.py\n")
    lines: list[str] = []
    runner = Runner()
    record, status = runner.run_local(runner.plan(load_spec(spec), "local"), on_line=lines.append)
    assert status.state is JobState.SUCCEEDED
    assert f"tracking sqlite:///{Path(record.details['run_dir']) / 'mlflow.db'}" in lines
    assert "telemetry off true" in lines  # MLflow's usage telemetry (seen to hang autolog) is off
    own = project(MLFLOW_URI_SCRIPT, "name: tracked\ncode: .\nentrypoint: train.py\nenv: {MLFLOW_TRACKING_URI: 'http://127.0.0.1:5000'}\n")
    lines.clear()
    runner.run_local(runner.plan(load_spec(own), "local"), on_line=lines.append)
    assert "tracking http://127.0.0.1:5000" in lines  # the user's own is kept


def test_a_metric_found_by_a_regex_in_the_output_is_recorded(project) -> None:  # type: ignore[no-untyped-def]
    script = 'print("average test loss: 0.25", flush=True)\nprint("average test loss: 0.125", flush=True)\n'
    spec = project(script, 'name: printed\ncode: .\nentrypoint: train.py\n'
                           'metrics: [val_loss, {name: "test loss", regex: "average test loss: ([0-9.]+)"}]\n')
    runner = Runner()
    record, status = runner.run_local(runner.plan(load_spec(spec), "local"))
    assert status.state is JobState.SUCCEEDED
    lines = (Path(record.details["run_dir"]) / "metrics.jsonl").read_text().splitlines()
    assert [(json.loads(line)["name"], json.loads(line)["value"]) for line in lines] == [("test loss", 0.25), ("test loss", 0.125)]


def test_python_in_a_shell_command_is_the_interpreter_cloudtrain_runs_with(project, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import sys

    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no virtual environment on it, as in a shell that did not activate it
    spec = project("", 'name: shelled\ncode: .\ncommand: "python -c \'import sys; print(sys.executable)\'"\n')
    lines: list[str] = []
    runner = Runner()
    _, status = runner.run_local(runner.plan(load_spec(spec), "local"), on_line=lines.append)
    assert status.state is JobState.SUCCEEDED and lines[-1] == sys.executable
