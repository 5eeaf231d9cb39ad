"""Sweep efficiency on the digits CNN: TPE with median pruning vs random search without pruning.

For each seed and method, a local sweep of ``examples/digits-cnn.yaml`` (tiny trials: few epochs,
a narrow network) runs trials one at a time; the figure is the total number of training epochs
the sweep spent (pruned trials count the epochs they ran) until a trial first reached the target
validation accuracy. A sweep that never reaches the target counts the epochs it ran, which favours
the method that runs fewer (the pruned one); so the summary also counts a miss as the whole budget
(trials x epochs, the same for both) and gives the ratio over the seeds where both reached the target.
Also printed: the best value each sweep found, and the default configuration's own validation
accuracy with the same epochs.

    .venv/bin/python bench/bench_sweep.py [--seeds 3] [--trials 8] [--epochs 4] [--image-size 4] [--target 0.9 [0.99 ...]]
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


def overrides(epochs: int, image_size: int = 0) -> dict:
    return {"hyperparameters.epochs": epochs, "hyperparameters.width": 8, "hyperparameters.image_size": image_size,
            "hyperparameters.patience": 100,
            "hyperparameters.warmup_steps": 10, "hyperparameters.augment": False, "checkpoint.enabled": False,
            "resources": {}}


def epochs_to_target(study, target: float) -> int | None:
    """Epochs spent (in trial order; a pruned trial counts the epochs it reported) until a trial's
    validation accuracy first reached ``target``; None when no trial reached it."""
    spent = 0
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        for step in sorted(trial.intermediate_values):
            spent += 1
            if trial.intermediate_values[step] >= target:
                return spent
    return None


def epochs_run(study) -> int:
    """Every epoch the sweep's trials reported."""
    return sum(len(trial.intermediate_values) for trial in study.get_trials(deepcopy=False))


def run_sweep(method: str, seed: int, trials: int, epochs: int, image_size: int) -> dict:
    from cloudtrain.api import Job
    from cloudtrain.runner import Runner
    from cloudtrain.sweeps.local import LocalSweep

    algorithm, stopping = ("tpe", "median") if method == "tpe+median" else ("random", "none")
    job = Job.from_file(REPO / "examples" / "digits-cnn.yaml", {**overrides(epochs, image_size), "sweep": sweep_section(algorithm, stopping, trials)})
    started = time.monotonic()
    sweep = LocalSweep(job._loaded, Runner(), seed=seed, study_name=f"bench-{method.replace('+', '-')}-{seed}")
    final = sweep.run()
    return {"method": method, "seed": seed, "study": sweep.study, "epochs_run": epochs_run(sweep.study),
            "best": final.best_value, "pruned": final.pruned, "seconds": time.monotonic() - started}


def default_accuracy(epochs: int, image_size: int) -> float | None:
    from cloudtrain.api import Job

    run = Job.from_file(REPO / "examples" / "digits-cnn.yaml", overrides(epochs, image_size)).run()
    return run.metrics.get("val_accuracy")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=0,
                        help="resize the 8x8 digits to this size (4: a harder task, where fewer configurations reach a high target)")
    parser.add_argument("--target", type=float, nargs="+", default=[0.9],
                        help="one or more target validation accuracies, each scored from the same sweeps")
    options = parser.parse_args()
    os.environ.setdefault("CLOUDTRAIN_HOME", tempfile.mkdtemp(prefix="bench-sweep-"))
    os.environ.setdefault("CLOUDTRAIN_RUNS_DIR", str(Path(os.environ["CLOUDTRAIN_HOME"]) / "runs"))
    baseline = default_accuracy(options.epochs, options.image_size)
    print(f"default configuration, {options.epochs} epochs, image size {options.image_size or 8}: val_accuracy {baseline}", flush=True)
    rows = []
    for seed in range(options.seeds):
        for method in ("tpe+median", "random"):
            row = run_sweep(method, seed, options.trials, options.epochs, options.image_size)
            rows.append(row)
            reached = ", ".join(f">={t}: {epochs_to_target(row['study'], t)}" for t in options.target)
            print(f"seed {seed} {method:10s} epochs to val_accuracy {reached} (of {row['epochs_run']} run), "
                  f"best {row['best']:.4f}, pruned {row['pruned']}, {row['seconds']:.0f} s", flush=True)
    budget = options.trials * options.epochs
    print("\nsummary: epochs to the target; a sweep that never reached it counts every epoch it ran, marked +")
    print(f"(that favours the method that runs fewer epochs; so also: a miss counted as the whole budget, {budget} epochs, "
          "and the seeds where both reached the target)")
    for target in options.target:
        means, penalized, reached_by = {}, {}, {}
        for method in ("tpe+median", "random"):
            mine = [r for r in rows if r["method"] == method]
            reached = [epochs_to_target(r["study"], target) for r in mine]
            reached_by[method] = reached
            figures = [needed if needed is not None else r["epochs_run"] for needed, r in zip(reached, mine)]
            shown = [str(needed) if needed is not None else f"{r['epochs_run']}+" for needed, r in zip(reached, mine)]
            means[method] = statistics.mean(figures)
            penalized[method] = statistics.mean(needed if needed is not None else budget for needed in reached)
            print(f"  target {target}: {method:10s} mean {means[method]:.1f}  per seed [{', '.join(shown)}]  "
                  f"missed {reached.count(None)}/{len(mine)}  best {max(r['best'] for r in mine):.4f}")
        both = [(a, b) for a, b in zip(reached_by["tpe+median"], reached_by["random"]) if a is not None and b is not None]
        both_ratio = f"{sum(a for a, _ in both) / sum(b for _, b in both):.2f} over {len(both)} seeds" if both else "no seed"
        print(f"  target {target}: ratio tpe+median / random {means['tpe+median'] / means['random']:.2f} (goal: 0.5 or less); "
              f"a miss as the whole budget: {penalized['tpe+median'] / penalized['random']:.2f}; "
              f"where both reached it: {both_ratio}")
    spent = {method: statistics.mean(r["epochs_run"] for r in rows if r["method"] == method) for method in ("tpe+median", "random")}
    print(f"  whole sweeps ({options.trials} trials): tpe+median ran {spent['tpe+median']:.1f} epochs, random "
          f"{spent['random']:.1f} (ratio {spent['tpe+median'] / spent['random']:.2f}); best values above")
    sys.exit(0)


if __name__ == "__main__":
    main()
