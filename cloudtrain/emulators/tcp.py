"""The TCP plumbing the emulators' front doors share: a threaded TCP service with start / stop /
``address``, and :func:`splice`, which copies bytes both ways between two sockets until either
closes (the CONNECT proxy's tunnels, the Vertex emulator's TLS front)."""

from __future__ import annotations

import select
import socket
import socketserver
import threading
from typing import Callable

CHUNK = 65536


def _recv(sock: socket.socket) -> bytes:
    return sock.recv(CHUNK)


def splice(a: socket.socket, b: socket.socket, stop: threading.Event,
           read: Callable[[socket.socket], bytes] = _recv) -> None:
    """Copy bytes both ways until either side closes or fails (or ``stop`` is set); ``read`` reads
    what a readable socket has (a TLS socket's buffered bytes too, for instance)."""
    sockets = [a, b]
    while not stop.is_set():
        readable, _, broken = select.select(sockets, [], sockets, 0.5)
        if broken:
            return
        for source in readable:
            try:
                data = read(source)
                if not data:
                    return
                (b if source is a else a).sendall(data)
            except OSError:  # ssl.SSLError too
                return


class TcpService:
    """``handle(connection)`` for each connection to ``host:port`` (0: a free port), each in its thread."""

    def __init__(self, handle: Callable[[socket.socket], None], host: str = "127.0.0.1", port: int = 0, name: str = "tcp") -> None:
        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.name = name
        self.stopping = threading.Event()
        self._server = Server((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> "TcpService":
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
