"""The job store: one SQLite database, one row per submitted job, shared by every cloudtrain process.

It lives at ``$CLOUDTRAIN_HOME/jobs.db`` (default ``~/.cloudtrain/jobs.db``) in WAL mode, so readers
never block the writer; every write is one short ``BEGIN IMMEDIATE`` transaction with a busy
timeout, so concurrent ``cloudtrain`` processes queue instead of failing or corrupting it. A job is
recorded (state PENDING, with its name and submission token) *before* the cloud is asked to create
it; that record is what makes a retried submission find the job instead of creating a second one.
No secret value is ever written here: the store holds the spec's hash, never its environment.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from cloudtrain.errors import JobNotFoundError, UsageError
from cloudtrain.paths import home_dir
from cloudtrain.providers.base import JobRef, JobState

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id            TEXT PRIMARY KEY,
    cloud         TEXT NOT NULL,
    native_id     TEXT NOT NULL,
    name          TEXT NOT NULL,
    spec_hash     TEXT NOT NULL,
    state         TEXT NOT NULL,
    native_state  TEXT,
    message       TEXT,
    region        TEXT,
    instance_type TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    started_at    TEXT,
    ended_at      TEXT,
    estimate      TEXT,
    details       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS jobs_name ON jobs (name, created_at);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at);
"""


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class JobRecord:
    id: str
    cloud: str
    native_id: str
    name: str
    spec_hash: str
    state: JobState
    created_at: str
    updated_at: str
    native_state: str | None = None
    message: str | None = None
    region: str | None = None
    instance_type: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    estimate: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def ref(self) -> JobRef:
        return JobRef(job_id=self.id, cloud=self.cloud, native_id=self.native_id, region=self.region, details=self.details)

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["state"] = self.state.value
        return data


