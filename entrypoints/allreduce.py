"""A small sum all-reduce of numpy arrays over TCP, for the MPI and TensorFlow-style examples.

Rank 0 listens at ``address`` (host, port); every other rank connects to it. Each :meth:`sum` call
sends the rank's array, rank 0 adds them all up (in rank order, so every run sums the same way) and
sends the total back to everyone. Messages are length-prefixed ``numpy.save`` bytes. This stands in
for what Horovod (``hvd.allreduce``) or TensorFlow's collective ops do, with no library to install.
"""

from __future__ import annotations

import io
import socket
import struct
import time

import numpy as np


def _send(sock: socket.socket, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    data = buffer.getvalue()
    sock.sendall(struct.pack("!Q", len(data)) + data)


def _receive(sock: socket.socket) -> np.ndarray:
    def exactly(count: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < count:
            chunk = sock.recv(count - len(chunks))
            if not chunk:
                raise ConnectionError("all-reduce peer closed the connection")
            chunks += chunk
        return bytes(chunks)

    (length,) = struct.unpack("!Q", exactly(8))
    return np.load(io.BytesIO(exactly(length)), allow_pickle=False)


class TcpAllReduce:
    def __init__(self, rank: int, world_size: int, address: tuple[str, int], timeout: float = 120.0):
        self.rank, self.world_size = rank, world_size
        self.peers: dict[int, socket.socket] = {}
        if world_size == 1:
            return
        if rank == 0:
            server = socket.create_server(("", address[1]) if address[0] not in ("127.0.0.1", "localhost") else address)
            server.settimeout(timeout)
            while len(self.peers) < world_size - 1:
                conn, _ = server.accept()
                conn.settimeout(timeout)
                self.peers[int(_receive(conn))] = conn
            server.close()
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    self.root = socket.create_connection(address, timeout=timeout)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            _send(self.root, np.array(rank))

    def sum(self, array: np.ndarray) -> np.ndarray:
        if self.world_size == 1:
            return array
        if self.rank == 0:
            total = array.copy()
            for rank in sorted(self.peers):
                total = total + _receive(self.peers[rank])
            for conn in self.peers.values():
                _send(conn, total)
            return total
        _send(self.root, array)
        return _receive(self.root)

    def close(self) -> None:
        for conn in [*self.peers.values(), *([self.root] if hasattr(self, "root") else [])]:
            conn.close()
