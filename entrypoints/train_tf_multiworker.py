"""MultiWorkerMirrored-style training that reads ``TF_CONFIG`` as TensorFlow does, in numpy.

TensorFlow is not needed: the script uses ``TF_CONFIG`` (``distribution: {type: tensorflow}``; every
cloud and the local executor set it) exactly as ``tf.distribute.MultiWorkerMirroredStrategy`` reads
it: ``cluster`` lists the tasks by type (``chief`` / ``master``, ``worker``, ``ps``) with their
``host:port``, ``task`` names this process's type and index. The training tasks (chief or master
first, then the workers) run synchronous data parallelism on their shards of scikit-learn's digits:
a softmax regression whose gradients are averaged every step by an all-reduce (:mod:`allreduce`)
served at the first training task's own TF_CONFIG address, where TensorFlow's server would listen.
Parameter-server tasks (``parameter_servers: N``) hold no variables in this numpy example (the
chief keeps them): a ps task prints its place and exits, where TensorFlow's would ``server.join()``.

Hyperparameters: ``epochs``, ``lr``, ``batch_size`` (global), ``seed``.
"""

from __future__ import annotations

import json
import os

import numpy as np

from cloudtrain.runtime import context


def training_tasks(config: dict) -> list[tuple[str, int, str]]:
    """(type, index, address) of the tasks that train, the first one first."""
    cluster = config.get("cluster", {})
    return [(kind, index, address) for kind in ("chief", "master", "worker") for index, address in enumerate(cluster.get(kind, []))]


def main() -> None:
    from sklearn.datasets import load_digits

    from allreduce import TcpAllReduce

    ctx = context()
    config = json.loads(os.environ.get("TF_CONFIG") or '{"cluster": {"worker": ["127.0.0.1:0"]}, "task": {"type": "worker", "index": 0}}')
    task = config["task"]
    tasks = training_tasks(config)
    if task["type"] not in ("chief", "master", "worker"):
        print(f"{task['type']} task {task['index']}: variables stay with the chief in this numpy example; exiting", flush=True)
        return
    position = tasks.index(next(t for t in tasks if (t[0], t[1]) == (task["type"], int(task["index"]))))
    world = len(tasks)
    host, port = tasks[0][2].rsplit(":", 1)
    reducer = TcpAllReduce(position, world, (host, int(port)))
    epochs, lr, batch, seed = ctx.hp("epochs", 20), ctx.hp("lr", 0.5), ctx.hp("batch_size", 64), ctx.hp("seed", 0)
    digits = load_digits()
    x, y = np.hstack([digits.data / 16.0, np.ones((len(digits.target), 1))]), digits.target
    order = np.random.default_rng(seed).permutation(len(y))
    test, train = order[: len(y) // 5], order[len(y) // 5:]
    weights = np.zeros((x.shape[1], 10))
    per_task = max(1, batch // world)
    steps = len(train) // (per_task * world)
    if position == 0:
        print(f"tensorflow-style: {world} training tasks from TF_CONFIG, all-reduce at {tasks[0][2]}", flush=True)
    for epoch in range(epochs):
        shuffled = train[np.random.default_rng(seed + epoch).permutation(len(train))]
        total = 0.0
        for step in range(steps):
            rows = shuffled[(step * world + position) * per_task:][:per_task]
            logits = x[rows] @ weights
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            loss = -np.log(p[np.arange(len(rows)), y[rows]] + 1e-12).mean()
            p[np.arange(len(rows)), y[rows]] -= 1
            averaged = reducer.sum(np.append((x[rows].T @ p / len(rows)).ravel(), loss)) / world
            weights -= lr * averaged[:-1].reshape(weights.shape)
            total += averaged[-1]
        accuracy = float(((x[test] @ weights).argmax(axis=1) == y[test]).mean())
        ctx.log_metric("train_loss", total / steps, step=epoch)
        ctx.log_metric("test_accuracy", accuracy, step=epoch)
    print(f"{task['type']} {task['index']} (task {position}/{world}) final test accuracy {accuracy:.4f}", flush=True)
    if ctx.is_main:
        np.save(ctx.model_dir / "weights.npy", weights)
    reducer.close()


if __name__ == "__main__":
    main()
