"""Helpers for the bench scripts: wall-clock timing of whole commands."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def time_command(argv: list[str], runs: int = 7, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, float]:
    """(median, best) wall seconds of ``argv`` over ``runs`` runs, after one warm-up run."""
    full_env = {**os.environ, **(env or {})}
    subprocess.run(argv, capture_output=True, env=full_env, cwd=cwd, check=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=full_env, cwd=cwd, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)
