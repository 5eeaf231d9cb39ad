"""Image classification with a small convolutional network.

Data (``ctx.inputs["train"]``, optional):
- nothing: the 8x8 handwritten digits shipped with scikit-learn (1,797 images, 10 classes);
- an ``.npz`` file (or a directory holding one) with arrays ``x`` (N,H,W / N,H,W,C / N,C,H,W;
  integers are read as 0-255) and ``y`` (N labels);
- a directory of class folders (``cat/001.png``, ``dog/002.jpg``...), resized to ``image_size``.

Images are held in memory (this is for datasets that fit), split 80/10/10 stratified by class with
a fixed seed, normalized with the training split's per-channel mean and std, and augmented on the
device, per batch, with random rotations, shifts and (for images where it makes sense) flips.

Hyperparameters (``ctx.hp``) besides the training loop's (see ``torch_common.TrainConfig``):
``image_size``, ``width``, ``stages``, ``dropout``, ``label_smoothing``, ``augment``,
``rotate_degrees``, ``shift``, ``hflip``. The model goes to ``<model_dir>/model.pt``; the final
metrics (``test_accuracy``...) to ``<output_dir>/summary.json``. On SIGTERM it checkpoints and
exits with 143; started again it resumes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from cloudtrain.runtime import context
from torch_common import TrainConfig, eval_loader, evaluate, finish, fit, setup

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def load_images(path: Path | None, image_size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images as float32 (N, C, H, W) in [0, 1], integer labels and class names (see module doc).
    ``image_size`` > 0 resizes every image to that square size."""
    if path is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images, labels = digits.images[:, None] / 16.0, digits.target
        classes = [str(c) for c in digits.target_names]
    elif path.suffix == ".npz" or (path.is_dir() and any(path.glob("*.npz"))):
        file = path if path.suffix == ".npz" else sorted(path.glob("*.npz"))[0]
        with np.load(file) as arrays:
            images, labels = arrays["x"], arrays["y"]
        if images.ndim == 3:
            images = images[:, None]
        elif images.ndim == 4 and images.shape[-1] in (1, 3, 4) and images.shape[1] not in (1, 3, 4):
            images = images.transpose(0, 3, 1, 2)
        images = images / 255.0 if np.issubdtype(images.dtype, np.integer) else images
        classes, labels = np.unique(labels, return_inverse=True)
        classes = [str(c) for c in classes]
    else:
        images, labels, classes = _image_folder(path, image_size or 32)
    images = torch.as_tensor(np.ascontiguousarray(images), dtype=torch.float32)
    if image_size and images.shape[-1] != image_size:
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", antialias=True)
    return images.numpy(), np.asarray(labels, dtype=np.int64), classes


