"""The backend conformance suite, shipped with cloudtrain so a plugin's authors run it on their
backend (as fsspec ships its abstract filesystem tests).

It is a set of pytest test functions taking one fixture, ``backend``, that yields a
:class:`Backend`: the backend's name, a :class:`~cloudtrain.runner.Runner` wired to it (its store,
its provider instance, talking to an emulator or a scratch directory), ``--set`` overrides that
point a spec at it, and optional hooks of its emulator (how many jobs exist on the "cloud", fault
injection), and what it refuses at plan time with the message's start. The suite writes its own
small job projects in temporary directories; it needs nothing from cloudtrain's repository.

Running it on your backend, in a test module of your package (pytest collects the imported tests)::

    # tests/test_conformance.py
    import pytest
    from cloudtrain.runner import Runner
    from cloudtrain.store import JobStore
    from cloudtrain.testing import *  # noqa: F401,F403 - the suite's tests and Backend

    from mybackend import MyProvider

    @pytest.fixture
    def backend(tmp_path):
        runner = Runner(store=JobStore(tmp_path / "jobs.db"), providers={"mine": MyProvider()})
        yield Backend(name="mine", runner=runner, overrides=[f"mine.root={tmp_path / 'cloud'}"],
                      created_jobs=lambda: len(list((tmp_path / "cloud").iterdir())),
                      unsupported=(["spot.enabled=true"], "spot.enabled: the mine backend has no spot capacity"))

Then ``pytest tests/test_conformance.py``. For pytest's detailed assertion messages inside the
suite, call ``pytest.register_assert_rewrite("cloudtrain.testing")`` in your ``conftest.py``
before the import. What each test needs and skips without:

- every test: ``name``, ``runner``, ``overrides``;
- ``test_unsupported_feature_is_refused_at_plan_time``: ``unsupported`` (skipped if unset);
- ``test_faults_create_exactly_one_job``: ``inject`` and ``created_jobs`` (skipped without);
- ``test_fault_matrix``: ``faults`` (an emulator's :class:`~cloudtrain.emulators.common.Faults`)
  and ``fault_steps``, the emulator's operation for each submit step (a step without one is skipped);
- the two resume tests: ``created_jobs`` (a backend with a create call to resume; skipped without).
  The resume test keeps ``spot`` when the backend's capabilities have spot capacity.

This package imports pytest; it is imported only by tests, never by ``import cloudtrain``.
"""

from __future__ import annotations

from cloudtrain.testing.backend import Backend, InterruptedSubmission
from cloudtrain.testing.conformance import (test_an_interrupted_submission_is_resumed_into_exactly_one_job,
                                            test_cancel_a_long_job, test_failing_entrypoint_is_failed_with_its_error,
                                            test_fault_matrix, test_faults_create_exactly_one_job,
                                            test_resume_keeps_spot_and_refuses_changed_code_or_spec,
                                            test_succeeding_job_has_logs_metrics_and_model,
                                            test_unsupported_feature_is_refused_at_plan_time)
from cloudtrain.testing.projects import FAILS, SUCCEEDS, WAITS_FOR_SIGTERM, write_project

TESTS = [
    "test_succeeding_job_has_logs_metrics_and_model",
    "test_cancel_a_long_job",
    "test_failing_entrypoint_is_failed_with_its_error",
    "test_unsupported_feature_is_refused_at_plan_time",
    "test_faults_create_exactly_one_job",
    "test_fault_matrix",
    "test_an_interrupted_submission_is_resumed_into_exactly_one_job",
    "test_resume_keeps_spot_and_refuses_changed_code_or_spec",
]

__all__ = ["Backend", "InterruptedSubmission", "write_project", "SUCCEEDS", "WAITS_FOR_SIGTERM", "FAILS", *TESTS]
