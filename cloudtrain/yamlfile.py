"""Reading a job spec or config file safely: whatever the file holds, a clear :class:`SpecError`
(exit 2) or the data, never an internal error or a hang.

- the path must be a regular file (not a FIFO, a device such as ``/dev/zero``, or a directory) of
  at most :data:`MAX_BYTES`; nothing more than that is ever read;
- the text must be UTF-8 (a UTF-16 file is named as such, with the fix); NUL bytes are refused;
- YAML is parsed with PyYAML's safe loader, with duplicate keys refused (YAML says keys are
  unique; PyYAML silently keeps the last), nesting bounded (:data:`MAX_DEPTH`), and aliases bounded
  by the size of what they expand to (:data:`MAX_NODES`: a "billion laughs" file is refused at
  once instead of filling memory later);
- integers have at most :data:`MAX_DIGITS` digits (Python refuses to convert longer ones).

Errors quote at most a short excerpt of the input.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path
from typing import Any

from cloudtrain.errors import SpecError

MAX_BYTES = 1 << 20  # 1 MiB: far above any real spec
MAX_DEPTH = 64
MAX_NODES = 100_000
MAX_DIGITS = 1000


def read_text(path: Path, what: str = "job spec") -> str:
    """The file's text, checked: a regular, small, UTF-8 file."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise SpecError(f"cannot read the {what} {path}: {error.strerror}", "check the path") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file (a pipe, a device or a socket)"
        raise SpecError(f"the {what} {path} is {kind}", "give the path of a .yaml file")
    if info.st_size > MAX_BYTES:
        raise SpecError(f"the {what} {path} is {info.st_size:,} bytes, more than a {what} can be ({MAX_BYTES:,})",
                        "check that this is the right file")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as error:
        raise SpecError(f"cannot read the {what} {path}: {error.strerror}", "check the path and its permissions") from None
    if len(raw) > MAX_BYTES:
        raise SpecError(f"the {what} {path} is larger than {MAX_BYTES:,} bytes", "check that this is the right file")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(raw) > 1 and (raw[1:2] == b"\x00" or raw[0:1] == b"\x00")):
        raise SpecError(f"the {what} {path} is UTF-16 text", "save it as UTF-8 (e.g. `iconv -f UTF-16 -t UTF-8`)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise SpecError(f"{path}:{line}: the {what} is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start})",
                        "save the file as UTF-8") from None
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise SpecError(f"{path}:{line}: the {what} holds a NUL byte", "remove it; a spec is text")
    return text


@functools.lru_cache(maxsize=1)
def _loader_class() -> type:
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser where PyYAML was built with it

    class StrictLoader(base):  # type: ignore[valid-type,misc]
        """PyYAML's safe loader, refusing duplicate keys and overlong integers."""

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    hash(key)
                except TypeError:
                    raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value", key_node.start_mark) from None
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {str(key)[:60]!r} (also on line {seen[key].start_mark.line + 1})",
                        key_node.start_mark)
                seen[key] = key_node
            return super().construct_mapping(node, deep=deep)

        def construct_yaml_int(self, node: Any) -> Any:
            digits = sum(c.isdigit() for c in str(node.value))
            if digits > MAX_DIGITS:
                raise yaml.constructor.ConstructorError(None, None, f"an integer of {digits} digits is too long", node.start_mark)
            return super().construct_yaml_int(node)

    StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)
    return StrictLoader


def _check_shape(node: Any, source: str) -> None:
    """Bound the nesting depth and the expanded size (aliases counted each time they are used)."""
    import yaml

    sizes: dict[int, int] = {}

    def size(current: Any, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise SpecError(f"{source}:{current.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep",
                            "a job spec is a few levels deep; check the file")
        known = sizes.get(id(current))
        if known is not None:
            return known
        sizes[id(current)] = MAX_NODES + 1  # a node inside itself (a recursive alias) is too large
        if isinstance(current, yaml.MappingNode):
            total = 1 + sum(size(k, depth + 1) + size(v, depth + 1) for k, v in current.value)
        elif isinstance(current, yaml.SequenceNode):
            total = 1 + sum(size(item, depth + 1) for item in current.value)
        else:
            total = 1
        if total > MAX_NODES:
            raise SpecError(f"{source}: the YAML expands to more than {MAX_NODES:,} values (aliases repeat what they name)",
                            "a job spec is small; check the anchors (&) and aliases (*) in the file")
        sizes[id(current)] = total
        return total

    if node is not None:
        size(node, 0)


def load_yaml(text: str, source: str) -> tuple[Any, Any]:
    """(data, node tree) of YAML ``text``; errors name ``source`` and the line."""
    import yaml

    loader_class = _loader_class()
    try:
        loader = loader_class(text)
        try:
            node = loader.get_single_node()
            _check_shape(node, source)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpecError(f"{where}: not valid YAML: {str(problem)[:200]}", "fix the YAML at that line") from None
    except RecursionError:
        raise SpecError(f"{source}: nested too deeply to read", "a job spec is a few levels deep; check the file") from None
    return data, node


def read_yaml(path: Path, what: str = "job spec") -> tuple[Any, Any]:
    """Read and parse a YAML file with every check of this module."""
    return load_yaml(read_text(path, what), str(path))
