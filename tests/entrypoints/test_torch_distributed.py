"""Two processes under torchrun (gloo on CPU) train like one; only rank 0 writes."""

from __future__ import annotations

import json
from collections import Counter

HPS = {"epochs": 4, "width": 16, "batch_size": 64, "lr": 0.005, "warmup_steps": 10,
       "checkpoint_every_steps": 10, "log_every_steps": 5}


def test_two_processes_match_one_and_only_rank_0_writes(job):
    single = job(HPS)
    single.run("train_cnn.py")
    double = job(HPS)
    output = double.run("train_cnn.py", processes=2)

    one, two = single.summary(), double.summary()
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["optimizer_steps"] == one["optimizer_steps"]  # batch_size is the global batch
    assert abs(two["test_accuracy"] - one["test_accuracy"]) <= 0.05 and two["test_accuracy"] >= 0.85
    assert abs(two["best_val_loss"] - one["best_val_loss"]) <= 0.15

    records = [json.loads(line) for line in (double.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert not [key for key, n in Counter((r["name"], r.get("step")) for r in records).items() if n > 1]
    saved_lines = [line for line in output.splitlines() if line.startswith("checkpoint saved")]
    assert len(saved_lines) == len(set(saved_lines)) >= 4
    assert output.count("summary: ") == 1
    assert double.checkpoint_steps() == single.checkpoint_steps()
    assert not list(double.checkpoint_dir.glob(".*tmp*"))
    assert (double.run_dir / "model" / "model.pt").exists()
