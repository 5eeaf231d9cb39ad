"""Model FLOPs utilisation, tokens/s and peak memory of the entrypoint's transformer on a CUDA GPU.

    .venv/bin/python bench/gpu_transformer.py                 # ~1.3B parameters, 2048 tokens of context
    .venv/bin/python bench/gpu_transformer.py --peak-tflops 312 --batch-size 4   # e.g. an A100
    .venv/bin/python bench/gpu_transformer.py --smoke         # a tiny CPU run that checks the code

Trains ``train_transformer.GPT`` as the entrypoint does on a GPU (bf16 autocast, fused AdamW,
``torch.compile``, gradient clipping) on random tokens, times ``--steps`` steps after ``--warmup``
and prints tokens/s, MFU and peak memory. Model FLOPs per token follow the PaLM / nanoGPT
convention: 6 x (matmul parameters) + 12 x layers x width x context (attention, causal mask not
discounted). The peak defaults to 989 dense bf16 TFLOP/s (H100 SXM; the H200 has the same
compute). Target: >= 40 % MFU.

Measured 2026-11-26 on one NVIDIA H200 (torch 2.11.0+cu130, driver 580.159.04), defaults:
1.28B parameters, batch 8: 60,866 tokens/s, 539 model TFLOP/s, MFU 54.5 %, peak memory 53.7 GiB;
``--batch-size 16``: 63,439 tokens/s, MFU 56.8 %, 86.0 GiB. (On that machine a plain 8192^3 bf16
matrix product reaches about 790 TFLOP/s, i.e. 80 % of the nominal peak.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "entrypoints"))
from train_transformer import GPT, GPTConfig  # noqa: E402


def flops_per_token(model: GPT) -> float:
    """Training FLOPs per token: forward + backward of every matmul, plus attention scores."""
    config = model.config
    matmul_params = sum(p.numel() for p in model.blocks.parameters() if p.ndim == 2)
    matmul_params += config.vocab_size * config.d_model  # the output layer (tied to the embedding)
    return 6 * matmul_params + 12 * config.n_layers * config.d_model * config.block_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=2048)
    parser.add_argument("--n-layers", type=int, default=24)
    parser.add_argument("--n-heads", type=int, default=16)
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--vocab-size", type=int, default=32768)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny model on the CPU, to check the code")
    options = parser.parse_args()

    if options.smoke:
        device = torch.device("cpu")
        options.d_model, options.n_layers, options.n_heads, options.block_size = 64, 2, 2, 64
        options.vocab_size, options.batch_size, options.steps, options.warmup = 256, 2, 2, 1
        options.no_compile = True
    elif not torch.cuda.is_available():
        raise SystemExit("gpu_transformer: no CUDA device here; run it on a GPU machine (or --smoke to check the code)")
    else:
        device = torch.device("cuda")
        torch.backends.cuda.matmul.allow_tf32 = True

    config = GPTConfig(vocab_size=options.vocab_size, block_size=options.block_size, d_model=options.d_model,
                       n_layers=options.n_layers, n_heads=options.n_heads, dropout=0.0)
    model = GPT(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=device.type == "cuda")
    step_model = model if options.no_compile else torch.compile(model)
    tokens = torch.randint(0, config.vocab_size, (options.batch_size, config.block_size + 1), device=device)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]

    def train_step() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = step_model(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss

    for _ in range(options.warmup):
        train_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(options.steps):
        loss = train_step()
    loss.item()  # waits for the GPU
    seconds = time.perf_counter() - started

    tokens_per_second = options.steps * options.batch_size * config.block_size / seconds
    achieved = tokens_per_second * flops_per_token(model) / 1e12
    parameters = sum(p.numel() for p in model.parameters())
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (smoke run: MFU meaningless)"
    print(f"device: {name}; torch {torch.__version__}; compile: {not options.no_compile}")
    print(f"model: {parameters / 1e9:.2f}B parameters, {config.n_layers} layers x {config.d_model} wide, "
          f"context {config.block_size}, batch {options.batch_size}")
    print(f"tokens/s: {tokens_per_second:,.0f}   step: {1000 * seconds / options.steps:.1f} ms   loss: {loss.item():.3f}")
    print(f"model TFLOP/s: {achieved:.1f}   MFU: {100 * achieved / options.peak_tflops:.1f} % of {options.peak_tflops:g}")
    if device.type == "cuda":
        print(f"peak memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB "
              f"of {torch.cuda.get_device_properties(device).total_memory / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
