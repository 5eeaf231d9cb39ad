"""A user's trial for a Vertex AI hyperparameter tuning job: it takes the tuned values as flags,
computes its objective and reports it where Vertex reads it, the way ``cloudml-hypertune``'s
``report_hyperparameter_tuning_metric`` does (one JSON line in ``CLOUD_ML_HP_METRIC_FILE``; the
package itself is not installed here), then saves a small model to ``AIP_MODEL_DIR``."""

import argparse
import json
import os
import time

from google.cloud import storage

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--layers", type=int, required=True)
parser.add_argument("--activation", required=True)
parser.add_argument("--offset", type=float, default=0.0)
args = parser.parse_args()

loss = (args.x - 3.0) ** 2 + 0.1 * args.layers + (0.5 if args.activation == "tanh" else 0.0) + args.offset
print(f"trial {os.environ['CLOUD_ML_TRIAL_ID']} x={args.x} layers={args.layers} activation={args.activation} loss={loss}")

metrics_file = os.environ.get("CLOUD_ML_HP_METRIC_FILE", "/tmp/hypertune/output.metrics")
os.makedirs(os.path.dirname(metrics_file), exist_ok=True)
with open(metrics_file, "a") as handle:
    for step, value in ((1, loss + 10.0), (2, loss)):  # an early, worse report, then the final one
        handle.write(json.dumps({"timestamp": time.time(), "trial": os.environ["CLOUD_ML_TRIAL_ID"],
                                 "loss": str(value), "global_step": str(step), "checkpoint_path": ""}) + "\n")

model_dir = os.environ["AIP_MODEL_DIR"]
bucket, _, prefix = model_dir[len("gs://"):].partition("/")
storage.Client().bucket(bucket).blob(prefix + "model.json").upload_from_string(
    json.dumps({"x": args.x, "layers": args.layers, "activation": args.activation, "loss": loss}))
