"""The bundled tables' parsed copy in the cache directory: the same rows as parsing, renewed when
a table changes, ignored when damaged."""

from __future__ import annotations

import marshal

from cloudtrain.catalog import parsed


def test_the_cached_copy_gives_the_parsed_rows(tmp_path):
    fresh = parsed.parse()
    first = parsed.bundled(str(tmp_path))
    assert (tmp_path / parsed.FILE).is_file()
    again = parsed.bundled(str(tmp_path))  # read from the copy
    assert first == fresh and again == fresh
    assert sum(len(rows) for rows in again[0].values()) > 100 and any(o.price_as_of for rows in again[1].values() for o in rows)


def test_a_copy_with_another_stamp_is_parsed_again(tmp_path):
    parsed.bundled(str(tmp_path))
    path = tmp_path / parsed.FILE
    saved = marshal.loads(path.read_bytes())
    saved["rows"]["machines"] = {cloud: [] for cloud in saved["rows"]["machines"]}  # what an old table held
    saved["stamp"] = ("another version",)
    path.write_bytes(marshal.dumps(saved))
    assert parsed.bundled(str(tmp_path)) == parsed.parse()
    assert marshal.loads(path.read_bytes())["stamp"] == parsed._stamp()


def test_a_damaged_copy_is_ignored_and_replaced(tmp_path):
    (tmp_path / parsed.FILE).write_bytes(b"\x00not marshal")
    assert parsed.bundled(str(tmp_path)) == parsed.parse()
    assert marshal.loads((tmp_path / parsed.FILE).read_bytes())["stamp"] == parsed._stamp()
