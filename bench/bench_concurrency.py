"""Concurrency on one job store: 20 CLI processes at once (local runs, submits to the SageMaker
emulator, list, status, cancel), then SQLite's integrity check and a count of the rows.

Prints: processes by verb and how they exited, lock errors or tracebacks seen (target: none),
rows expected and found (target: none lost), integrity check result, wall time.

    .venv/bin/python bench/bench_concurrency.py [--processes 20]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

SCRIPT = "from cloudtrain.runtime import context\nctx = context()\nctx.log_metric('score', 1.0)\nprint('done', flush=True)\n"
SPEC = "name: tiny\ncode: .\nentrypoint: train.py\nframework: {name: sklearn}\nresources: {cpus: 2}\nmax_runtime: 10m\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=20)
    options = parser.parse_args()
    from cloudtrain.emulators.sagemaker import SageMakerEmulator

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        project = root / "project"
        project.mkdir()
        (project / "train.py").write_text(SCRIPT)
        (project / "job.yaml").write_text(SPEC)
        home = root / "home"
        with SageMakerEmulator(root=root / "emulator") as emulator:
            env = {**os.environ, **emulator.environment(), "CLOUDTRAIN_HOME": str(home)}
            spec = str(project / "job.yaml")
            cli = [sys.executable, "-m", "cloudtrain"]
            subprocess.run([*cli, "run", spec, "-q"], env=env, capture_output=True, check=True)  # one job to follow
            verbs = ["run", "submit", "list", "status", "cancel"]
            argv = {"run": [*cli, "run", spec, "-q"], "submit": [*cli, "submit", spec, "--cloud", "sagemaker", "--json"],
                    "list": [*cli, "list", "--json"], "status": [*cli, "status", "tiny", "--json"],
                    "cancel": [*cli, "cancel", "tiny", "--json"]}
            plan = [verbs[i % len(verbs)] for i in range(options.processes)]
            started = time.perf_counter()
            processes = [(verb, subprocess.Popen(argv[verb], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
                         for verb in plan]
            results = [(verb, p.wait(timeout=600), p.stderr.read() if p.stderr else "") for verb, p in processes]
            elapsed = time.perf_counter() - started
            emulator.wait_idle()
        exits = Counter((verb, code) for verb, code, _ in results)
        troubles = [err for _, _, err in results if "locked" in err.lower() or "Traceback" in err]
        database = sqlite3.connect(home / "jobs.db")
        integrity = database.execute("PRAGMA integrity_check").fetchone()[0]
        rows = database.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        expected = 1 + sum(1 for verb, code, _ in results if verb in ("run", "submit") and code != 2)  # bad input: never recorded
    print(f"{options.processes} concurrent processes in {elapsed:.1f} s on one store")
    for (verb, code), count in sorted(exits.items()):
        print(f"  {verb:7s} exit {code:3d}: {count}")
    print(f"lock errors or tracebacks: {len(troubles)}")
    print(f"rows: {rows} found, {expected} expected (one per run or submission that was recorded)")
    print(f"integrity check: {integrity}")


if __name__ == "__main__":
    main()
