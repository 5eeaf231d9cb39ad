"""Helpers to run the PyTorch entrypoints as the local executor does: a subprocess with the
``CLOUDTRAIN_*`` environment contract, in a temporary run directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINTS = REPO / "entrypoints"
sys.path.insert(0, str(ENTRYPOINTS))  # so tests can import train_cnn, torch_common...


@dataclass
class Job:
    """One run directory and the environment a script in it sees."""

    run_dir: Path
    hps: dict
    inputs: dict | None = None
    checkpoints: bool = True

    def env(self, threads: int | None = None) -> dict[str, str]:
        env = {**os.environ, "CLOUDTRAIN_RUN_DIR": str(self.run_dir),
               "CLOUDTRAIN_MODEL_DIR": str(self.run_dir / "model"),
               "CLOUDTRAIN_OUTPUT_DIR": str(self.run_dir / "output"),
               "CLOUDTRAIN_METRICS_FILE": str(self.run_dir / "metrics.jsonl"),
               "CLOUDTRAIN_INPUTS": json.dumps({k: str(v) for k, v in (self.inputs or {}).items()}),
               "CLOUDTRAIN_HPS": json.dumps(self.hps), "PYTHONUNBUFFERED": "1"}
        env.pop("CLOUDTRAIN_CHECKPOINT_DIR", None)
        if self.checkpoints:
            env["CLOUDTRAIN_CHECKPOINT_DIR"] = str(self.checkpoint_dir)
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        return env

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def start(self, script: str, processes: int = 1) -> subprocess.Popen:
        """Start ``script`` (under torchrun when ``processes`` > 1), output merged into stdout."""
        command = [sys.executable, str(ENTRYPOINTS / script)]
        if processes > 1:
            torchrun = Path(sys.executable).parent / "torchrun"
            command = [str(torchrun), "--standalone", "--nproc-per-node", str(processes), str(ENTRYPOINTS / script)]
        return subprocess.Popen(command, cwd=REPO, env=self.env(threads=1 if processes > 1 else None),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def run(self, script: str, processes: int = 1, expect: int = 0) -> str:
        """Run ``script`` to the end; its output. Fails unless it exits with ``expect``."""
        process = self.start(script, processes)
        output, _ = process.communicate(timeout=240)
        assert process.returncode == expect, output[-4000:]
        return output

    def summary(self) -> dict:
        return json.loads((self.run_dir / "output" / "summary.json").read_text())

    def metrics(self, name: str) -> list[dict]:
        lines = (self.run_dir / "metrics.jsonl").read_text().splitlines()
        return [record for record in map(json.loads, lines) if record["name"] == name]

    def checkpoint_steps(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.checkpoint_dir.glob("step-*.pt"))


def read_until(process: subprocess.Popen, pattern: str) -> tuple[re.Match, list[str]]:
    """Read the process's output line by line until one matches ``pattern``; the match and the
    lines read. Fails if the process ends first."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        match = re.search(pattern, line)
        if match:
            return match, lines
    process.wait()
    pytest.fail(f"process ended (exit {process.returncode}) before printing {pattern!r}:\n" + "".join(lines[-40:]))


