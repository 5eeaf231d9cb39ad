"""A training script as it runs on SageMaker: reads its channel, its hyperparameters and writes a model.

Only the paths SageMaker documents are used: the ``SM_*`` variables and ``/opt/ml/...``.
"""

import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--learning-rate", type=float, default=0.1)
parser.add_argument("--secret-id", default="", help="a Secrets Manager secret the job reads with its role")
args, _ = parser.parse_known_args()

# The documented file, read directly as many scripts do.
hyperparameters = json.loads(Path("/opt/ml/input/config/hyperparameters.json").read_text())
train_dir = Path(os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))

rows = np.loadtxt(next(train_dir.glob("*.csv")), delimiter=",", ndmin=2)
features, target = np.c_[rows[:, :-1], np.ones(len(rows))], rows[:, -1]
weights = np.zeros(features.shape[1])
for _ in range(args.epochs):
    weights -= args.learning_rate * features.T @ (features @ weights - target) / len(rows)
loss = float(np.mean((features @ weights - target) ** 2))
print(f"training finished: epochs={args.epochs} rows={len(rows)} loss={loss:.6f}", flush=True)

secret_digest = None
if args.secret_id:
    import boto3

    secret = boto3.client("secretsmanager").get_secret_value(SecretId=args.secret_id)["SecretString"]
    secret_digest = hashlib.sha256(secret.encode()).hexdigest()  # never the value itself
    print(f"read secret {args.secret_id}", flush=True)

model_dir.mkdir(parents=True, exist_ok=True)
(model_dir / "model.json").write_text(json.dumps({
    "weights": weights.tolist(), "loss": loss, "epochs": args.epochs,
    "hyperparameters_file": hyperparameters, "rows": len(rows), "secret_sha256": secret_digest,
}))
