"""Several emulators in one process and one shell: ``cloudtrain emulator start --cloud sagemaker --cloud vertex``.

Each emulator exports an HTTPS proxy of its own (``HTTPS_PROXY``, ``https_proxy``; Vertex also
``grpc_proxy``) that sends its cloud's hostnames to it and passes every other host through, and
Azure ML and Vertex each export a ``REQUESTS_CA_BUNDLE`` with their own CA. Exported in one shell,
the last emulator's proxy and bundle win: the other clouds' hostnames (``sts.<region>.amazonaws.com``
for the SageMaker SDK, ``*-aiplatform.googleapis.com``...) pass through to the real hosts, and
certificates of the other emulators' CAs no longer verify.

:class:`EmulatorGroup` starts the emulators, then one :class:`~cloudtrain.emulators.proxy.ConnectProxy`
holding every member's routes, and exports their variables merged (:func:`merge_environments`): the
proxy variables name the one proxy, ``NO_PROXY`` lists are joined, and a CA bundle named by several
members is replaced by one file holding each of their certificates once (the system's roots and
every emulator's CA). Any other variable two members export with different values is refused. The
members' own jobs keep their emulator's variables.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from cloudtrain.emulators.common import Emulator, ScratchRoot

PROXY_KEYS = ("HTTPS_PROXY", "https_proxy", "grpc_proxy")
LIST_KEYS = ("NO_PROXY", "no_proxy", "no_grpc_proxy")
#: CA bundle variables (a file of PEM certificates) that are merged when members name different files.
BUNDLE_KEYS = ("REQUESTS_CA_BUNDLE", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "AWS_CA_BUNDLE", "SSL_CERT_FILE")
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class EnvironmentClash(ValueError):
    """Two emulators export one variable with different values that cannot be merged."""


def merged_bundle(paths: Iterable[str], target: Path) -> Path:
    """``target`` holding every certificate of the bundles at ``paths``, each once, in order."""
    certificates = dict.fromkeys(c for path in paths for c in _PEM.findall(Path(path).read_bytes()))
    target.write_bytes(b"\n".join(certificates) + b"\n")
    return target


def merge_environments(environments: Mapping[str, Mapping[str, str]], proxy_url: str, directory: Path) -> dict[str, str]:
    """One environment from each member's (``title -> variables``): proxy variables set to
    ``proxy_url``, lists joined, differing CA bundles merged into files under ``directory``."""
    values: dict[str, dict[str, str]] = {}  # variable -> {title: value}
    for title, environment in environments.items():
        for key, value in environment.items():
            values.setdefault(key, {})[title] = value
    merged: dict[str, str] = {}
    clashes = []
    for key, by_title in values.items():
        distinct = list(dict.fromkeys(by_title.values()))
        if key in PROXY_KEYS:
            merged[key] = proxy_url
        elif key in LIST_KEYS:
            merged[key] = ",".join(dict.fromkeys(i.strip() for v in distinct for i in v.split(",") if i.strip()))
        elif len(distinct) == 1:
            merged[key] = distinct[0]
        elif key in BUNDLE_KEYS:
            merged[key] = str(merged_bundle(distinct, directory / f"{key.lower()}.pem"))
        else:
            clashes.append(f"{key} ({', '.join(f'{title}: {value}' for title, value in by_title.items())})")
    if clashes:
        raise EnvironmentClash("these emulators export different values of " + "; ".join(clashes)
                               + ": start them in separate shells")
    return merged


class EmulatorGroup:
    """Started emulators behind one proxy; ``with EmulatorGroup([a, b]) as group:`` and
    :meth:`environment` as for one emulator. ``passthrough``: other hosts go to the real host
    (False: refused, for tests); every member must have a proxy (:meth:`Emulator.connect_proxy`)
    unless it exports no proxy variable."""

    title = "emulators"

    def __init__(self, members: Iterable[Emulator], *, passthrough: bool = True, host: str = "127.0.0.1") -> None:
        self.members = list(members)
        self.passthrough, self.host = passthrough, host
        self.proxy: Any = None
        self._scratch: ScratchRoot | None = None
        self._environment: dict[str, str] | None = None

    def start(self) -> "EmulatorGroup":
        from cloudtrain.emulators.proxy import ConnectProxy

        try:
            for member in self.members:
                member.start()
            self.proxy = ConnectProxy(host=self.host, passthrough=self.passthrough)
            for member in self.members:
                routes = getattr(member.connect_proxy(), "routes", None)
                if routes is None and any(key in member.environment() for key in PROXY_KEYS):
                    raise EnvironmentClash(f"the {member.title} emulator exports a proxy whose routes are unknown")
                for pattern, address in (routes or {}).items():
                    self.proxy.add_route(pattern, address)
            self.proxy.start()
            self._scratch = ScratchRoot(None, "cloudtrain-emulators-")
            self._environment = merge_environments({m.title: m.environment() for m in self.members}, self.proxy.url,
                                                   self._scratch.path)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        for member in reversed(self.members):
            member.stop()
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
        self._environment = None

    def __enter__(self) -> "EmulatorGroup":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def environment(self) -> dict[str, str]:
        """What a shell exports to reach every member (see the module docstring)."""
        if self._environment is None:
            raise RuntimeError("the emulators are not started")
        return dict(self._environment)