class JobStore:
    """Typed access to ``jobs.db``. Open one per process; it is cheap (a connection per call)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else home_dir() / "jobs.db"
        self._ready = False

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        hint = "set CLOUDTRAIN_HOME to a writable directory, or fix the file's permissions"
        try:
            if not self._ready:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self.path.exists() and not self.path.is_file():
                    raise UsageError(f"the job store {self.path} is not a file", hint)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except OSError as error:
            raise UsageError(f"the job store {self.path} cannot be created: {error.strerror or error}", hint) from None
        except sqlite3.Error as error:
            raise UsageError(f"the job store {self.path} cannot be opened: {error}", hint) from None
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 30000")
            if not self._ready:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(SCHEMA)
                self._ready = True
            if write:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            else:
                yield conn
        except sqlite3.Error as error:
            raise UsageError(f"the job store {self.path} cannot be used: {error}", hint) from None
        finally:
            conn.close()

    @staticmethod
    def _record(row: sqlite3.Row) -> JobRecord:
        data = dict(row)
        try:
            data["state"] = JobState(data["state"])
            data["estimate"] = json.loads(data["estimate"]) if data["estimate"] else None
            data["details"] = json.loads(data["details"] or "{}")
        except (ValueError, TypeError) as error:
            raise UsageError(f"the job store's row for {data.get('id')!r} is damaged ({error})",
                             "it was written by something else than cloudtrain; delete that row or restore jobs.db") from None
        return JobRecord(**data)

    @staticmethod
    def _columns(record: JobRecord) -> dict[str, Any]:
        """A record as column values (JSON text for the estimate and details)."""
        data = record.to_dict()
        data["estimate"] = json.dumps(record.estimate) if record.estimate is not None else None
        data["details"] = json.dumps(record.details)
        return data

    def insert(self, record: JobRecord) -> JobRecord:
        data = self._columns(record)
        columns = ", ".join(data)
        with self._connect(write=True) as conn:
            conn.execute(f"INSERT INTO jobs ({columns}) VALUES ({', '.join('?' * len(data))})", list(data.values()))
        return record

    def update(self, job_id: str, **changes: Any) -> JobRecord:
        """Change some columns of one job atomically; ``details`` is merged, not replaced."""
        with self._connect(write=True) as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFoundError(f"no job {job_id!r} in the job store", "see `cloudtrain list`")
            record = self._record(row)
            if "details" in changes:
                changes["details"] = {**record.details, **changes["details"]}
            record = replace(record, **changes, updated_at=_now())
            data = self._columns(record)
            sets = ", ".join(f"{k} = ?" for k in data if k != "id")
            conn.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [v for k, v in data.items() if k != "id"] + [job_id])
        return record

    def get(self, job_id: str) -> JobRecord:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(f"no job {job_id!r} in the job store", "see `cloudtrain list`")
        return self._record(row)

    def resolve(self, key: str) -> JobRecord:
        """A job by exact id, by job name (the most recent job of that name), or by a unique id prefix."""
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (key,)).fetchone()
            if row is not None:
                return self._record(row)
            rows = conn.execute("SELECT * FROM jobs WHERE name = ? ORDER BY created_at DESC, id DESC LIMIT 1", (key,)).fetchall()
            if not rows:
                escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                rows = conn.execute("SELECT * FROM jobs WHERE id LIKE ? ESCAPE '\\' ORDER BY created_at DESC LIMIT 6", (escaped + "%",)).fetchall()
        if not rows:
            sweep = self._sweep_of_trial(key)
            if sweep is not None:
                raise JobNotFoundError(
                    f"{key!r} is a trial of the sweep {sweep.id} on {sweep.cloud}, run by the cloud's tuning service: it is no job "
                    "of its own in the job store",
                    f"`cloudtrain status {sweep.id}` shows the sweep's trials and its best; `cloudtrain logs {sweep.id}` shows this "
                    f"trial's lines under [{key}]")
            raise JobNotFoundError(f"no job matches {key!r}", "give a job id (or its start, or the job's name) from `cloudtrain list`")
        if len(rows) > 1:
            names = ", ".join(r["id"] for r in rows[:5])
            raise UsageError(f"{key!r} matches several jobs: {names}", "give more of the job id")
        return self._record(rows[0])

    def _sweep_of_trial(self, key: str) -> JobRecord | None:
        """The cloud sweep whose tuning service named a trial ``key``: SageMaker's
        ``<tuning job>-NNN-<8 hex>``, Azure ML's ``<sweep job>_N``."""
        import re

        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM jobs WHERE json_extract(details, '$.kind') = 'sweep' ORDER BY created_at DESC").fetchall()
        for row in rows:
            record = self._record(row)
            native = record.native_id.rsplit("/", 1)[-1]
            pattern = {"sagemaker": rf"{re.escape(native)}-\d{{3}}-[0-9a-f]{{8}}", "azureml": rf"{re.escape(native)}_\d+"}.get(record.cloud)
            if native and pattern and re.fullmatch(pattern, key):
                return record
        return None

    def list(self, cloud: str | None = None, state: JobState | None = None, limit: int = 50) -> list[JobRecord]:
        query, params = "SELECT * FROM jobs", []
        where = []
        if cloud:
            where.append("cloud = ?")
            params.append(cloud)
        if state:
            where.append("state = ?")
            params.append(state.value)
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY created_at DESC, id DESC LIMIT ?"
        params.append(limit)
        with self._connect() as conn:
            return [self._record(r) for r in conn.execute(query, params).fetchall()]

    def find_by_token(self, cloud: str, token: str) -> JobRecord | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM jobs WHERE cloud = ? AND json_extract(details, '$.submission_token') = ?", (cloud, token)
            ).fetchone()
        return self._record(row) if row is not None else None


def new_record(job_id: str, cloud: str, native_id: str, name: str, spec_hash: str, **extra: Any) -> JobRecord:
    now = _now()
    return JobRecord(id=job_id, cloud=cloud, native_id=native_id, name=name, spec_hash=spec_hash,
                     state=JobState.PENDING, created_at=now, updated_at=now, **extra)
