"""entrypoints/train_transformer.py: a few steps of real training on the default and a given corpus."""

from __future__ import annotations

import math

import torch

import train_transformer

TINY = {"epochs": 3, "max_steps": 40, "batch_size": 16, "block_size": 32, "stride": 32, "d_model": 32,
        "n_layers": 1, "n_heads": 2, "dropout": 0.0, "lr": 0.01, "warmup_steps": 5, "log_every_steps": 5}


def test_attention_is_causal():
    model = train_transformer.GPT(train_transformer.GPTConfig(block_size=16, d_model=16, n_layers=1, n_heads=2, dropout=0.0))
    tokens = torch.randint(0, 256, (1, 16))
    changed = tokens.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 256
    with torch.no_grad():
        assert torch.allclose(model(tokens)[0, :10], model(changed)[0, :10], atol=1e-6)
        assert not torch.allclose(model(tokens)[0, 10:], model(changed)[0, 10:])


def test_default_corpus_is_present_and_deterministic():
    text = train_transformer.load_text(None)
    assert len(text) > 20_000 and text == train_transformer.load_text(None)


def test_trains_a_few_steps_loss_decreases_and_perplexity_is_reported(job):
    run = job(TINY, checkpoints=False)
    output = run.run("train_transformer.py")
    losses = [record["value"] for record in run.metrics("train_loss")]
    assert len(losses) == 8 and losses[-1] < losses[0] - 0.5, losses
    summary = run.summary()
    assert summary["optimizer_steps"] == 40
    assert math.isclose(summary["test_perplexity"], math.exp(summary["test_loss"]))
    assert summary["test_perplexity"] < 40, summary  # 256 for a uniform guess
    assert run.metrics("test_perplexity") and "sample: The dataset " in output
    assert (run.run_dir / "model" / "model.pt").exists()


def test_trains_on_a_directory_of_text_files(job, tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "nested").mkdir(parents=True)
    (corpus / "a.txt").write_text("the quick brown fox jumps over the lazy dog. " * 200)
    (corpus / "nested" / "b.txt").write_text("pack my box with five dozen liquor jugs. " * 200)
    (corpus / "ignored.md").write_text("not text input")
    run = job(TINY, inputs={"train": corpus}, checkpoints=False)
    output = run.run("train_transformer.py")
    assert "17,202 bytes" in output
    assert run.summary()["test_perplexity"] < 12, run.summary()  # a unigram model: about 17
