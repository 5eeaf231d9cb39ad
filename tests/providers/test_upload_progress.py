"""Uploads of the code bundle and local inputs report their bytes to the installed reporter."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Iterator

import pytest

from cloudtrain import progress
from cloudtrain.specfile import load_spec
from cloudtrain.testing import Backend
from cloudtrain.testing.projects import SUCCEEDS, write_project


@pytest.fixture()
def transfers() -> Iterator[list[list]]:
    seen: list[list] = []

    @contextlib.contextmanager
    def reporter(label: str, total: int) -> Iterator[progress.Advance]:
        entry = [label, total, 0]
        seen.append(entry)
        yield lambda sent: entry.__setitem__(2, entry[2] + sent)

    previous = progress.set_reporter(reporter)
    try:
        yield seen
    finally:
        progress.set_reporter(previous)


def test_code_and_inputs_report_every_byte(backend: Backend, tmp_path: Path, transfers: list[list]) -> None:
    if backend.name == "local":
        pytest.skip("local: nothing is uploaded")
    if backend.name == "azureml":
        pytest.skip("azureml: the SDK uploads the code itself, inside its create call")
    spec = write_project(tmp_path / "job", SUCCEEDS)
    (spec.parent / "weights.bin").write_bytes(os.urandom(3 << 20))  # an incompressible bundle above the bar's threshold
    data = spec.parent.parent / "data"
    data.mkdir()
    for index in range(3):
        (data / f"part-{index}.bin").write_bytes(os.urandom(1 << 20))
    runner = backend.runner
    runner.submit(runner.plan(load_spec(spec, [*backend.overrides, f"inputs.train={data}"]), backend.name))
    by_label = {label.split(" -> ")[0]: (total, sent) for label, total, sent in transfers}
    assert by_label["code"][0] > 3 << 20 and by_label["code"][0] == by_label["code"][1], transfers
    assert by_label[str(data)] == (3 << 20, 3 << 20), transfers


def test_small_transfers_and_no_reporter_show_nothing(transfers: list[list]) -> None:
    with progress.transfer("small", 10) as advance:
        advance(10)
    assert transfers == []
    progress.set_reporter(None)
    with progress.transfer("large", 10 << 20) as advance:
        advance(10 << 20)
    assert transfers == []  # no reporter installed: a large transfer is not reported either


def test_read_counter_counts_rereads_once() -> None:
    sent: list[int] = []
    reader = progress.ReadCounter(io.BytesIO(b"x" * 100), sent.append)
    reader.read(60)
    reader.seek(0)
    reader.read()
    assert sum(sent) == 100 and reader.tell() == 100


def test_the_rich_bar_shows_bytes_and_rate() -> None:
    from rich.console import Console

    out = io.StringIO()
    reporter = progress.rich_reporter(Console(file=out, force_terminal=True, width=120))
    with reporter("code -> s3://bucket/code.tar.gz", 2 << 20) as advance:
        advance(1 << 20)
        advance(1 << 20)
    shown = out.getvalue()
    assert "code -> s3://bucket/code.tar.gz" in shown and "2.1 MB" in shown, shown
