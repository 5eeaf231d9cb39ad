"""Local executor overhead: `cloudtrain run` of a trivial entrypoint versus `python` running it (target < 0.3 s)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from _timing import BIN, time_command


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "train.py").write_text("from cloudtrain.runtime import context\ncontext().log_metric('x', 1.0)\n")
        (root / "job.yaml").write_text("name: overhead\ncode: .\nentrypoint: train.py\n")
        env = {"CLOUDTRAIN_HOME": str(root / "home"), "CLOUDTRAIN_RUN_DIR": str(root / "plain")}
        plain, _ = time_command([str(BIN / "python"), str(root / "train.py")], env=env, cwd=root)
        env.pop("CLOUDTRAIN_RUN_DIR")
        run, _ = time_command([str(BIN / "cloudtrain"), "run", str(root / "job.yaml"), "--quiet"], env=env, cwd=root)
    overhead = run - plain
    print(f"python train.py      median {plain * 1000:7.1f} ms")
    print(f"cloudtrain run       median {run * 1000:7.1f} ms")
    print(f"executor overhead           {overhead * 1000:7.1f} ms  {'OK' if overhead < 0.3 else 'OVER the 300 ms target'}")


if __name__ == "__main__":
    main()
