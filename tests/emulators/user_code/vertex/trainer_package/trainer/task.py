"""A training module for a Vertex AI python_package_spec, using the Cloud Storage FUSE paths Google
documents: gs://BUCKET/PATH is /gcs/BUCKET/PATH inside the job."""

import argparse
import json
import os
import statistics
from pathlib import Path


def local(uri: str) -> Path:
    return Path(uri.replace("gs://", "/gcs/", 1))


parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--scale", type=float, default=1.0)
args = parser.parse_args()

values = [float(line) for line in local(args.data).read_text().split()[1:]]
model = {"mean": statistics.mean(values) * args.scale, "rows": len(values)}
model_dir = local(os.environ["AIP_MODEL_DIR"])
model_dir.mkdir(parents=True, exist_ok=True)
(model_dir / "model.json").write_text(json.dumps(model))
print("trained on", len(values), "rows:", model)
