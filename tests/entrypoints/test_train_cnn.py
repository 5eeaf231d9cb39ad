"""entrypoints/train_cnn.py: data split, normalization, augmentation, and a short real training."""

from __future__ import annotations

import numpy as np
import torch

import train_cnn

SMALL = {"epochs": 6, "width": 16, "batch_size": 64, "lr": 0.005, "warmup_steps": 10, "log_every_steps": 5}


def test_split_is_stratified_80_10_10_and_fixed_by_seed():
    labels = np.repeat(np.arange(5), [100, 50, 40, 30, 20])
    train, val, test = train_cnn.stratified_split(labels, seed=7)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(len(labels)))
    for label, count in zip(range(5), [100, 50, 40, 30, 20]):
        assert (labels[val] == label).sum() == round(0.1 * count)
        assert (labels[test] == label).sum() == round(0.1 * count)
        assert (labels[train] == label).sum() == count - 2 * round(0.1 * count)
    again = train_cnn.stratified_split(labels, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    other = train_cnn.stratified_split(labels, seed=8)
    assert not np.array_equal(val, other[1])


def test_normalization_stats_are_per_channel_and_from_the_given_images_only():
    rng = np.random.default_rng(0)
    train = rng.normal([[[1.0]], [[-2.0]], [[5.0]]], [[[2.0]], [[0.5]], [[1.0]]], size=(400, 3, 4, 4)).astype(np.float32)
    shifted = train + 100  # e.g. a test split from another distribution
    mean, std = train_cnn.normalization_stats(train)
    np.testing.assert_allclose(mean, train.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(std, train.std(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(mean, [1.0, -2.0, 5.0], atol=0.15)
    both, _ = train_cnn.normalization_stats(np.concatenate([train, shifted]))
    assert not np.allclose(mean, both)


def test_augmentation_keeps_shape_and_is_the_identity_when_switched_to_zero():
    images = torch.rand(8, 3, 12, 12)
    np.testing.assert_allclose(train_cnn.random_affine(images, 0.0, 0.0, False), images, atol=1e-5)
    moved = train_cnn.random_affine(images, 15.0, 0.2, True)
    assert moved.shape == images.shape and not torch.allclose(moved, images)


def test_trains_on_digits_and_writes_model_summary_tensorboard_and_curves(job):
    run = job(SMALL, checkpoints=False)
    output = run.run("train_cnn.py")
    summary = run.summary()
    assert summary["test_accuracy"] >= 0.9, output[-2000:]
    assert summary["epochs"] == 6 and summary["optimizer_steps"] == 6 * (1437 // 64)
    assert len(run.metrics("val_loss")) == 6 and run.metrics("test_accuracy")
    assert not (run.run_dir / "checkpoints").exists()

    saved = torch.load(run.run_dir / "model" / "model.pt", weights_only=True)
    model = train_cnn.ConvNet(**saved["architecture"])
    model.load_state_dict(saved["state_dict"])
    images, labels, _ = train_cnn.load_images(None, 0)
    train_mean, _ = train_cnn.normalization_stats(images[train_cnn.stratified_split(labels, 0)[0]])
    np.testing.assert_allclose(saved["mean"], train_mean, rtol=1e-6)
    assert not np.allclose(saved["mean"], train_cnn.normalization_stats(images)[0], rtol=1e-6)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((run.run_dir / "output" / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    assert {"train_loss", "val_loss", "val_accuracy"} <= set(accumulator.Tags()["scalars"])
    assert len(accumulator.Scalars("val_loss")) == 6
    png = (run.run_dir / "output" / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def _two_class_images(n: int = 120, size: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Bright top half (class "a") or bright bottom half (class "b"), with noise; HWC uint8."""
    rng = np.random.default_rng(0)
    labels = np.array(["a", "b"] * (n // 2))
    images = rng.integers(0, 60, size=(n, size, size, 3))
    for image, label in zip(images, labels):
        rows = slice(0, size // 2) if label == "a" else slice(size // 2, size)
        image[rows] += 180
    return images.astype(np.uint8), labels


def test_trains_on_an_npz_file_and_on_an_image_folder(job, tmp_path):
    from PIL import Image

    images, labels = _two_class_images()
    np.savez(tmp_path / "data.npz", x=images, y=labels)
    for index, (image, label) in enumerate(zip(images, labels)):
        (tmp_path / "folder" / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "folder" / label / f"{index}.png")
    hps = {**SMALL, "epochs": 4, "batch_size": 16, "hflip": True, "image_size": 12}
    for source in (tmp_path / "data.npz", tmp_path / "folder"):
        run = job(hps, inputs={"train": source}, checkpoints=False)
        output = run.run("train_cnn.py")
        assert "96/12/12 train/val/test images of (3, 12, 12), 2 classes" in output
        assert run.summary()["test_accuracy"] >= 0.9, output[-2000:]
