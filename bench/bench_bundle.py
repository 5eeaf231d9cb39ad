"""Code bundle: peak memory and walks of the code directory per submission, streamed vs in memory.

    .venv/bin/python bench/bench_bundle.py [--mib 200]

Builds a code directory holding one large file (sparse zeros) and a few small ones, then, each in
a fresh process (so that peak RSS is its own): the in-memory bundle cloudtrain built up to commit
ff10a5b (read each file into bytes, gzip into a BytesIO), and today's :func:`make_bundle`
(streamed to a temporary file). For each it prints the tracemalloc peak of Python memory, the
process's peak RSS (``resource.getrusage``), the time, and how many times a submission walks the
code directory (fingerprint for ``submit --resume`` then the bundle; counted as ``os.scandir`` calls
on the code directory itself).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def in_memory_bundle(code_dir: Path) -> tuple[str, int]:
    """The way of cloudtrain <= ff10a5b: each file's bytes, then the whole archive, in memory."""
    from cloudtrain.providers.bundle import bundle_files

    buffer = io.BytesIO()
    files = bundle_files(code_dir)
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped:
        with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, path in files.items():
                info = tarfile.TarInfo(name)
                data = path.read_bytes()
                info.size, info.mtime, info.mode = len(data), 0, 0o755 if os.access(path, os.X_OK) else 0o644
                tar.addfile(info, io.BytesIO(data))
    data = buffer.getvalue()
    return hashlib.sha256(data).hexdigest(), len(data)


def old_fingerprint(code_dir: Path) -> str:
    """code_fingerprint <= ff10a5b: a walk of its own and each file's bytes at once."""
    from cloudtrain.providers.bundle import bundle_files

    digest = hashlib.sha256()
    for name, path in bundle_files(code_dir).items():
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def measure(way: str, code_dir: Path) -> dict[str, object]:
    from cloudtrain.providers import bundle

    walks = 0
    scandir = os.scandir

    def counting(path: object = ".") -> object:
        nonlocal walks
        if isinstance(path, (str, bytes, os.PathLike)):  # shutil.rmtree scans by file descriptor
            walks += os.path.realpath(os.fsdecode(path)) == os.path.realpath(code_dir)
        return scandir(path)  # type: ignore[arg-type]

    os.scandir = counting  # type: ignore[assignment]
    tracemalloc.start()
    started = time.perf_counter()
    if way == "in-memory":
        fingerprint = old_fingerprint(code_dir)  # the runner's record, then the provider's stage
        sha256, size = in_memory_bundle(code_dir)
    else:
        fingerprint = bundle.code_fingerprint(code_dir)
        with bundle.make_bundle(code_dir, reuse=True) as built:
            sha256, size = built.sha256, built.size_bytes
            assert built.fingerprint == fingerprint
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    os.scandir = scandir  # type: ignore[assignment]
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"way": way, "sha256": sha256, "archive_bytes": size, "python_peak_mib": peak / 2**20,
            "peak_rss_mib": rss_kib / 1024, "seconds": seconds, "walks": walks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200, help="size of the large file (default 200)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(measure(options.child[0], Path(options.child[1]))))
        return
    with tempfile.TemporaryDirectory(prefix="bench-bundle-") as folder:
        code = Path(folder)
        (code / "train.py").write_text("print('train')\n")
        (code / "pkg").mkdir()
        for index in range(50):
            (code / "pkg" / f"module_{index}.py").write_text(f"VALUE = {index}\n" * 100)
        with open(code / "weights.bin", "wb") as handle:
            handle.truncate(options.mib * 1024 * 1024)
        print(f"code directory: one {options.mib} MiB file and 51 small ones")
        results = []
        for way in ("in-memory", "streamed"):
            output = subprocess.run([sys.executable, __file__, "--child", way, str(code)], check=True, capture_output=True,
                                    text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
            results.append(json.loads(output.strip().splitlines()[-1]))
        for result in results:
            print(f"{result['way']:>9}: Python peak {result['python_peak_mib']:8.1f} MiB, peak RSS {result['peak_rss_mib']:8.1f} MiB,"
                  f" {result['seconds']:6.2f} s, walks of the code per submit: {result['walks']},"
                  f" archive {result['archive_bytes']} bytes, sha256 {str(result['sha256'])[:12]}")
        print("same archive bytes:", results[0]["sha256"] == results[1]["sha256"])


if __name__ == "__main__":
    main()
