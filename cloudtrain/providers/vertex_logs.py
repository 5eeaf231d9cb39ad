"""A Vertex AI custom job's log lines, read from Cloud Logging with ``google-cloud-logging``'s own client.

On Vertex AI each line a replica writes is a Cloud Logging entry with ``resource.type="ml_job"``
and ``resource.labels.job_id="<numeric job id>"``, ``resource.labels.task_name`` ``workerpool0-0``...
(``service`` for Vertex's own messages) and the line in ``textPayload`` (or
``jsonPayload.message`` for structured lines). :class:`CloudLoggingReader` lists a job's entries
in timestamp order (``entries:list`` through ``Client.list_entries``, every page) and returns the
lines not returned before.

The cursor is the timestamp of the last entry returned and the ``insertId``\\ s returned at that
timestamp: the next read asks for ``timestamp>="<that timestamp>"`` and skips those ids, so no line
is returned twice or skipped, even when several entries share a timestamp. The first read asks for
``timestamp>="1970-01-01T00:00:00Z"``, which also keeps the client from adding its default
"last 24 hours" term. Limitation: Cloud Logging may make an entry visible a few seconds after
entries with later timestamps; such a late entry older than the cursor is not returned.

Endpoint: ``None`` is Google's (``logging.googleapis.com``, with the credentials given, or
Application Default Credentials when ``credentials`` is None); the Vertex AI emulator serves the same
REST API on its one endpoint (``VertexEmulator.endpoint_url``, exported as
``CLOUDTRAIN_VERTEX_API_ENDPOINT``), reached over REST (``_use_grpc=False``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

DEFAULT_PAGE_SIZE = 1000
_EPOCH = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class LogCursor:
    """Where a read stopped: the last entry's timestamp and the ids already returned at it."""

    timestamp: str
    insert_ids: frozenset[str] = field(default_factory=frozenset)


def _timestamp_text(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_text(payload: Any) -> str:
    """The text of an entry's payload: ``textPayload``, or ``jsonPayload.message``."""
    if isinstance(payload, str):
        return payload
    if isinstance(payload, dict):
        message = payload.get("message")
        if isinstance(message, str):
            return message
        import json

        return json.dumps(payload, sort_keys=True, default=str)
    return "" if payload is None else str(payload)


class CloudLoggingReader:
    """Reads a Vertex AI job's lines from Cloud Logging (see the module docstring).

    ``project``: the job's project; ``credentials``: google-auth credentials (anonymous ones for the
    emulator); ``endpoint``: ``http://127.0.0.1:PORT`` for the emulator, None for Google's;
    ``client``: a ready ``google.cloud.logging.Client`` instead (then the others are not used)."""

    def __init__(self, project: str, credentials: Any = None, endpoint: str | None = None, *,
                 page_size: int = DEFAULT_PAGE_SIZE, client: Any = None) -> None:
        self.project, self.credentials, self.endpoint, self.page_size = project, credentials, endpoint, page_size
        self._client = client

    def client(self) -> Any:
        if self._client is None:
            from google.cloud import logging as cloud_logging

            if self.endpoint:
                endpoint = self.endpoint if "://" in self.endpoint else f"http://{self.endpoint}"
                self._client = cloud_logging.Client(project=self.project, credentials=self.credentials, _use_grpc=False,
                                                    client_options={"api_endpoint": endpoint})
            else:
                self._client = cloud_logging.Client(project=self.project, credentials=self.credentials)
        return self._client

    @staticmethod
    def job_filter(job_id: str, since: str) -> str:
        return f'resource.type="ml_job" AND resource.labels.job_id="{job_id}" AND timestamp>="{since}"'

    def read(self, job_id: str, cursor: Any = None, *, prefix_tasks: bool = False) -> tuple[list[str], LogCursor | None]:
        """The job's lines after ``cursor`` (None: from the start), in order, and the cursor to pass
        next time. ``job_id``: the numeric id (the last part of ``projects/P/locations/L/customJobs/ID``).
        ``prefix_tasks``: put ``[workerpool1-0] `` before each replica's line (for jobs with several
        replicas); the service's own lines are never prefixed. Errors are the client's
        ``google.api_core.exceptions``."""
        from google.cloud.logging import ASCENDING

        job_id = job_id.rsplit("/", 1)[-1]
        since = cursor.timestamp if isinstance(cursor, LogCursor) else _EPOCH
        seen = set(cursor.insert_ids) if isinstance(cursor, LogCursor) else set()
        last = cursor if isinstance(cursor, LogCursor) else None
        lines: list[str] = []
        entries = self.client().list_entries(resource_names=[f"projects/{self.project}"], filter_=self.job_filter(job_id, since),
                                             order_by=ASCENDING, page_size=self.page_size)
        for entry in entries:
            stamp = _timestamp_text(entry.timestamp) if entry.timestamp else since
            if last is not None and stamp == last.timestamp and entry.insert_id in seen:
                continue
            if last is None or stamp != last.timestamp:
                seen = set()
            seen.add(entry.insert_id)
            last = LogCursor(stamp, frozenset(seen))
            task = ((entry.resource.labels or {}).get("task_name") if entry.resource is not None else None) or ""
            prefix = f"[{task}] " if prefix_tasks and task and task != "service" else ""
            text = entry_text(entry.payload).rstrip("\n")
            lines += [prefix + line for line in (text.split("\n") if text else [""])]
        return lines, last
