"""The demo job's figure: test accuracy of examples/digits-sklearn.yaml (target >= 0.95), via `cloudtrain run --json`."""

from __future__ import annotations

import json
import subprocess
import tempfile

from _timing import BIN, REPO


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        result = subprocess.run([str(BIN / "cloudtrain"), "run", str(REPO / "examples" / "digits-sklearn.yaml"), "--json", "--quiet"],
                                capture_output=True, text=True, env={"CLOUDTRAIN_HOME": home, "PATH": str(BIN)}, check=True)
    summary = json.loads(result.stdout)
    accuracy = summary["metrics"]["test_accuracy"]
    print(f"digits-sklearn: test accuracy {accuracy:.4f} (validation {summary['metrics']['val_accuracy']:.4f}), "
          f"{summary['duration_seconds']:.1f} s  {'OK' if accuracy >= 0.95 else 'BELOW the 0.95 target'}")


if __name__ == "__main__":
    main()
