"""A TCP proxy in front of the sandbox cluster that stops answering, as a broken middlebox,
a frozen VM or a half-open link behind a NAT does: the TCP connection stays up, nothing
comes back.

`StallProxy(port, after_queries=K)` forwards each connection faithfully, login included,
until the client has sent K queries (a query ends with a Query or a Sync message of the
PostgreSQL protocol); from the first message of the next query on, it reads and drops what
the client sends, so the server never sees that query and never answers.
`after_queries=None` never reaches a server: it accepts connections and stays silent, from
the first byte.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType

# request codes of the untyped messages a client may send before its startup message
_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


class _ClientMessages:
    """Splits the client's byte stream into protocol messages, counting queries."""

    def __init__(self) -> None:
        self.buffer = b""
        self.started = False  # past the startup message: every message has a type byte
        self.queries = 0

    def feed(self, data: bytes, limit: int) -> tuple[bytes, bool]:
        """The bytes to forward, and whether a query past the limit began (the rest of the
        stream is to be dropped)."""
        self.buffer += data
        out = b""
        while True:
            head = 5 if self.started else 4
            if len(self.buffer) < head:
                return out, False
            if self.started:
                kind = self.buffer[:1]
                (length,) = struct.unpack("!i", self.buffer[1:5])
                size = 1 + length
            else:
                kind = b""
                (size,) = struct.unpack("!i", self.buffer[:4])
            if len(self.buffer) < size:
                return out, False
            # 'p' messages answer the server's authentication requests: part of the login
            if self.started and kind != b"p" and self.queries >= limit:
                return out, True
            message, self.buffer = self.buffer[:size], self.buffer[size:]
            out += message
            if not self.started:
                (code,) = struct.unpack("!i", message[4:8])
                self.started = code not in (_SSL_REQUEST, _GSSENC_REQUEST)
            elif kind in (b"Q", b"S"):
                self.queries += 1


class StallProxy:
    def __init__(self, upstream_port: int, *, after_queries: int | None) -> None:
        self.upstream_port = upstream_port
        self.after_queries = after_queries
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.stopping = False
        #: connections that reached the stall (or, silent, that were accepted)
        self.stalled = 0

    def dsn(self, dbname: str, user: str = "postgres", **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}" + (
            f"?{query}" if query else ""
        )

    def __enter__(self) -> StallProxy:
        self._spawn(self._accept)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with self.lock:
            self.stopping = True
            sockets = [self.listener, *self.sockets]
        for sock in sockets:
            with contextlib.suppress(OSError):  # never connected, or already shut
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self.threads:
            thread.join(timeout=10)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self.threads.append(thread)
        thread.start()

    def _keep(self, sock: socket.socket) -> bool:
        with self.lock:
            if self.stopping:
                sock.close()
                return False
            self.sockets.append(sock)
            return True

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if not self._keep(client):
                return
            if self.after_queries is None:
                with self.lock:
                    self.stalled += 1
                self._spawn(self._drain, client)
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            if not self._keep(server):
                return
            self._spawn(self._client_to_server, client, server)
            self._spawn(self._server_to_client, server, client)

    def _drain(self, client: socket.socket) -> None:
        try:
            while client.recv(65536):
                pass
        except OSError:
            pass

    def _client_to_server(self, client: socket.socket, server: socket.socket) -> None:
        messages = _ClientMessages()
        limit = self.after_queries if self.after_queries is not None else 0
        try:
            while data := client.recv(65536):
                forward, stall = messages.feed(data, limit)
                if forward:
                    server.sendall(forward)
                if stall:
                    with self.lock:
                        self.stalled += 1
                    self._drain(client)
                    break
        except OSError:
            pass
        # the client hung up (or we are closing): so does the server's side
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)

    def _server_to_client(self, server: socket.socket, client: socket.socket) -> None:
        try:
            while data := server.recv(65536):
                client.sendall(data)
        except OSError:
            pass
