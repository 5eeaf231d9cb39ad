"""Figures for the digits CNN example: test accuracy and wall time, run as a user would.

    .venv/bin/python bench/bench_cnn.py [--seeds 0 1 2] [--direct]

Runs ``cloudtrain run examples/digits-cnn.yaml --json`` when the CLI is installed, else the
entrypoint directly under the local executor's environment contract (``--direct`` forces that).
Target: test accuracy >= 0.98 within 60 s of wall time on a 2-core CPU. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "examples" / "digits-cnn.yaml"


def find_key(value, key):
    """The first ``key`` in nested JSON ``value``, or None."""
    if isinstance(value, dict):
        if key in value:
            return value[key]
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            found = find_key(item, key)
            if found is not None:
                return found
    return None


def run_with_cli(seed: int) -> float | None:
    cli = shutil.which("cloudtrain") or str(Path(sys.executable).parent / "cloudtrain")
    if not Path(cli).exists():
        return None
    done = subprocess.run([cli, "run", str(SPEC), "--json", "--set", f"hyperparameters.seed={seed}"],
                          capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        print(f"  cli failed ({done.returncode}): {done.stderr.strip()[-300:]}; running directly")
        return None
    for line in reversed(done.stdout.splitlines()):
        try:
            accuracy = find_key(json.loads(line), "test_accuracy")
        except json.JSONDecodeError:
            continue
        if accuracy is not None:
            return float(accuracy)
    document = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return find_key(document, "test_accuracy")


def run_directly(seed: int) -> float:
    from cloudtrain.specfile import load_spec

    spec = load_spec(str(SPEC)).spec
    with tempfile.TemporaryDirectory() as run_dir:
        env = {**os.environ, "CLOUDTRAIN_RUN_DIR": run_dir, "CLOUDTRAIN_CHECKPOINT_DIR": f"{run_dir}/checkpoints",
               "CLOUDTRAIN_HPS": json.dumps({**spec.hyperparameters, "seed": seed})}
        subprocess.run([sys.executable, str(Path(spec.code) / spec.entrypoint)], cwd=spec.code, env=env,
                       check=True, stdout=subprocess.DEVNULL)
        return json.loads((Path(run_dir) / "output" / "summary.json").read_text())["test_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--direct", action="store_true", help="skip the CLI")
    options = parser.parse_args()
    print(f"digits CNN ({SPEC.relative_to(REPO)}), {os.cpu_count()} CPU cores")
    for seed in options.seeds:
        started = time.perf_counter()
        accuracy, how = (None if options.direct else run_with_cli(seed)), "cloudtrain run"
        if accuracy is None:
            started, how = time.perf_counter(), "entrypoint directly"
            accuracy = run_directly(seed)
        wall = time.perf_counter() - started
        verdict = "meets" if accuracy >= 0.98 and wall <= 60 else "MISSES"
        print(f"seed {seed}: test_accuracy {accuracy:.4f}, wall {wall:.1f} s ({how}); {verdict} the target (>= 0.98 in <= 60 s)")


if __name__ == "__main__":
    main()
