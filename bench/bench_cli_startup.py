"""Start-up figures: `cloudtrain --help` (target < 0.25 s) and `cloudtrain estimate` of a GPU job (target < 0.35 s)."""

from __future__ import annotations

import tempfile

from _timing import BIN, REPO, time_command

GPU_JOB = REPO / "examples" / "digits-cnn.yaml"


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        env = {"CLOUDTRAIN_HOME": home}
        for label, argv, target in [
            ("python -c pass (floor)", [str(BIN / "python"), "-c", "pass"], None),
            ("cloudtrain --help", [str(BIN / "cloudtrain"), "--help"], 0.25),
            (f"cloudtrain estimate {GPU_JOB.relative_to(REPO)}", [str(BIN / "cloudtrain"), "estimate", str(GPU_JOB)], 0.35),
        ]:
            median, best = time_command(argv, env=env)
            verdict = "" if target is None else ("  OK" if median < target else f"  OVER the {target} s target")
            print(f"{label:55s} median {median * 1000:7.1f} ms   best {best * 1000:7.1f} ms{verdict}")


if __name__ == "__main__":
    main()