def _image_folder(root: Path, image_size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from PIL import Image

    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    files = [(f, label) for label, name in enumerate(classes)
             for f in sorted((root / name).rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise SystemExit(f"no images found in class folders under {root}")
    with Image.open(files[0][0]) as first:
        mode = "L" if first.mode in ("1", "L", "I", "I;16") else "RGB"
    images = []
    for file, _ in files:
        with Image.open(file) as image:
            image = image.convert(mode).resize((image_size, image_size), Image.Resampling.BILINEAR)
            images.append(np.asarray(image, dtype=np.float32).reshape(image_size, image_size, -1) / 255.0)
    return np.stack(images).transpose(0, 3, 1, 2), np.array([label for _, label in files]), classes


def stratified_split(labels: np.ndarray, seed: int, fractions=(0.8, 0.1, 0.1)) -> tuple[np.ndarray, ...]:
    """Train/validation/test indices with each class split in the given fractions, the same for a
    given seed."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val, n_test = round(len(members) * fractions[1]), round(len(members) * fractions[2])
        n_train = len(members) - n_val - n_test
        for part, chunk in zip(parts, np.split(members, [n_train, n_train + n_val])):
            part.append(chunk)
    return tuple(np.sort(np.concatenate(part)) for part in parts)


def normalization_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of (N, C, H, W) images (pass the training split
    only, so nothing about validation or test data leaks into training)."""
    mean = images.mean(axis=(0, 2, 3), dtype=np.float64)
    std = images.std(axis=(0, 2, 3), dtype=np.float64)
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


def random_affine(images: torch.Tensor, degrees: float, shift: float, hflip: bool) -> torch.Tensor:
    """Each image rotated by up to ``degrees``, shifted by up to ``shift`` of its size and, with
    ``hflip``, mirrored half of the time: one batched affine resampling on the images' device."""
    n, device = images.shape[0], images.device
    angle = (torch.rand(n, device=device) * 2 - 1) * math.radians(degrees)
    tx, ty = (torch.rand(2, n, device=device) * 2 - 1) * 2 * shift  # grid coordinates span 2
    mirror = torch.ones(n, device=device)
    if hflip:
        mirror = torch.where(torch.rand(n, device=device) < 0.5, -1.0, 1.0)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos * mirror, -sin, tx], 1), torch.stack([sin * mirror, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="border", align_corners=False)


class ConvNet(nn.Module):
    """``stages`` x (two 3x3 conv + batch norm + ReLU, then 2x2 max pooling), doubling the width
    each stage; then global average pooling, dropout and a linear classifier."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32, stages: int = 2, dropout: float = 0.25):
        super().__init__()
        layers, channels = [], in_channels
        for stage in range(stages):
            out = width * 2**stage
            for conv_in in (channels, out):
                layers += [nn.Conv2d(conv_in, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            layers.append(nn.MaxPool2d(2))
            channels = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


def main() -> None:
    ctx = context()
    config = TrainConfig.from_context(ctx, epochs=30, batch_size=64, lr=3e-3, weight_decay=0.05,
                                      warmup_steps=50, patience=8, log_every_steps=20)
    image_size = ctx.hp("image_size", 0)  # 0: as stored (32 for image folders)
    augment, hflip = ctx.hp("augment", True), ctx.hp("hflip", False)
    rotate_degrees, shift = ctx.hp("rotate_degrees", 10.0), ctx.hp("shift", 0.1)
    label_smoothing = ctx.hp("label_smoothing", 0.0)
    runtime = setup(ctx, config)

    images, labels, classes = load_images(ctx.inputs.get("train"), image_size)
    splits = stratified_split(labels, config.seed)
    mean, std = normalization_stats(images[splits[0]])
    normalized = torch.from_numpy((images - mean[:, None, None]) / std[:, None, None])
    train_set, val_set, test_set = (TensorDataset(normalized[idx], torch.from_numpy(labels[idx])) for idx in splits)
    architecture = {"in_channels": images.shape[1], "num_classes": len(classes), "width": ctx.hp("width", 32),
                    "stages": ctx.hp("stages", 2), "dropout": ctx.hp("dropout", 0.25)}
    model = ConvNet(**architecture)
    if runtime.is_main:
        print(f"{len(train_set)}/{len(val_set)}/{len(test_set)} train/val/test images of {tuple(images.shape[1:])}, "
              f"{len(classes)} classes, {sum(p.numel() for p in model.parameters()):,} parameters, on {runtime.device}")

    def forward_loss(model: nn.Module, batch: list[torch.Tensor], training: bool):
        images, labels = batch
        if training and augment:
            images = random_affine(images, rotate_degrees, shift, hflip)
        if runtime.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        logits = model(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing if training else 0.0)
        return loss, (logits.argmax(dim=1) == labels).sum(), labels.shape[0]

    result = fit(ctx, config, runtime, model, train_set, val_set, forward_loss)
    test = evaluate(result.model, eval_loader(test_set, config, runtime), forward_loss, runtime)
    best = min(result.state.history, key=lambda record: record["val_loss"], default={})
    summary = {"test_accuracy": test["accuracy"], "test_loss": test["loss"],
               "best_val_accuracy": best.get("val_accuracy"), "best_val_loss": best.get("val_loss"),
               "epochs": result.state.epoch, "optimizer_steps": result.state.step,
               "stopped_early": result.stopped_early, "world_size": runtime.world_size}
    model_file = {"state_dict": result.model.state_dict(), "architecture": architecture, "classes": classes,
                  "image_size": images.shape[-1], "mean": mean.tolist(), "std": std.tolist()}
    finish(ctx, runtime, result, summary, model_file)


if __name__ == "__main__":
    main()
