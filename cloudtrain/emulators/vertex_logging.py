"""Cloud Logging as the Vertex AI emulator serves it: the log entries of its jobs, and the v2 REST
method that reads them, ``POST /v2/entries:list``, on the emulator's one HTTP endpoint.

Vertex AI sends a custom job's output to Cloud Logging: one entry per line, with
``resource.type="ml_job"`` and ``resource.labels`` ``job_id`` (the numeric id), ``project_id`` and
``task_name`` (``workerpool0-0``..., or ``service`` for Vertex's own messages), ``logName``
``projects/P/logs/workerpool0-0`` (``projects/P/logs/ml.googleapis.com%2F<job id>`` for ``service``)
and the line as ``textPayload``. The emulator cannot tell stdout from stderr (the local executor
merges them), so replica lines are ``severity`` INFO; an emulator error is ERROR.

``entries:list`` takes ``resourceNames`` (``projects/P``), ``filter``, ``orderBy`` (``timestamp asc``,
the default, or ``timestamp desc``), ``pageSize`` (at most 1000) and ``pageToken``, and answers
``{"entries": [...], "nextPageToken": ...}``. Filters: terms joined by ``AND``, each
``FIELD OP VALUE`` with OP one of ``= != > >= < <=`` and FIELD one of ``resource.type``,
``resource.labels.KEY``, ``logName``, ``severity``, ``insertId``, ``timestamp``, ``labels.KEY``;
values quoted or bare; timestamps compared as instants (RFC 3339, ``Z`` or an offset, as
google-cloud-logging writes its default ``timestamp>=`` term). Anything else is refused with
INVALID_ARGUMENT rather than answered wrongly. Entries are kept in memory, in the order written;
their timestamps strictly increase, so that order is the timestamp order.
"""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

MAX_PAGE_SIZE = 1000
_TERM = re.compile(r'^\s*(?P<field>[A-Za-z_][A-Za-z0-9_.\-/]*)\s*(?P<op>!=|>=|<=|=|>|<)\s*(?P<value>"(?:[^"\\]|\\.)*"|\S+)\s*$')
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$")
_SEVERITIES = ["DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"]


class InvalidRequest(ValueError):
    """A request Cloud Logging refuses with INVALID_ARGUMENT (HTTP 400)."""


def format_timestamp(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    match = _TIMESTAMP.match(text.strip())
    if not match:
        raise InvalidRequest(f"invalid timestamp {text!r}: expected RFC 3339, e.g. 2024-01-01T00:00:00Z")
    base, fraction, zone = match.groups()
    moment = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(microsecond=int((fraction or "0")[:6].ljust(6, "0")))
    offset = timedelta(0)
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return (moment - offset).replace(tzinfo=timezone.utc)


class LogEntries:
    """The emulator's Cloud Logging entries (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[tuple[datetime, dict[str, Any]]] = []
        self._last = datetime.min.replace(tzinfo=timezone.utc)

    def write(self, project: str, job_id: str, task_name: str, text: str, severity: str = "INFO") -> None:
        """Record one line of job ``job_id`` as Vertex AI would (see the module docstring)."""
        log_id = f"ml.googleapis.com/{job_id}" if task_name == "service" else task_name
        with self._lock:
            stamp = max(datetime.now(timezone.utc), self._last + timedelta(microseconds=1))
            self._last = stamp
            entry = {
                "logName": f"projects/{project}/logs/{quote(log_id, safe='')}",
                "resource": {"type": "ml_job", "labels": {"job_id": job_id, "project_id": project, "task_name": task_name}},
                "textPayload": text, "timestamp": format_timestamp(stamp), "receiveTimestamp": format_timestamp(stamp),
                "insertId": f"{len(self._entries) + 1:016x}", "severity": severity,
                "labels": {"ml.googleapis.com/job_id/log_area": "root"} if task_name != "service" else {},
            }
            self._entries.append((stamp, entry))

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [entry for _, entry in self._entries]

    def list(self, body: dict[str, Any]) -> dict[str, Any]:
        """``entries:list``: one page of the entries that match (see the module docstring)."""
        projects = set()
        for name in body.get("resourceNames") or []:
            match = re.fullmatch(r"projects/([^/]+)", str(name))
            if not match:
                raise InvalidRequest(f"resourceNames: the emulator reads project logs (projects/P), not {name!r}")
            projects.add(match.group(1))
        if not projects:
            raise InvalidRequest("resourceNames is required, e.g. [\"projects/my-project\"]")
        terms = parse_filter(str(body.get("filter") or ""))
        order = str(body.get("orderBy") or "timestamp asc").strip().lower()
        if order not in ("timestamp asc", "timestamp desc", "timestamp"):
            raise InvalidRequest(f"orderBy {order!r}: use \"timestamp asc\" or \"timestamp desc\"")
        size = min(int(body.get("pageSize") or MAX_PAGE_SIZE), MAX_PAGE_SIZE)
        if size <= 0:
            raise InvalidRequest("pageSize must be positive")
        token = str(body.get("pageToken") or "")
        if token and not token.isdigit():
            raise InvalidRequest(f"invalid pageToken {token!r}")
        start = int(token or 0)
        with self._lock:
            matching = [entry for stamp, entry in self._entries
                        if entry["resource"]["labels"]["project_id"] in projects and all(term(entry, stamp) for term in terms)]
        if order == "timestamp desc":
            matching.reverse()
        answer: dict[str, Any] = {"entries": matching[start:start + size]}
        if start + size < len(matching):
            answer["nextPageToken"] = str(start + size)
        return answer


def parse_filter(text: str) -> list[Any]:
    """The filter's terms as predicates ``(entry, timestamp) -> bool``."""
    if not text.strip():
        return []
    terms = []
    for part in re.split(r"\s+AND\s+", text.strip()):
        match = _TERM.match(part.strip().strip("()").strip())
        if not match:
            raise InvalidRequest(f"unsupported filter term {part!r}: the emulator supports FIELD OP VALUE terms joined by AND")
        field, op, value = match.group("field"), match.group("op"), match.group("value")
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        terms.append(_term(field, op, value))
    return terms


def _compare(left: Any, op: str, right: Any) -> bool:
    return {"=": left == right, "!=": left != right, ">": left > right, ">=": left >= right,
            "<": left < right, "<=": left <= right}[op]


def _term(field: str, op: str, value: str) -> Any:
    if field == "timestamp":
        moment = parse_timestamp(value)
        return lambda entry, stamp: _compare(stamp, op, moment)
    if field == "severity":
        rank = _SEVERITIES.index(value.upper()) if value.upper() in _SEVERITIES else None
        if rank is None:
            raise InvalidRequest(f"unknown severity {value!r}")
        return lambda entry, stamp: _compare(_SEVERITIES.index(entry["severity"]), op, rank)
    if field in ("resource.type", "logName", "insertId"):
        path = field.split(".")
    elif field.startswith(("resource.labels.", "labels.")):
        head, _, key = field.partition("labels.")
        path = ([head.rstrip(".")] if head else []) + ["labels", key]
    else:
        raise InvalidRequest(f"unsupported filter field {field!r}")

    def lookup(entry: dict[str, Any]) -> Any:
        value_at: Any = entry
        for key in path:
            value_at = value_at.get(key) if isinstance(value_at, dict) else None
        return value_at

    def matches(entry: dict[str, Any], stamp: datetime) -> bool:
        found = lookup(entry)
        return found is not None and _compare(str(found), op, value)

    return matches
