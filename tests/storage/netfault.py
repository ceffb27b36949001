"""A real TCP link to PostgreSQL that a test can cut: connections reset mid-transfer, new ones refused.

Pointing a client at a closed port tests "the server is gone before we
start"; this tests the harder case, a network that fails in the middle of a
push or an ingest transaction. Nothing in the kiosk knows it is there.
"""

from __future__ import annotations

import socket
import struct
import threading


class CuttableLink:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._down = False
        self._cut_after: int | None = None
        self.forwarded = 0  # bytes client -> server
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, name="link-accept", daemon=True).start()

    def url(self, base: str) -> str:
        """``base`` (a postgresql URL on 127.0.0.1:5432) rewritten to go through this link."""
        host, port = self.upstream
        return base.replace(f"@{host}:{port}/", f"@127.0.0.1:{self.port}/")

    # -- control -------------------------------------------------------------
    def cut(self) -> None:
        """Reset every open connection and refuse new ones until ``restore``."""
        with self._lock:
            self._down = True
            self.cuts += 1
            conns, self._conns = self._conns, []
        for s in conns:
            _reset(s)

    def restore(self) -> None:
        with self._lock:
            self._down = False

    def cut_after(self, nbytes: int) -> None:
        """Cut once ``nbytes`` more bytes have gone towards the server (in the middle of whatever runs)."""
        with self._lock:
            self._cut_after = self.forwarded + nbytes

    @property
    def down(self) -> bool:
        return self._down

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()

    # -- plumbing ------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._down:
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                _reset(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._conns += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, to_server: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                if to_server:
                    trip = False
                    with self._lock:
                        self.forwarded += len(data)
                        if self._cut_after is not None and self.forwarded >= self._cut_after:
                            self._cut_after = None
                            trip = True
                    if trip:
                        self.cut()
                        return
        except OSError:
            pass
        finally:
            _reset(src)
            _reset(dst)


def _reset(s: socket.socket) -> None:
    """Drop a connection at once: wake any thread blocked on it, then close with a reset."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass
