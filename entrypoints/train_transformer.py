"""A small GPT-style transformer trained for next-byte language modelling.

Data (``ctx.inputs["train"]``, optional): a text file, or a directory whose ``*.txt`` files (all
levels, sorted by path) are concatenated. Without one it trains on the dataset descriptions that
scikit-learn ships (``sklearn/datasets/descr/*.rst``, about 43 kB of English prose): present
wherever the ``cloudtrain[torch]`` extra is installed, the same for a given scikit-learn version,
nothing downloaded. Bytes are the tokens (a vocabulary of 256, no tokenizer to ship).

The byte stream is split by position 80/10/10 into train/validation/test; training windows of
``block_size`` + 1 bytes start every ``stride`` bytes, evaluation windows do not overlap. Reports
loss, perplexity (per byte) and bits per byte on validation and test (``test_perplexity`` in
``<output_dir>/summary.json``), and prints a short sample of generated text.

Hyperparameters (``ctx.hp``) besides the training loop's (see ``torch_common.TrainConfig``):
``block_size``, ``stride``, ``d_model``, ``n_layers``, ``n_heads``, ``dropout``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from cloudtrain.runtime import context
from torch_common import TrainConfig, eval_loader, evaluate, finish, fit, setup


def load_text(path: Path | None) -> bytes:
    """The training text as bytes (see the module docstring for the sources)."""
    if path is None:
        import sklearn

        files = sorted((Path(sklearn.__file__).parent / "datasets" / "descr").glob("*.rst"))
    elif path.is_dir():
        files = sorted(path.rglob("*.txt"))
    else:
        files = [path]
    if not files:
        raise SystemExit(f"no .txt files under {path}")
    return b"\n\n".join(file.read_bytes() for file in files)


class TokenWindows(Dataset):
    """(input, target) pairs: ``block_size`` tokens and the same tokens shifted by one."""

    def __init__(self, tokens: torch.Tensor, block_size: int, stride: int):
        if len(tokens) <= block_size:
            raise SystemExit(f"{len(tokens)} tokens are too few for block_size {block_size}")
        self.tokens, self.block_size = tokens, block_size
        self.starts = range(0, len(tokens) - block_size, stride)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        window = self.tokens[self.starts[index]: self.starts[index] + self.block_size + 1].long()
        return window[:-1], window[1:]


@dataclasses.dataclass
class GPTConfig:
    vocab_size: int = 256
    block_size: int = 128
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    dropout: float = 0.1


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where each position sees only itself and earlier positions."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_heads, self.dropout = config.n_heads, config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = (t.view(batch, length, self.n_heads, -1).transpose(1, 2) for t in self.qkv(x).split(width, dim=2))
        # fused (flash / memory-efficient) attention kernels where the device has them
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.d_model)
        self.attention = CausalSelfAttention(config)
        self.mlp_norm = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(nn.Linear(config.d_model, 4 * config.d_model), nn.GELU(),
                                 nn.Linear(4 * config.d_model, config.d_model))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x)))
        return x + self.dropout(self.mlp(self.mlp_norm(x)))


class GPT(nn.Module):
    """Token and learned position embeddings, ``n_layers`` blocks, and an output layer that shares
    the token embedding's weights."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embedding = nn.Embedding(config.block_size, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight
        self.apply(self._init_weights)
        for name, parameter in self.named_parameters():  # residual branches scaled by depth (GPT-2)
            if name.endswith(("proj.weight", "mlp.2.weight")):
                nn.init.normal_(parameter, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.dropout(self.token_embedding(tokens) + self.position_embedding(positions))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    @torch.no_grad()
    def generate(self, tokens: torch.Tensor, new_tokens: int, temperature: float = 0.8) -> torch.Tensor:
        """``tokens`` (1, T) followed by ``new_tokens`` sampled ones."""
        self.eval()
        for _ in range(new_tokens):
            logits = self(tokens[:, -self.config.block_size:])[:, -1] / temperature
            tokens = torch.cat([tokens, torch.multinomial(logits.softmax(-1), 1)], dim=1)
        return tokens


def forward_loss(model: nn.Module, batch: list[torch.Tensor], training: bool):
    """Mean next-token cross-entropy, correctly predicted tokens, and tokens counted."""
    inputs, targets = batch
    logits = model(inputs)
    loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
    return loss, (logits.argmax(dim=-1) == targets).sum(), targets.numel()


def main() -> None:
    ctx = context()
    config = TrainConfig.from_context(ctx, epochs=20, batch_size=32, lr=2e-3, weight_decay=0.1,
                                      warmup_steps=50, patience=3, log_every_steps=20)
    architecture = GPTConfig(block_size=ctx.hp("block_size", 128), d_model=ctx.hp("d_model", 128),
                             n_layers=ctx.hp("n_layers", 4), n_heads=ctx.hp("n_heads", 4),
                             dropout=ctx.hp("dropout", 0.1))
    stride = ctx.hp("stride", architecture.block_size // 2)
    runtime = setup(ctx, config)

    tokens = torch.frombuffer(bytearray(load_text(ctx.inputs.get("train"))), dtype=torch.uint8)
    train_end, val_end = int(0.8 * len(tokens)), int(0.9 * len(tokens))
    train_set = TokenWindows(tokens[:train_end], architecture.block_size, stride)
    val_set = TokenWindows(tokens[train_end:val_end], architecture.block_size, architecture.block_size)
    test_set = TokenWindows(tokens[val_end:], architecture.block_size, architecture.block_size)
    model = GPT(architecture)
    if runtime.is_main:
        print(f"{len(tokens):,} bytes: {len(train_set)}/{len(val_set)}/{len(test_set)} train/val/test windows, "
              f"{sum(p.numel() for p in model.parameters()):,} parameters, on {runtime.device}")

    result = fit(ctx, config, runtime, model, train_set, val_set, forward_loss, unit="tokens")
    test = evaluate(result.model, eval_loader(test_set, config, runtime), forward_loss, runtime)
    best_val = min((record["val_loss"] for record in result.state.history), default=math.nan)
    summary = {"test_loss": test["loss"], "test_perplexity": math.exp(test["loss"]),
               "test_bits_per_byte": test["loss"] / math.log(2), "test_accuracy": test["accuracy"],
               "best_val_loss": best_val, "best_val_perplexity": math.exp(best_val),
               "epochs": result.state.epoch, "optimizer_steps": result.state.step,
               "stopped_early": result.stopped_early, "world_size": runtime.world_size}
    if runtime.is_main:
        prompt = torch.tensor([list(b"The dataset ")], device=runtime.device)
        sample = result.model.generate(prompt, 120)[0].tolist()
        print("sample: " + bytes(sample).decode("utf-8", errors="replace"))
    finish(ctx, runtime, result, summary, {"state_dict": result.model.state_dict(),
                                           "architecture": dataclasses.asdict(architecture)})


if __name__ == "__main__":
    main()
