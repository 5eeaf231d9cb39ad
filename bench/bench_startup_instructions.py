"""Start-up cost in instructions: `cloudtrain --help` and `cloudtrain estimate` of the GPU example,
counted by valgrind's callgrind, here and at an earlier commit (default: the one before the backend
seam). Instruction counts do not move with the machine's load, as wall-clock times do (see
bench_cli_startup.py for those), so a change of a few percent shows.

    .venv/bin/python bench/bench_startup_instructions.py [--against e97a208]

Each command runs twice and the second count is taken (the first compiles bytecode and fills the
catalog cache); the earlier commit is checked out into a temporary git worktree and run with this
environment's Python, its own examples/digits-cnn.yaml and ``PYTHONPATH`` pointing at it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import REPO

BEFORE_SEAM = "e97a208"


def instructions(argv: list[str], cwd: Path, env: dict[str, str]) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m", "cloudtrain", *argv]
    counts = []
    for _ in range(2):
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
        if not found:
            raise SystemExit(f"callgrind printed no count for {' '.join(argv)}:\n{done.stderr[-2000:]}")
        counts.append(int(found.group(1).replace(",", "")))
    return counts[-1]


def measure(root: Path, home: str, pythonpath: str | None) -> dict[str, int]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env.update(CLOUDTRAIN_HOME=home, PYTHONHASHSEED="0", **({"PYTHONPATH": pythonpath} if pythonpath else {}))
    return {"--help": instructions(["--help"], root, env),
            "estimate": instructions(["estimate", "examples/digits-cnn.yaml"], root, env)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", default=BEFORE_SEAM, help="the commit to compare with")
    options = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind): no instruction counts")
        return
    with tempfile.TemporaryDirectory() as scratch:
        worktree = Path(scratch) / "earlier"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), options.against], cwd=REPO, check=True, capture_output=True)
        try:
            here = measure(REPO, str(Path(scratch) / "home-here"), None)
            earlier = measure(worktree, str(Path(scratch) / "home-earlier"), str(worktree))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=REPO, capture_output=True)
    for label in here:
        change = (here[label] - earlier[label]) / earlier[label] * 100
        print(f"cloudtrain {label:9s} here {here[label] / 1e6:8.1f} M instructions   at {options.against} "
              f"{earlier[label] / 1e6:8.1f} M   {change:+.1f}%")


if __name__ == "__main__":
    main()
