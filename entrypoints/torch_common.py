"""What both PyTorch entrypoints share: device and precision, data loading, a resumable training
loop with checkpoints and early stopping, and the metrics, TensorBoard events and curves it writes.

Decisions (documented here, as the project's style asks):

- ``batch_size`` is the *global* batch: each of ``WORLD_SIZE`` processes takes ``batch_size //
  world_size`` samples per step, so 1 and N processes run the same optimizer steps and schedule.
- Precision: bf16 autocast on CUDA GPUs with compute capability >= 8.0, fp16 autocast with a
  GradScaler on older CUDA GPUs (T4, V100), full fp32 on CPU and Apple MPS (hp ``precision``
  overrides: ``auto``, ``fp32``, ``bf16``, ``fp16``).
- Data order is a function of ``seed`` and the epoch only (a :class:`ResumableSampler`), so a
  resumed run skips exactly the batches that the interrupted one already trained on.
- Checkpoints (``step-00000042.pt`` plus a ``.sha256`` sidecar, the newest ``keep_checkpoints``
  kept) hold the model, optimizer, scheduler, scaler, loop position, early-stopping state, history
  and every rank's RNG states. They are written by rank 0 only: to a temporary file in the same
  directory, fsync'ed, then ``os.replace``'d, so a crash never leaves a half-written checkpoint
  under its final name. They are written every ``checkpoint_every_steps`` steps, every
  ``checkpoint_every_minutes`` minutes (or ``CLOUDTRAIN_CHECKPOINT_EVERY_SECONDS`` from the
  launcher), at the end of each epoch, and on SIGTERM.
- On start the newest checkpoint whose hash matches and that loads is resumed; others are skipped.
- SIGTERM (spot reclaim, ``cloudtrain cancel``) only sets a flag; the loop finishes the current
  step, writes a checkpoint and exits with :data:`PREEMPTED_EXIT_CODE` (143 = 128 + SIGTERM), so
  a supervisor sees that the run was interrupted and can be restarted to resume.
- Runs are bitwise reproducible on CPU for a given seed and process count, including across a
  resume; on GPUs up to the non-determinism of some CUDA kernels.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import random
import signal
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from torch_checkpoints import load_newest_checkpoint, replace_atomically, rng_state, save_checkpoint, set_rng_state

PREEMPTED_EXIT_CODE = 143

#: ``forward_loss(model, batch, training) -> (mean loss, number correct, number of items)``
ForwardLoss = Callable[[nn.Module, list[torch.Tensor], bool], tuple[torch.Tensor, torch.Tensor, int]]


@dataclasses.dataclass
class TrainConfig:
    """The loop's hyperparameters; each field is read from ``ctx.hp(name, <script default>)``."""

    epochs: int = 10
    max_steps: int = 0  # 0: no limit besides epochs
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    grad_clip: float = 1.0
    patience: int = 5  # epochs without a better validation loss before stopping; 0: never stop
    min_delta: float = 0.0
    restore_best: bool = True
    log_every_steps: int = 50
    checkpoint_every_steps: int = 0
    checkpoint_every_minutes: float = 0.0
    keep_checkpoints: int = 2
    seed: int = 0
    precision: str = "auto"
    compile: bool = False
    num_workers: int = -1  # -1: 4 on a GPU, 0 (load in the training process) on a CPU

    @classmethod
    def from_context(cls, ctx, **defaults: Any) -> "TrainConfig":
        """The config with the script's ``defaults`` overridden by the job's hyperparameters."""
        base = dataclasses.replace(cls(), **defaults)
        return cls(**{f.name: ctx.hp(f.name, getattr(base, f.name)) for f in dataclasses.fields(cls)})


