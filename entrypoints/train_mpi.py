"""Horovod-style data-parallel training under ``mpirun`` (``distribution: {type: mpi}``).

Every rank reads its place from MPI's variables (``OMPI_COMM_WORLD_RANK`` / ``_SIZE``, which
:func:`cloudtrain.runtime.context` reads as ``rank`` / ``world_size``), trains a softmax regression
on its shard of scikit-learn's digits with numpy, and averages gradients each step with an
all-reduce, as ``hvd.DistributedOptimizer`` does: mpi4py's ``Allreduce`` when mpi4py is installed,
else a TCP all-reduce (:mod:`allreduce`) rooted at rank 0's host (``MASTER_ADDR``, or SageMaker's
first host, else 127.0.0.1; 127.0.0.1 too where that name does not resolve, as with an
emulator's stand-in hosts, whose ranks all run on one machine), so the example needs nothing beyond numpy and scikit-learn. Rank 0
logs the metrics and saves the model; every rank prints its final loss, which is the same on all.

Hyperparameters: ``epochs``, ``lr``, ``batch_size`` (global), ``seed``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket

import numpy as np

from cloudtrain.runtime import context


def all_reducer(rank: int, world: int):  # type: ignore[no-untyped-def]
    """``sum(array) -> array`` across the ranks, and a close function."""
    try:
        from mpi4py import MPI  # type: ignore[import-not-found]

        def mpi_sum(array: np.ndarray) -> np.ndarray:
            out = np.empty_like(array)
            MPI.COMM_WORLD.Allreduce(array, out, op=MPI.SUM)
            return out

        return mpi_sum, lambda: None, "mpi4py"
    except ImportError:
        from allreduce import TcpAllReduce

        hosts = json.loads(os.environ.get("SM_HOSTS") or "[]")
        host = os.environ.get("MASTER_ADDR") or (hosts[0] if hosts else "127.0.0.1")
        try:
            socket.getaddrinfo(host, None)
        except OSError:  # an emulator's stand-in host names (algo-1...): its ranks share this machine
            host = "127.0.0.1"
        job = os.environ.get("CLOUDTRAIN_JOB_ID") or os.environ.get("TRAINING_JOB_NAME") or "job"
        # below Linux's ephemeral range (32768-60999), where a client socket could hold the port
        port = int(os.environ.get("CLOUDTRAIN_ALLREDUCE_PORT") or 20000 + int(hashlib.sha256(job.encode()).hexdigest(), 16) % 12000)
        reducer = TcpAllReduce(rank, world, (host, port))
        return reducer.sum, reducer.close, f"tcp {host}:{port}"


def main() -> None:
    from sklearn.datasets import load_digits

    ctx = context()
    epochs, lr, batch, seed = ctx.hp("epochs", 20), ctx.hp("lr", 0.5), ctx.hp("batch_size", 64), ctx.hp("seed", 0)
    rank, world = ctx.rank, ctx.world_size
    reduce_sum, close, how = all_reducer(rank, world)
    digits = load_digits()
    x, y = digits.data / 16.0, digits.target
    order = np.random.default_rng(seed).permutation(len(y))
    test, train = order[: len(y) // 5], order[len(y) // 5:]
    classes, weights = 10, np.zeros((x.shape[1] + 1, 10))
    features = lambda rows: np.hstack([x[rows], np.ones((len(rows), 1))])  # noqa: E731
    per_rank = max(1, batch // world)
    steps = len(train) // (per_rank * world)
    if ctx.is_main:
        print(f"mpi: {world} ranks, all-reduce over {how}, {steps} steps per epoch", flush=True)
    for epoch in range(epochs):
        shuffled = train[np.random.default_rng(seed + epoch).permutation(len(train))]
        loss_sum = 0.0
        for step in range(steps):
            start = (step * world + rank) * per_rank
            rows = shuffled[start: start + per_rank]
            inputs = features(rows)
            logits = inputs @ weights
            probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
            probabilities /= probabilities.sum(axis=1, keepdims=True)
            loss = -np.log(probabilities[np.arange(len(rows)), y[rows]] + 1e-12).mean()
            probabilities[np.arange(len(rows)), y[rows]] -= 1
            gradient = inputs.T @ probabilities / len(rows)
            gradient = reduce_sum(np.append(gradient.ravel(), loss)) / world  # average, as Horovod does
            weights -= lr * gradient[:-1].reshape(weights.shape)
            loss_sum += gradient[-1]
        accuracy = float(((features(test) @ weights).argmax(axis=1) == y[test]).mean())
        ctx.log_metric("train_loss", loss_sum / steps, step=epoch)
        ctx.log_metric("test_accuracy", accuracy, step=epoch)
    print(f"rank {rank}/{world} final test accuracy {accuracy:.4f}", flush=True)
    if ctx.is_main:
        np.save(ctx.model_dir / "weights.npy", weights)
    close()


if __name__ == "__main__":
    main()
