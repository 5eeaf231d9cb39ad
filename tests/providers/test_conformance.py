"""The packaged conformance suite (:mod:`cloudtrain.testing`) on every built-in backend, each with
its emulator (the ``backend`` fixture of conftest.py)."""

from cloudtrain.testing import *  # noqa: F401,F403 - the suite's tests