@dataclasses.dataclass
class Runtime:
    """Where this process trains: device, precision, and its place in a distributed run."""

    device: torch.device
    amp_dtype: torch.dtype | None
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def channels_last(self) -> bool:
        """Channels-last convolutions are faster on CUDA tensor cores; not worth it elsewhere."""
        return self.device.type == "cuda"

    @property
    def collective_device(self) -> torch.device:
        """Where tensors for collectives live: the GPU under NCCL, else the CPU (gloo)."""
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def autocast(self):
        """Mixed-precision context for forward passes (a no-op in full precision)."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def setup(ctx, config: TrainConfig) -> Runtime:
    """Pick the device and precision, join the process group under torchrun, and seed this rank."""
    if torch.cuda.is_available():
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    elif torch.backends.mps.is_available() and ctx.world_size == 1:
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if ctx.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    precision = config.precision
    if precision == "auto" and device.type == "cuda":
        precision = "bf16" if torch.cuda.get_device_capability(device) >= (8, 0) else "fp16"
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    seed_everything(config.seed + ctx.rank)  # different dropout/augmentation noise per rank
    return Runtime(device, amp_dtype, ctx.rank, ctx.world_size)


class ResumableSampler(DistributedSampler):
    """A DistributedSampler (this rank's share of a seed+epoch shuffle) that can start an epoch
    after the first ``skip`` samples, for a run resumed in the middle of an epoch."""

    skip = 0

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self) -> int:
        return super().__len__() - self.skip


def train_loader(dataset: Dataset, config: TrainConfig, runtime: Runtime) -> DataLoader:
    """Shuffled batches of this rank's share of ``dataset``; the order depends on seed and epoch."""
    sampler = ResumableSampler(dataset, num_replicas=runtime.world_size, rank=runtime.rank,
                               shuffle=True, seed=config.seed, drop_last=True)
    return _loader(dataset, max(1, config.batch_size // runtime.world_size), sampler, config, runtime, drop_last=True)


def eval_loader(dataset: Dataset, config: TrainConfig, runtime: Runtime) -> DataLoader:
    """Batches of this rank's disjoint share of ``dataset`` (every sample counted exactly once)."""
    shard = Subset(dataset, range(runtime.rank, len(dataset), runtime.world_size))
    return _loader(shard, config.batch_size, None, config, runtime, drop_last=False)


def _loader(dataset, batch_size, sampler, config, runtime, drop_last) -> DataLoader:
    on_gpu = runtime.device.type == "cuda"
    workers = config.num_workers if config.num_workers >= 0 else (min(4, os.cpu_count() or 1) if on_gpu else 0)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                      num_workers=workers, pin_memory=on_gpu, persistent_workers=workers > 0,
                      # its own generator: creating an iterator must not consume the global RNG
                      generator=torch.Generator().manual_seed(config.seed))


def adamw(model: nn.Module, config: TrainConfig, runtime: Runtime) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices and kernels only (not on biases and norms)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, fused=runtime.device.type == "cuda")


def warmup_cosine(optimizer, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the base learning rate, then cosine decay to zero at ``total_steps``."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, forward_loss: ForwardLoss, runtime: Runtime) -> dict[str, float]:
    """Mean loss and accuracy over the whole dataset, summed across ranks (the same on every rank)."""
    model.eval()
    dtype = torch.float32 if runtime.device.type == "mps" else torch.float64  # MPS has no float64
    sums, count = torch.zeros(2, dtype=dtype, device=runtime.device), 0
    for batch in loader:
        batch = [t.to(runtime.device, non_blocking=True) for t in batch]
        with runtime.autocast():
            loss, correct, items = forward_loss(model, batch, False)
        sums += torch.stack([loss.to(dtype) * items, correct.to(dtype)])
        count += items
    totals = torch.cat([sums, sums.new_tensor([count])]).to(runtime.collective_device)
    if runtime.world_size > 1:
        dist.all_reduce(totals)
    loss_sum, correct, count = totals.tolist()
    return {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1)}


# ---------------------------------------------------------------- the loop
@dataclasses.dataclass
class LoopState:
    """Where training is; saved in every checkpoint."""

    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches of the current epoch already trained on
    step: int = 0  # optimizer steps taken
    best_val_loss: float = math.inf
    epochs_without_improvement: int = 0
    epoch_loss_sum: float = 0.0
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class FitResult:
    model: nn.Module  # the plain module (not DDP, not compiled), with the best weights if kept
    state: LoopState
    stopped_early: bool


class _StopFlag:
    """Set by SIGTERM; the loop checks it between steps."""

    def __init__(self) -> None:
        self.raised = False
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame) -> None:
        self.raised = True
        print("SIGTERM received: finishing this step, then checkpointing and exiting", flush=True)


def _resume(directory: Path, runtime: Runtime) -> dict[str, Any] | None:
    """The checkpoint to resume: the newest valid one, as chosen by rank 0 for every rank."""
    found = load_newest_checkpoint(directory)
    if runtime.world_size == 1:
        return found[1] if found else None
    chosen = torch.tensor([found[1]["state"]["step"] if found else -1], device=runtime.collective_device)
    dist.broadcast(chosen, src=0)
    step = int(chosen.item())
    if step < 0:
        return None
    if found and found[1]["state"]["step"] == step:
        return found[1]
    return torch.load(directory / f"step-{step:08d}.pt", map_location="cpu", weights_only=True)


