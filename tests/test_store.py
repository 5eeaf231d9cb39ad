"""The job store: records, lookups, and several processes writing at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from cloudtrain.errors import JobNotFoundError, UsageError
from cloudtrain.providers.base import JobState
from cloudtrain.store import JobStore, new_record


def test_insert_update_get(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    store.insert(new_record("job-a-1", "local", "job-a-1", "job-a", "h1", details={"submission_token": "t1"}, estimate={"usd": 1.5}))
    updated = store.update("job-a-1", state=JobState.RUNNING, details={"run_dir": "/r"})
    assert updated.state is JobState.RUNNING
    again = store.get("job-a-1")
    assert again.details == {"submission_token": "t1", "run_dir": "/r"}  # merged, not replaced
    assert again.estimate == {"usd": 1.5}
    assert store.find_by_token("local", "t1").id == "job-a-1"
    assert store.find_by_token("local", "other") is None
    assert store.find_by_token("sagemaker", "t1") is None
    with sqlite3.connect(tmp_path / "jobs.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_resolve_by_id_prefix_and_name(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    store.insert(new_record("mnist-20260101-000000-aaaa", "local", "n", "mnist", "h"))
    store.insert(new_record("mnist-20260102-000000-bbbb", "local", "n", "mnist", "h"))
    assert store.resolve("mnist-20260101").id == "mnist-20260101-000000-aaaa"
    assert store.resolve("mnist").id == "mnist-20260102-000000-bbbb"  # the latest job of that name
    with pytest.raises(UsageError, match="matches several jobs"):
        store.resolve("mnist-2026")
    with pytest.raises(JobNotFoundError):
        store.resolve("nothing")


def _writer(path: str, worker: int, count: int) -> None:
    store = JobStore(Path(path))
    for i in range(count):
        job = f"w{worker}-{i}"
        store.insert(new_record(job, "local", job, f"w{worker}", "h"))
        store.update(job, state=JobState.RUNNING)
        store.update(job, state=JobState.SUCCEEDED, details={"n": i})
        store.update("shared", details={f"w{worker}-{i}": True})


def test_concurrent_processes_never_lose_or_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = JobStore(path)
    store.insert(new_record("shared", "local", "shared", "shared", "h"))
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(path), w, 25)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
        assert p.exitcode == 0
    records = store.list(limit=1000)
    assert len(records) == 101
    assert all(r.state is JobState.SUCCEEDED for r in records if r.id != "shared")
    assert len(store.get("shared").details) == 100  # every read-modify-write of details survived
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_an_unusable_home_or_store_is_a_clear_error(tmp_path: Path) -> None:
    import sqlite3

    from cloudtrain.errors import UsageError

    with pytest.raises(UsageError, match="cannot be created: Not a directory"):
        JobStore(Path("/dev/null/x/jobs.db")).list()
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(UsageError, match="is not a file"):
        JobStore(tmp_path / "dir.db").list()
    store = JobStore(tmp_path / "jobs.db")
    store.list()
    with sqlite3.connect(tmp_path / "jobs.db") as conn:
        conn.execute("INSERT INTO jobs (id, cloud, native_id, name, spec_hash, state, created_at, updated_at) "
                     "VALUES ('x-1', 'local', 'x-1', 'x', 'h', 'EXPLODED', '2026-01-01', '2026-01-01')")
    with pytest.raises(UsageError, match="row for 'x-1' is damaged"):
        store.list()
