"""Training throughput of the PyTorch entrypoints on CPU against a minimal hand-written loop.

    .venv/bin/python bench/bench_throughput.py [--epochs 4] [--repeats 3] [--threads 1]

Each entrypoint runs as a subprocess with its example's hyperparameters (checkpoints on, logging,
augmentation, clipping, schedule: everything a user gets) and reports its own throughput per epoch
(``train_samples_per_second`` / ``train_tokens_per_second``). The minimal loop trains the same
model on the same data and batch size with plain AdamW and nothing else, also in a fresh
subprocess. Each run reports its best epoch after the first; the runs alternate (entrypoint,
minimal, entrypoint...) and each side's figure is its best run of ``--repeats`` (the one least
disturbed by other load).

Both sides run with ``--threads`` intra-op threads (default 1). On the 2-core development
machine, the minimal loop of the tiny digits CNN measured between 6,200 and 9,200 samples/s from
one process to the next with 2 threads (how much the second thread helps on 8x8 images depends on
scheduling) and within about 2 % with one, so one thread measures what the features cost;
``--threads 2`` shows the other case.
Target: the entrypoint within 10 % of the minimal loop.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "entrypoints"))

import train_cnn  # noqa: E402
import train_transformer  # noqa: E402
from cloudtrain.specfile import load_spec  # noqa: E402


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def script_throughput(example: str, overrides: dict, threads: int) -> float:
    """Best per-epoch throughput the entrypoint reports, after its first epoch."""
    spec = load_spec(str(REPO / "examples" / example)).spec
    with tempfile.TemporaryDirectory() as run_dir:
        env = {**_env(threads), "CLOUDTRAIN_RUN_DIR": run_dir, "CLOUDTRAIN_CHECKPOINT_DIR": f"{run_dir}/checkpoints",
               "CLOUDTRAIN_HPS": json.dumps({**spec.hyperparameters, "patience": 0, **overrides})}
        subprocess.run([sys.executable, str(REPO / spec.entrypoint)], cwd=REPO, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        records = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    values = [r["value"] for r in records if r["name"].startswith("train_") and r["name"].endswith("_per_second")]
    return max(values[1:])


def minimal_throughput(model: torch.nn.Module, dataset, batch_size: int, epochs: int, items_per_sample: int) -> float:
    """Best per-epoch throughput of the plainest loop (shuffle, forward, backward, AdamW), after
    its first epoch."""
    torch.manual_seed(0)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    rates = []
    for _ in range(epochs):
        started, items = time.perf_counter(), 0
        for inputs, targets in loader:
            logits = model(inputs)
            loss = F.cross_entropy(logits.flatten(0, -2) if logits.ndim > 2 else logits, targets.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            items += inputs.shape[0] * items_per_sample
        loss.item()
        rates.append(items / (time.perf_counter() - started))
    return max(rates[1:])


def cnn_baseline(hps: dict, epochs: int) -> float:
    images, labels, classes = train_cnn.load_images(None, hps.get("image_size", 0))
    train_idx = train_cnn.stratified_split(labels, 0)[0]
    dataset = TensorDataset(torch.from_numpy(images[train_idx]), torch.from_numpy(labels[train_idx]))
    model = train_cnn.ConvNet(images.shape[1], len(classes), hps["width"], hps["stages"], hps["dropout"])
    return minimal_throughput(model, dataset, hps["batch_size"], epochs, 1)


def transformer_baseline(hps: dict, epochs: int) -> float:
    tokens = torch.frombuffer(bytearray(train_transformer.load_text(None)), dtype=torch.uint8)
    config = train_transformer.GPTConfig(block_size=hps["block_size"], d_model=hps["d_model"], n_layers=hps["n_layers"],
                                         n_heads=hps["n_heads"], dropout=hps["dropout"])
    dataset = train_transformer.TokenWindows(tokens[: int(0.8 * len(tokens))], config.block_size, hps["stride"])
    return minimal_throughput(train_transformer.GPT(config), dataset, hps["batch_size"], epochs, config.block_size)


BASELINES = {"digits-cnn.yaml": cnn_baseline, "tiny-transformer.yaml": transformer_baseline}


def baseline_throughput(example: str, epochs: int, threads: int) -> float:
    """The minimal loop's throughput, measured in a fresh interpreter like the entrypoint's."""
    out = subprocess.run([sys.executable, __file__, "--baseline", example, "--epochs", str(epochs)],
                         cwd=REPO, env=_env(threads), check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of both sides")
    parser.add_argument("--baseline", choices=sorted(BASELINES), help=argparse.SUPPRESS)  # one minimal run
    options = parser.parse_args()
    if options.baseline:
        hps = load_spec(str(REPO / "examples" / options.baseline)).spec.hyperparameters
        print(BASELINES[options.baseline](dict(hps), options.epochs))
        return
    print(f"CPU, {options.threads} thread(s), torch {torch.__version__}; best of {options.repeats} runs each")
    cases = [("digits CNN", "digits-cnn.yaml", "samples/s", {}),
             ("digits CNN, no augmentation", "digits-cnn.yaml", "samples/s", {"augment": False}),
             ("tiny transformer", "tiny-transformer.yaml", "tokens/s", {})]
    for name, example, unit, overrides in cases:
        scripts, minimals = [], []
        for _ in range(options.repeats):
            scripts.append(script_throughput(example, {"epochs": options.epochs, **overrides}, options.threads))
            minimals.append(baseline_throughput(example, options.epochs, options.threads))
        script, minimal = max(scripts), max(minimals)
        print(f"{name:30s} entrypoint {script:10.0f} {unit}   minimal loop {minimal:10.0f} {unit}   "
              f"ratio {script / minimal:.3f} (overhead {100 * (1 - script / minimal):+.1f} %)")


if __name__ == "__main__":
    main()
