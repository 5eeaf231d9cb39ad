"""Fit y = slope * x + intercept (least squares) on every CSV file of --data; write the model to --out."""

import argparse
import csv
import json
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True, help="folder of CSV files with x,y columns")
parser.add_argument("--out", required=True, help="folder the model is written to")
args = parser.parse_args()

files = sorted(Path(args.data).glob("*.csv"))
rows = [(float(row["x"]), float(row["y"])) for path in files for row in csv.DictReader(path.open())]
if len(rows) < 2:
    raise SystemExit(f"need at least two rows, found {len(rows)} in {args.data}")
n = len(rows)
mean_x = sum(x for x, _ in rows) / n
mean_y = sum(y for _, y in rows) / n
slope = sum((x - mean_x) * (y - mean_y) for x, y in rows) / sum((x - mean_x) ** 2 for x, _ in rows)
intercept = mean_y - slope * mean_x
print(f"trained on {n} rows from {', '.join(p.name for p in files)}: slope={slope:.6f} intercept={intercept:.6f}", flush=True)

out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
(out / "model.json").write_text(json.dumps({"slope": round(slope, 6), "intercept": round(intercept, 6), "rows": n}))
Path("outputs").mkdir(exist_ok=True)  # Azure ML keeps ./outputs as the job's artifacts
(Path("outputs") / "metrics.json").write_text(json.dumps({"rows": n}))
