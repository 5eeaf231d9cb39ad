"""Fixtures for the entrypoint tests; the helpers live in entrypoint_jobs.py."""

from __future__ import annotations

import pytest

from entrypoint_jobs import Job


@pytest.fixture
def job(tmp_path):
    """A factory of jobs in fresh run directories under tmp_path."""
    counter = iter(range(1000))

    def make(hps: dict, **kwargs) -> Job:
        return Job(tmp_path / f"run{next(counter)}", hps, **kwargs)

    return make
