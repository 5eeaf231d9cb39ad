"""The fault matrix: for each backend (the three cloud emulators and the local executor) and each
step of a submission (staging upload, create, first status), a fault injected once: throttling, a
5xx, the connection dropped before the call reached the service, or after it took effect. A cell
is "ok" when, after what the user is told to do, exactly one cloud job exists and the store agrees
with the cloud (the conformance suite's ``test_fault_matrix``); "n/a" when the backend has no such
call. The client killed between recording and creating is the conformance suite's interrupted-
submission tests, summarised in the last column.

    .venv/bin/python bench/fault_matrix.py      # runs the tests (a few minutes), prints the table
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ("sagemaker", "azureml", "vertex", "local")
STEPS = ("upload", "create", "status")
KINDS = ("throttle", "server_error", "drop_before", "drop_after")


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "matrix.xml"
        tests = ["tests/providers/test_conformance.py", "-k", "fault_matrix or interrupted_submission"]
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *tests],
                       cwd=REPO, capture_output=True, text=True)
        cells: dict[tuple[str, str, str], str] = {}
        killed: dict[str, list[str]] = defaultdict(list)
        for case in ElementTree.parse(report).getroot().iter("testcase"):
            outcome = "n/a" if case.find("skipped") is not None else "FAIL" if case.find("failure") is not None or case.find("error") is not None else "ok"
            params = re.search(r"\[(.*)\]", case.get("name", ""))
            if params is None:
                continue
            parts = params.group(1).split("-")
            if case.get("name", "").startswith("test_fault_matrix"):
                backend, step, kind = parts[0], parts[1], "-".join(parts[2:])
                cells[(backend, step, kind)] = outcome
            else:
                killed[parts[0]].append(outcome)
    width = 14
    print(f"{'backend':10s} {'step':8s} " + " ".join(f"{k:>{width}s}" for k in KINDS) + f" {'client killed':>{width}s}")
    for backend in BACKENDS:
        for index, step in enumerate(STEPS):
            row = [cells.get((backend, step, kind), "-") for kind in KINDS]
            kills = killed.get(backend, [])
            summary = ("ok" if kills and all(k == "ok" for k in kills) else "n/a" if all(k == "n/a" for k in kills) else "FAIL") \
                if index == 1 and kills else ""
            print(f"{backend:10s} {step:8s} " + " ".join(f"{c:>{width}s}" for c in row) + f" {summary:>{width}s}")
    failed = sum(v == "FAIL" for v in cells.values())
    print(f"\n{sum(v == 'ok' for v in cells.values())} ok, {failed} failed, {sum(v == 'n/a' for v in cells.values())} n/a")


if __name__ == "__main__":
    main()
