"""Progress of long transfers (the code bundle and local inputs uploaded at submit).

Backends wrap each upload in :func:`transfer`, which hands them a callback taking the bytes just
sent. Nothing is shown unless a reporter is installed: the CLI installs :func:`rich_reporter` on a
terminal (never under ``--json`` or when stderr is not a terminal); library users may install
their own with :func:`set_reporter` (a callable ``(label, total_bytes)`` returning a context
manager that yields the callback).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, ContextManager, Iterator

Advance = Callable[[int], None]
Reporter = Callable[[str, int], ContextManager[Advance]]

#: Smaller transfers end before a bar would be drawn: no bar.
MIN_BYTES = 1 << 20

_reporter: Reporter | None = None


def set_reporter(reporter: Reporter | None) -> Reporter | None:
    """Install ``reporter`` (None: none); returns the one it replaces."""
    global _reporter
    previous, _reporter = _reporter, reporter
    return previous


@contextlib.contextmanager
def transfer(label: str, total: int) -> Iterator[Advance]:
    """A callback for the bytes of one transfer of ``total`` bytes, reported if a reporter is set."""
    if _reporter is None or total < MIN_BYTES:
        yield lambda sent: None
        return
    with _reporter(label, total) as advance:
        yield advance


def rich_reporter(console: Any) -> Reporter:
    """A rich progress bar per transfer (bytes, rate, time left) on ``console``, removed when done."""

    @contextlib.contextmanager
    def report(label: str, total: int) -> Iterator[Advance]:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda sent: bar.advance(task, sent)

    return report


class ReadCounter:
    """A binary file whose reads are reported to ``advance`` (for SDKs that read a file object
    without a progress callback); bytes read again after a rewind (a retried upload) count once."""

    def __init__(self, handle: Any, advance: Advance) -> None:
        self._handle, self._advance = handle, advance
        self._high = 0
        self._lock = threading.Lock()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        with self._lock:
            position = self._handle.tell()
            if position > self._high:
                self._advance(position - self._high)
                self._high = position
        return data

    def __getattr__(self, name: str) -> Any:  # seek, tell, name, fileno...
        return getattr(self._handle, name)
