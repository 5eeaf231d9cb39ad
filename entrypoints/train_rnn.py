"""A recurrent sequence classifier (GRU or LSTM) on the shared PyTorch loop (``torch_common``).

Data: scikit-learn's handwritten digits (1,797 images of 8x8, shipped with scikit-learn, nothing
downloaded), each image read as a sequence of its 8 rows (8 time steps of 8 features), the way
row-by-row MNIST is the classic recurrent-network task; or ``ctx.inputs["train"]``: an ``.npz``
file with ``sequences`` (N, T, F) and ``labels`` (N,). Split 80/10/10 with stratification (the
CNN's split), features standardized on the training part only.

The model: a ``cell`` (``gru`` or ``lstm``) of ``layers`` layers and ``hidden`` units, optionally
``bidirectional``, whose last time step's output (both directions' when bidirectional) goes through
dropout to a linear classifier. Checkpoints, DDP under torchrun, TensorBoard, metrics and early
stopping come from the shared loop. Hyperparameters besides the loop's: ``cell``, ``hidden``,
``layers``, ``bidirectional``, ``dropout``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from cloudtrain.runtime import context
from torch_common import TrainConfig, eval_loader, evaluate, finish, fit, setup
from train_cnn import stratified_split


def load_sequences(path: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(sequences (N, T, F) float32, labels (N,) int64), see the module docstring."""
    if path is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images.astype(np.float32), digits.target.astype(np.int64)
    with np.load(path) as data:
        sequences, labels = data["sequences"].astype(np.float32), data["labels"].astype(np.int64)
    if sequences.ndim != 3 or len(sequences) != len(labels):
        raise SystemExit(f"{path}: sequences must be (N, T, F) and labels (N,)")
    return sequences, labels


class SequenceClassifier(nn.Module):
    def __init__(self, features: int, num_classes: int, cell: str = "gru", hidden: int = 64, layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.1):
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise SystemExit(f"cell: {cell!r} is not gru or lstm")
        recurrent = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = recurrent(features, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                             dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), num_classes)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(sequences)
        return self.head(self.dropout(outputs[:, -1]))


def main() -> None:
    ctx = context()
    config = TrainConfig.from_context(ctx, epochs=40, batch_size=64, lr=5e-3, weight_decay=0.01,
                                      warmup_steps=20, patience=8, log_every_steps=20)
    runtime = setup(ctx, config)
    sequences, labels = load_sequences(ctx.inputs.get("train"))
    splits = stratified_split(labels, config.seed)
    mean, std = sequences[splits[0]].mean(axis=(0, 1)), sequences[splits[0]].std(axis=(0, 1)) + 1e-6
    normalized = torch.from_numpy((sequences - mean) / std)
    train_set, val_set, test_set = (TensorDataset(normalized[idx], torch.from_numpy(labels[idx])) for idx in splits)
    architecture = {"features": sequences.shape[2], "num_classes": int(labels.max()) + 1, "cell": ctx.hp("cell", "gru"),
                    "hidden": ctx.hp("hidden", 64), "layers": ctx.hp("layers", 1),
                    "bidirectional": ctx.hp("bidirectional", False), "dropout": ctx.hp("dropout", 0.1)}
    model = SequenceClassifier(**architecture)
    if runtime.is_main:
        print(f"{len(train_set)}/{len(val_set)}/{len(test_set)} train/val/test sequences of {tuple(sequences.shape[1:])}, "
              f"{architecture['cell']}, {sum(p.numel() for p in model.parameters()):,} parameters, on {runtime.device}")

    def forward_loss(model: nn.Module, batch: list[torch.Tensor], training: bool):
        inputs, targets = batch
        logits = model(inputs)
        return F.cross_entropy(logits.float(), targets), (logits.argmax(dim=1) == targets).sum(), targets.shape[0]

    result = fit(ctx, config, runtime, model, train_set, val_set, forward_loss)
    test = evaluate(result.model, eval_loader(test_set, config, runtime), forward_loss, runtime)
    best = min(result.state.history, key=lambda record: record["val_loss"], default={})
    summary = {"test_accuracy": test["accuracy"], "test_loss": test["loss"],
               "best_val_accuracy": best.get("val_accuracy"), "best_val_loss": best.get("val_loss"),
               "epochs": result.state.epoch, "optimizer_steps": result.state.step,
               "stopped_early": result.stopped_early, "world_size": runtime.world_size}
    finish(ctx, runtime, result, summary, {"state_dict": result.model.state_dict(), "architecture": architecture,
                                           "mean": mean.tolist(), "std": std.tolist()})


if __name__ == "__main__":
    main()
