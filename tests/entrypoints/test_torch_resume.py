"""Checkpoints and resume: a run killed (SIGKILL or SIGTERM) and started again ends exactly as an
uninterrupted one; a corrupted newest checkpoint is skipped for the previous one."""

from __future__ import annotations

import signal

import pytest

from entrypoint_jobs import read_until

# about 20 ms a step on two cores: the kill lands long before the 66th and last step
HPS = {"epochs": 3, "image_size": 16, "width": 32, "batch_size": 64, "warmup_steps": 10,
       "checkpoint_every_steps": 5, "log_every_steps": 5}
CHECKPOINT_LINE = r"checkpoint saved: step-\d+\.pt \(step (\d+)\)"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    from entrypoint_jobs import Job

    run = Job(tmp_path_factory.mktemp("uninterrupted"), HPS)
    run.run("train_cnn.py")
    return run.summary()


def _assert_same_result(summary, reference):
    assert summary["optimizer_steps"] == reference["optimizer_steps"] == 3 * (1437 // 64)
    assert summary["epochs"] == reference["epochs"]
    # exact resume: same batches, same RNG states, hence the same weights (up to float noise)
    assert summary["test_loss"] == pytest.approx(reference["test_loss"], rel=1e-4)
    assert summary["best_val_loss"] == pytest.approx(reference["best_val_loss"], rel=1e-4)


def test_resume_after_sigkill_loses_at_most_one_interval(job, uninterrupted):
    run = job(HPS)
    process = run.start("train_cnn.py")
    match, _ = read_until(process, CHECKPOINT_LINE.replace(r"(\d+)", "(10)"))
    process.kill()
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (run.run_dir / "output" / "summary.json").exists(), "the run ended before the kill"
    last_saved = run.checkpoint_steps()[-1]
    assert last_saved >= 10

    output = run.run("train_cnn.py")
    assert f"resumed from step {last_saved} " in output
    _assert_same_result(run.summary(), uninterrupted)


def test_sigterm_checkpoints_exits_143_and_the_restart_resumes_there(job, uninterrupted):
    run = job(HPS)
    process = run.start("train_cnn.py")
    read_until(process, CHECKPOINT_LINE.replace(r"(\d+)", "(10)"))
    process.send_signal(signal.SIGTERM)
    match, _ = read_until(process, CHECKPOINT_LINE)  # the checkpoint written for the SIGTERM
    process.communicate(timeout=60)
    assert process.returncode == 143
    stopped_at = int(match.group(1))
    assert 10 < stopped_at < 66 and run.checkpoint_steps()[-1] == stopped_at

    output = run.run("train_cnn.py")
    assert f"resumed from step {stopped_at} " in output
    _assert_same_result(run.summary(), uninterrupted)


def test_truncated_newest_checkpoint_is_skipped_for_the_previous_one(job, uninterrupted):
    run = job(HPS)
    process = run.start("train_cnn.py")
    read_until(process, CHECKPOINT_LINE.replace(r"(\d+)", "(15)"))
    process.kill()
    process.wait()
    previous, newest = run.checkpoint_steps()[-2:]
    path = run.checkpoint_dir / f"step-{newest:08d}.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    output = run.run("train_cnn.py")
    assert f"skipping checkpoint step-{newest:08d}.pt" in output
    assert f"resumed from step {previous} " in output
    _assert_same_result(run.summary(), uninterrupted)


def test_transformer_resumes_after_sigterm(job):
    from test_train_transformer import TINY

    hps = {**TINY, "checkpoint_every_steps": 8, "max_steps": 0, "epochs": 2, "stride": 64}
    reference = job(hps)
    reference.run("train_transformer.py")
    run = job(hps)
    process = run.start("train_transformer.py")
    read_until(process, CHECKPOINT_LINE.replace(r"(\d+)", "(8)"))
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == 143
    run.run("train_transformer.py")
    assert run.summary()["optimizer_steps"] == reference.summary()["optimizer_steps"]
    assert run.summary()["test_loss"] == pytest.approx(reference.summary()["test_loss"], rel=1e-4)
