"""A network fault between a client and a real server: a TCP relay that can cut a connection after the server
answered a request and before the client reads the answer (a commit whose reply is lost with the connection)."""
from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class CuttingRelay:
    """Relays 127.0.0.1:port to a real server; once armed, the next answer of the server on any connection is
    swallowed and that connection closed on both sides. Threads end on close()."""

    def __init__(self, url: str, port: int = 0) -> None:
        """Relay to the server of `url` from `port` (0: any free port; self.url names the relay either way)."""
        parts = urlsplit(url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.settimeout(0.2)
        port = self._listener.getsockname()[1]
        self.url = urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{port}")))
        self._armed = threading.Event()
        self.cut = threading.Event()  # set once a connection was cut after the server answered
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, name="cutting-relay", daemon=True)]
        self._threads[0].start()

    def arm(self) -> None:
        self.cut.clear()
        self._armed.set()

    def close(self) -> None:
        self._closed.set()
        for s in [self._listener, *self._sockets]:
            try:
                s.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(5)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            server = socket.create_connection(self._target)
            self._sockets += [client, server]
            for src, dst, answers in ((client, server, False), (server, client, True)):
                t = threading.Thread(target=self._pump, args=(src, dst, answers, client, server), daemon=True)
                self._threads.append(t)
                t.start()

    def _pump(self, src: socket.socket, dst: socket.socket, answers: bool, *pair: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if answers and data and self._armed.is_set():
                self._armed.clear()
                data = b""  # the server's answer never reaches the client
                self.cut.set()
            if not data:
                for s in pair:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            try:
                dst.sendall(data)
            except OSError:
                return
