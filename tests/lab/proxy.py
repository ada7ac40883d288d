"""A TCP forwarder that counts the bytes going each way and can stall the line: put it
between vzbackup and a server (S3, sshd) to measure what really crossed the network."""

from __future__ import annotations

import socket
import threading


class CountingProxy:
    """Listens on 127.0.0.1:``port`` and forwards every connection to ``target``.

    ``sent`` counts client-to-server bytes, ``received`` server-to-client bytes. After
    ``stall_after(n)``, once ``n`` bytes were sent the line goes silent: nothing more is
    forwarded either way (a link that died without a word); ``reopen()`` drops the
    stalled connections and forwards again."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.sent = self.received = 0
        self.stalled = threading.Event()
        self._up = threading.Event()
        self._up.set()
        self._limit: int | None = None
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def reset(self) -> None:
        with self._lock:
            self.sent = self.received = 0

    def stall_after(self, sent: int) -> None:
        with self._lock:
            self._limit = self.sent + sent

    def reopen(self) -> None:
        with self._lock:
            self._limit = None
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            _close(s)
        self.stalled.clear()
        self._up.set()

    def close(self) -> None:
        _close(self._listener)
        self.reopen()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self.target)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._sockets += [client, server]
            for src, dst, upstream in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, upstream), daemon=True,
                                 name="proxy-pump").start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if not self._count(data, upstream):
                    self._up.wait()  # silent until reopen() closes both sockets
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(dst)

    def _count(self, data: bytes, upstream: bool) -> bool:
        """Count ``data`` if the line is up; False once it stalls."""
        with self._lock:
            if self.stalled.is_set():
                return False
            if upstream and self._limit is not None and self.sent + len(data) > self._limit:
                self.stalled.set()
                self._up.clear()
                return False
            if upstream:
                self.sent += len(data)
            else:
                self.received += len(data)
            return True


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
