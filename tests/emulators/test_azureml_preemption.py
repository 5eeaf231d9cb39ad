"""Spot (low priority) preemption on the Azure ML emulator, through cloudtrain's Azure ML provider
and the real ``MLClient``: a spot job preempted after its first checkpoint restarts on a fresh node,
finds its checkpoints in its read-write-mounted ``checkpoints`` output (or, without a
``checkpoint.uri``, in its ./outputs/checkpoints, given back from the run's artifacts) and succeeds, and run history
and the store show the preemption; a dedicated job is never preempted.

The scripts wait for a signal or a file the test creates, so nothing here depends on timing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("azure.ai.ml")
pytest.importorskip("responses")

from cloudtrain.emulators.azureml import AzureMLEmulator  # noqa: E402
from cloudtrain.emulators.common import wait_until  # noqa: E402
from cloudtrain.providers.azureml import AzureMLProvider  # noqa: E402
from cloudtrain.providers.base import JobState  # noqa: E402
from cloudtrain.runner import Runner  # noqa: E402
from cloudtrain.specfile import load_spec  # noqa: E402
from cloudtrain.store import JobStore  # noqa: E402

CHECKPOINTS = "azureml://datastores/workspaceblobstore/paths/checkpoints/{name}/"
# Resumes from step-1 when it is there; else writes it and waits for the preemption's SIGTERM (spot)
# or for the gate file (dedicated), then finishes.
SCRIPT = """
import signal, sys, threading
from pathlib import Path
from cloudtrain.runtime import context

ctx = context()
step = ctx.checkpoint_dir / "step-1"
if step.exists():
    print(f"resumed from step-1: {step.read_text()}", flush=True)
else:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    step.write_text("state after step 1")
    print("checkpoint written", flush=True)
    gate = Path(sys.argv[sys.argv.index("--gate") + 1])
    while not stop.wait(0.05) and not gate.exists():
        pass
    if stop.is_set():
        print("terminated", flush=True)
        sys.exit(143)
(ctx.model_dir / "model.txt").write_text("weights")
print("training done", flush=True)
"""
SPEC = """\
name: {name}
code: .
entrypoint: train.py
framework: {{name: sklearn}}
resources: {{cpus: 2}}
hyperparameters: {{gate: {gate}}}
max_runtime: 30m
spot: {{enabled: {spot}}}
checkpoint: {{enabled: true, uri: "{checkpoints}"}}
"""


@pytest.fixture()
def emulator(tmp_path: Path) -> Iterator[AzureMLEmulator]:
    with AzureMLEmulator(tmp_path / "azureml-emulator", grace_seconds=5.0) as value:
        yield value


def submit(emulator: AzureMLEmulator, tmp_path: Path, name: str, spot: bool, uri: bool = True) -> tuple[Runner, str, Path]:
    """``uri``: checkpoints go to a ``checkpoint.uri`` output; else to the job's default ./outputs/checkpoints."""
    project, gate = tmp_path / name, tmp_path / f"{name}.gate"
    project.mkdir()
    (project / "train.py").write_text(SCRIPT)
    spec = SPEC.format(name=name, gate=gate, spot=str(spot).lower(), checkpoints=CHECKPOINTS.format(name=name))
    (project / "job.yaml").write_text(spec if uri else spec.replace(f', uri: "{CHECKPOINTS.format(name=name)}"', ""))
    runner = Runner(store=JobStore(tmp_path / "jobs.db"), providers={"azureml": AzureMLProvider(credential=emulator.credential)})
    record = runner.submit(runner.plan(load_spec(project / "job.yaml", emulator.overrides), "azureml")).record
    return runner, record.id, gate


def test_spot_job_preempted_after_its_checkpoint_resumes_from_it(emulator: AzureMLEmulator, tmp_path: Path) -> None:
    emulator.faults.add("preempt", 1)
    runner, job_id, _ = submit(emulator, tmp_path, "spot-resume", spot=True)
    final, status = runner.wait(job_id, poll_seconds=0.1, timeout=300)
    logs = "\n".join(runner.logs(job_id))
    native = final.native_id
    assert status.state is JobState.SUCCEEDED, (status, logs)
    assert "checkpoint written" in logs and "capacity reclaimed" in logs, logs
    assert "resumed from step-1: state after step 1" in logs and "training done" in logs, logs
    history = emulator.status_history(native)
    assert history[history.index("Running") + 1:history.index("Running") + 3] == ["Queued", "Preparing"], history
    assert history[-2:] == ["Finalizing", "Completed"], history
    assert emulator.faults.count("preempt") == 1 and emulator.faults.preemptions == 0  # taken once
    assert "preempted" in (status.message or ""), status
    assert "preempted" in (runner.store.get(job_id).message or "")  # the store shows the interruption
    checkpoint = emulator.blob("checkpoints/spot-resume/step-1")
    assert checkpoint == b"state after step 1"


def test_spot_job_preempted_resumes_from_its_default_outputs_checkpoints(emulator: AzureMLEmulator, tmp_path: Path) -> None:
    """No checkpoint.uri: the checkpoints are in ./outputs/checkpoints, which reached the run's artifacts
    before the preemption and are in the restarted attempt's ./outputs again."""
    emulator.faults.add("preempt", 1)
    runner, job_id, _ = submit(emulator, tmp_path, "spot-outputs", spot=True, uri=False)
    request = emulator.service.jobs[runner.store.get(job_id).native_id]["properties"]
    assert "checkpoints" not in request["outputs"]  # no checkpoint output: the default location
    final, status = runner.wait(job_id, poll_seconds=0.1, timeout=300)
    logs = "\n".join(runner.logs(job_id))
    assert status.state is JobState.SUCCEEDED, (status, logs)
    assert "checkpoint written" in logs and "capacity reclaimed" in logs, logs
    assert "resumed from step-1: state after step 1" in logs and "training done" in logs, logs
    assert emulator.faults.count("preempt") == 1 and "preempted" in (status.message or ""), status
    assert emulator.blob(f"ExperimentRun/dcid.{final.native_id}/outputs/checkpoints/step-1") == b"state after step 1"


def test_dedicated_job_is_never_preempted(emulator: AzureMLEmulator, tmp_path: Path) -> None:
    emulator.faults.add("preempt", 1)
    runner, job_id, gate = submit(emulator, tmp_path, "dedicated", spot=False)
    # the checkpoint reached storage: the emulator's watcher saw it and would have preempted a spot job there
    wait_until(lambda: "checkpoints/dedicated/step-1" in emulator.blob_names("checkpoints/"), timeout=120,
               what="the checkpoint on storage")
    gate.write_text("go")
    final, status = runner.wait(job_id, poll_seconds=0.1, timeout=300)
    logs = "\n".join(runner.logs(job_id))
    assert status.state is JobState.SUCCEEDED, (status, logs)
    assert "resumed" not in logs and "capacity reclaimed" not in logs, logs
    history = emulator.status_history(final.native_id)
    assert history == ["NotStarted", "Queued", "Preparing", "Running", "Finalizing", "Completed"], history
    assert emulator.faults.count("preempt") == 0 and emulator.faults.preemptions == 1 and not status.message
