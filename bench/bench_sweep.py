"""Sweep efficiency on the digits CNN: TPE with median pruning vs random search without pruning.

For each seed and method, a local sweep of ``examples/digits-cnn.yaml`` (tiny trials: few epochs,
a narrow network) runs trials one at a time; the figure is the total number of training epochs
the sweep spent (pruned trials count the epochs they ran) until a trial first reached the target
validation accuracy. Also printed: the best value each sweep found, and the default
configuration's own validation accuracy with the same epochs.

    .venv/bin/python bench/bench_sweep.py [--seeds 3] [--trials 8] [--epochs 4] [--target 0.9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sweep_section(algorithm: str, early_stopping: str, trials: int) -> dict:
    return {"objective": {"metric": "val_accuracy", "goal": "maximize"},
            "parameters": {"lr": {"type": "float", "min": 1e-4, "max": 0.3, "scale": "log"},
                           "batch_size": {"type": "categorical", "values": [16, 32, 64, 128]},
                           "weight_decay": {"type": "float", "min": 1e-4, "max": 0.3, "scale": "log"}},
            "algorithm": algorithm, "early_stopping": early_stopping, "max_trials": trials, "max_parallel": 1}


def overrides(epochs: int) -> dict:
    return {"hyperparameters.epochs": epochs, "hyperparameters.width": 8, "hyperparameters.patience": 100,
            "hyperparameters.warmup_steps": 10, "hyperparameters.augment": False, "checkpoint.enabled": False,
            "resources": {}}


def epochs_to_target(study, target: float) -> tuple[int | None, int]:
    """Epochs spent (in trial order) until a trial's validation accuracy first reached ``target``."""
    spent = 0
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        for step in sorted(trial.intermediate_values):
            spent += 1
            if trial.intermediate_values[step] >= target:
                return spent, spent
    return None, spent


def run_sweep(method: str, seed: int, trials: int, epochs: int, target: float) -> dict:
    from cloudtrain.api import Job
    from cloudtrain.runner import Runner
    from cloudtrain.sweeps.local import LocalSweep

    algorithm, stopping = ("tpe", "median") if method == "tpe+median" else ("random", "none")
    job = Job.from_file(REPO / "examples" / "digits-cnn.yaml", {**overrides(epochs), "sweep": sweep_section(algorithm, stopping, trials)})
    started = time.monotonic()
    sweep = LocalSweep(job._loaded, Runner(), seed=seed, study_name=f"bench-{method.replace('+', '-')}-{seed}")
    final = sweep.run()
    needed, spent = epochs_to_target(sweep.study, target)
    return {"method": method, "seed": seed, "epochs_to_target": needed, "epochs_total": spent,
            "best": final.best_value, "pruned": final.pruned, "seconds": time.monotonic() - started}


def default_accuracy(epochs: int) -> float | None:
    from cloudtrain.api import Job

    run = Job.from_file(REPO / "examples" / "digits-cnn.yaml", overrides(epochs)).run()
    return run.metrics.get("val_accuracy")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--target", type=float, default=0.9)
    options = parser.parse_args()
    os.environ.setdefault("CLOUDTRAIN_HOME", tempfile.mkdtemp(prefix="bench-sweep-"))
    os.environ.setdefault("CLOUDTRAIN_RUNS_DIR", str(Path(os.environ["CLOUDTRAIN_HOME"]) / "runs"))
    baseline = default_accuracy(options.epochs)
    print(f"default configuration, {options.epochs} epochs: val_accuracy {baseline}", flush=True)
    rows = []
    for seed in range(options.seeds):
        for method in ("tpe+median", "random"):
            row = run_sweep(method, seed, options.trials, options.epochs, options.target)
            rows.append(row)
            print(f"seed {seed} {method:10s} epochs to val_accuracy>={options.target}: {row['epochs_to_target']} "
                  f"(of {row['epochs_total']} run), best {row['best']:.4f}, pruned {row['pruned']}, {row['seconds']:.0f} s", flush=True)
    print("\nsummary (epochs to target; a sweep that never reached it counts all its epochs, marked +)")
    for method in ("tpe+median", "random"):
        mine = [r for r in rows if r["method"] == method]
        figures = [r["epochs_to_target"] or r["epochs_total"] for r in mine]
        missed = sum(r["epochs_to_target"] is None for r in mine)
        print(f"  {method:10s} mean {statistics.mean(figures):.1f}  per seed {figures}  missed {missed}/{len(mine)}  "
              f"best {max(r['best'] for r in mine):.4f}")
    tpe = statistics.mean(r["epochs_to_target"] or r["epochs_total"] for r in rows if r["method"] == "tpe+median")
    rnd = statistics.mean(r["epochs_to_target"] or r["epochs_total"] for r in rows if r["method"] == "random")
    print(f"  ratio tpe+median / random: {tpe / rnd:.2f} (goal: 0.5 or less)")
    sys.exit(0)


if __name__ == "__main__":
    main()
