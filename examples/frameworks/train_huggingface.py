"""Fine-tune a small Transformers model for text classification on a tiny built-in data set, with metrics
through the runtime context (the model is downloaded from the Hugging Face Hub)."""

import argparse

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from cloudtrain.runtime import context

TEXTS = ["a wonderful, moving film", "dull and far too long", "a joy from start to end", "I want those hours back",
         "sharp writing and fine acting", "a tedious mess"]
LABELS = [1, 0, 1, 0, 1, 0]

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="distilbert-base-uncased")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--lr", type=float, default=5e-5)
args, _ = parser.parse_known_args()
ctx = context()
device = "cuda" if torch.cuda.is_available() else "cpu"
tokenizer = AutoTokenizer.from_pretrained(args.model)
model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2).to(device)
batch = tokenizer(TEXTS, padding=True, return_tensors="pt").to(device)
labels = torch.tensor(LABELS, device=device)
optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
for epoch in range(args.epochs):
    loss = model(**batch, labels=labels).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    ctx.log_metric("train_loss", loss.item(), epoch)
if ctx.is_main:
    model.save_pretrained(ctx.model_dir)
    tokenizer.save_pretrained(ctx.model_dir)