def _agree(runtime: Runtime, *flags: bool) -> list[bool]:
    """Each flag, true on every rank when true on any (ranks must take the same branches, or the
    next collective operation would hang)."""
    if runtime.world_size == 1:
        return list(flags)
    tensor = torch.tensor(flags, dtype=torch.int32, device=runtime.collective_device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(flag) for flag in tensor.tolist()]


def fit(ctx, config: TrainConfig, runtime: Runtime, model: nn.Module, train_set: Dataset, val_set: Dataset,
        forward_loss: ForwardLoss, unit: str = "samples") -> FitResult:
    """Train ``model`` with AdamW, warm-up + cosine schedule, clipping and early stopping on the
    validation loss, resuming from and writing checkpoints. Exits with :data:`PREEMPTED_EXIT_CODE`
    after a checkpoint on SIGTERM. ``unit`` names what ``forward_loss`` counts (for throughput)."""
    loader = train_loader(train_set, config, runtime)
    val_loader = eval_loader(val_set, config, runtime)
    steps_per_epoch = len(loader)
    total_steps = config.epochs * steps_per_epoch
    total_steps = min(total_steps, config.max_steps) if config.max_steps > 0 else total_steps

    model.to(runtime.device)
    if runtime.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = adamw(model, config, runtime)
    scheduler = warmup_cosine(optimizer, config.warmup_steps, total_steps)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.amp_dtype == torch.float16)
    state, best_weights = LoopState(), None

    checkpoint_dir = ctx.checkpoint_dir
    if checkpoint_dir is not None:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        resumed = _resume(checkpoint_dir, runtime)
        if resumed is not None:
            model.load_state_dict(resumed["model"])
            optimizer.load_state_dict(resumed["optimizer"])
            scheduler.load_state_dict(resumed["scheduler"])
            scaler.load_state_dict(resumed["scaler"])
            state, best_weights = LoopState(**resumed["state"]), resumed["best_model"]
            if len(resumed["rng"]) == runtime.world_size:
                set_rng_state(resumed["rng"][runtime.rank])
            else:  # resumed with another number of processes: fresh, but still seeded, noise
                seed_everything(config.seed + runtime.rank + state.step)
            if runtime.is_main:
                print(f"resumed from step {state.step} (epoch {state.epoch}, batch {state.batch_in_epoch})", flush=True)

    plain_model = model
    if runtime.world_size > 1:
        device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if config.compile:
        model = torch.compile(model)

    writer = None
    if runtime.is_main and ctx.tensorboard_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events an interrupted run logged after its last checkpoint
        writer = SummaryWriter(str(ctx.tensorboard_dir), purge_step=state.step or None)

    def log(name: str, value: float, step: int) -> None:
        ctx.log_metric(name, value, step)
        if writer is not None:
            writer.add_scalar(name, value, step)

    interval_s = config.checkpoint_every_minutes * 60 or float(os.environ.get("CLOUDTRAIN_CHECKPOINT_EVERY_SECONDS", 0))
    last_checkpoint = time.monotonic()

    def checkpoint() -> None:
        nonlocal last_checkpoint
        if checkpoint_dir is None:
            return
        last_checkpoint = time.monotonic()
        rng = [rng_state()]
        if runtime.world_size > 1:
            rng = [None] * runtime.world_size
            dist.all_gather_object(rng, rng_state())
        if runtime.is_main:
            payload = {"model": plain_model.state_dict(), "optimizer": optimizer.state_dict(),
                       "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                       "state": dataclasses.asdict(state), "best_model": best_weights, "rng": rng}
            path = save_checkpoint(checkpoint_dir, state.step, payload, config.keep_checkpoints)
            print(f"checkpoint saved: {path.name} (step {state.step})", flush=True)

    def exit_preempted() -> None:
        if writer is not None:
            writer.close()
        if dist.is_initialized():
            dist.barrier()  # rank 0 has written the checkpoint
            dist.destroy_process_group()
        raise SystemExit(PREEMPTED_EXIT_CODE)

    sigterm = _StopFlag()
    sampler: ResumableSampler = loader.sampler
    stopped_early = 0 < config.patience <= state.epochs_without_improvement
    while state.epoch < config.epochs and state.step < total_steps and not stopped_early:
        sampler.set_epoch(state.epoch)
        sampler.skip = state.batch_in_epoch * loader.batch_size
        model.train()
        # losses stay on the device (no synchronisation per step) until logged or checkpointed
        epoch_loss, window_loss, window_steps = torch.zeros((), device=runtime.device), torch.zeros((), device=runtime.device), 0
        items, started = 0, time.perf_counter()
        for batch in loader:
            batch = [t.to(runtime.device, non_blocking=True) for t in batch]
            with runtime.autocast():
                loss, _, count = forward_loss(model, batch, True)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            state.step += 1
            state.batch_in_epoch += 1
            epoch_loss += loss.detach()
            window_loss += loss.detach()
            window_steps += 1
            items += count * runtime.world_size
            if state.step % config.log_every_steps == 0:
                log("train_loss", window_loss.item() / window_steps, state.step)
                log("lr", scheduler.get_last_lr()[0], state.step)
                window_loss.zero_()
                window_steps = 0
            if state.step >= total_steps:
                break
            due = (config.checkpoint_every_steps > 0 and state.step % config.checkpoint_every_steps == 0) or (
                runtime.is_main and interval_s > 0 and time.monotonic() - last_checkpoint >= interval_s)
            stop, due = _agree(runtime, sigterm.raised, due)
            if (stop or due) and state.batch_in_epoch < steps_per_epoch:  # else: the epoch's own
                state.epoch_loss_sum += epoch_loss.item()
                epoch_loss.zero_()
                checkpoint()
                if stop:
                    exit_preempted()
        state.epoch_loss_sum += epoch_loss.item()
        train_seconds = time.perf_counter() - started

        metrics = evaluate(model, val_loader, forward_loss, runtime)
        train_loss = state.epoch_loss_sum / max(1, state.batch_in_epoch)
        state.epoch, state.batch_in_epoch, state.epoch_loss_sum = state.epoch + 1, 0, 0.0
        if metrics["loss"] < state.best_val_loss - config.min_delta:
            state.best_val_loss, state.epochs_without_improvement = metrics["loss"], 0
            best_weights = {k: v.detach().to("cpu", copy=True) for k, v in plain_model.state_dict().items()}
        else:
            state.epochs_without_improvement += 1
        stopped_early = 0 < config.patience <= state.epochs_without_improvement
        record = {"epoch": state.epoch, "train_loss": train_loss, "val_loss": metrics["loss"],
                  "val_accuracy": metrics["accuracy"], f"train_{unit}_per_second": items / train_seconds}
        state.history.append(record)
        for name, value in record.items():
            if name not in ("epoch", "train_loss"):  # train_loss is logged every log_every_steps
                log(name, value, state.step)
        checkpoint()
        if _agree(runtime, sigterm.raised)[0]:
            exit_preempted()

    if writer is not None:
        writer.close()
    if config.restore_best and best_weights is not None:
        plain_model.load_state_dict(best_weights)
    return FitResult(plain_model, state, stopped_early)


# ---------------------------------------------------------------- the end of a run
def plot_curves(history: list[dict[str, float]], path: Path) -> None:
    """Loss (train and validation) and validation accuracy per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [record["epoch"] for record in history]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axes.plot(epochs, [r["train_loss"] for r in history], label="train")
    loss_axes.plot(epochs, [r["val_loss"] for r in history], label="validation")
    loss_axes.set(xlabel="epoch", ylabel="loss", title="Loss")
    loss_axes.legend()
    accuracy_axes.plot(epochs, [r["val_accuracy"] for r in history], color="tab:green")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy", title="Validation accuracy")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def finish(ctx, runtime: Runtime, result: FitResult, summary: dict[str, Any], model_file: dict[str, Any]) -> None:
    """On rank 0: log the final metrics, save ``model_file`` as ``model.pt`` in the model dir, write
    ``summary.json`` and ``curves.png`` in the output dir, and print the summary. Then leave the
    process group."""
    if runtime.is_main:
        for name, value in summary.items():
            if isinstance(value, float):
                ctx.log_metric(name, value, result.state.step)
        ctx.model_dir.mkdir(parents=True, exist_ok=True)
        tmp = ctx.model_dir / f".model.pt.tmp-{os.getpid()}"
        torch.save(model_file, tmp)
        replace_atomically(tmp, ctx.model_dir / "model.pt")
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        (ctx.output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if result.state.history:
            plot_curves(result.state.history, ctx.output_dir / "curves.png")
        print("summary: " + json.dumps(summary), flush=True)
    if dist.is_initialized():
        dist.barrier()  # leave together: a rank tearing down gloo while a peer still works can abort
        dist.destroy_process_group()
