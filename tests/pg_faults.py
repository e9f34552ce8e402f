"""A TCP proxy in front of a test PostgreSQL server that can lose the answer to a COMMIT.

``CommitEater(server_port)`` listens on a free loopback port and passes bytes both ways.
``eat_next_commit(marker)``: the next transaction that runs a statement containing
``marker`` has its ``COMMIT`` delivered to the server, which commits it; the server's
answer is dropped and the client's connection closed, as when a network or a server dies
after the COMMIT went out. The client cannot know whether it was stored.
``drop_next_statement(marker)``: the next statement containing ``marker`` never reaches the
server; the client's connection is closed instead (the server never ran it).

The client must not negotiate TLS or GSS (``sslmode=disable&gssencmode=disable`` in the DSN
of :meth:`dsn`): the proxy reads the frontend protocol's messages (type byte, length,
body) to find the statements and the COMMIT.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading


class CommitEater:
    def __init__(self, server_port: int) -> None:
        self._server_port = server_port
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self._lock = threading.Lock()
        self._marker: str | None = None
        self._drop: str | None = None
        self.dropped = 0  # how many statements were dropped with their connection
        self.eaten = 0  # how many COMMIT answers were dropped
        self.eaten_event = threading.Event()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def dsn(self, server_dsn: str) -> str:
        """``server_dsn`` through this proxy (same user and database)."""
        rest = server_dsn.split("@", 1)[1]
        db = rest.split("/", 1)[1]
        user = server_dsn.split("://", 1)[1].split("@", 1)[0]
        return (f"postgresql://{user}@127.0.0.1:{self.port}/{db}"
                "?sslmode=disable&gssencmode=disable")

    def eat_next_commit(self, marker: str) -> None:
        with self._lock:
            self._marker = marker
            self.eaten_event.clear()

    def drop_next_statement(self, marker: str) -> None:
        with self._lock:
            self._drop = marker

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()

    # ------------------------------------------------------------------ plumbing
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self._server_port))
            except OSError:
                client.close()
                continue
            link = _Link(client, server)
            threading.Thread(target=self._to_client, args=(link,), daemon=True).start()
            threading.Thread(target=self._to_server, args=(link,), daemon=True).start()

    def _to_client(self, link: _Link) -> None:
        try:
            while True:
                data = link.server.recv(65536)
                if not data:
                    break
                if link.dropping:
                    link.answered.set()
                    continue
                link.client.sendall(data)
        except OSError:
            pass
        finally:
            link.close()

    def _to_server(self, link: _Link) -> None:
        try:
            first = _read_exact(link.client, 4)  # the startup message: length, then body
            (n,) = struct.unpack("!i", first)
            link.server.sendall(first + _read_exact(link.client, n - 4))
            while True:
                head = _read_exact(link.client, 5)
                kind, n = head[:1], struct.unpack("!i", head[1:])[0]
                body = _read_exact(link.client, n - 4)
                if self._statement_to_drop(kind, body):
                    link.close()
                    return
                if self._commit_to_eat(link, kind, body):
                    link.dropping = True
                    link.server.sendall(head + body)
                    link.answered.wait(10)  # the server committed and answered
                    with self._lock:
                        self.eaten += 1
                    self.eaten_event.set()
                    link.close()
                    return
                link.server.sendall(head + body)
        except OSError:
            pass
        finally:
            link.close()

    def _statement_to_drop(self, kind: bytes, body: bytes) -> bool:
        if kind == b"Q":
            text = body.rstrip(b"\0").decode(errors="replace")
        elif kind == b"P":  # Parse: statement name, query text, ...
            text = body.partition(b"\0")[2].partition(b"\0")[0].decode(errors="replace")
        else:
            return False
        with self._lock:
            if self._drop is None or self._drop not in text:
                return False
            self._drop = None
            self.dropped += 1
        return True

    def _commit_to_eat(self, link: _Link, kind: bytes, body: bytes) -> bool:
        text = ""
        if kind == b"Q":
            text = body.rstrip(b"\0").decode(errors="replace")
        elif kind == b"P":  # Parse: statement name, query text, ...
            name, _, rest = body.partition(b"\0")
            text = rest.partition(b"\0")[0].decode(errors="replace")
            link.statements[name] = text
        elif kind == b"B":  # Bind: portal name, statement name, ...
            _, _, rest = body.partition(b"\0")
            text = link.statements.get(rest.partition(b"\0")[0], "")
        with self._lock:
            marker = self._marker
            if marker is not None and marker in text:
                link.marked = True
            if kind == b"Q" and text.strip().upper() in ("COMMIT", "ROLLBACK"):
                hit = link.marked and text.strip().upper() == "COMMIT" and marker is not None
                link.marked = False
                if hit:
                    self._marker = None
                return hit
        return False


class _Link:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.statements: dict[bytes, str] = {}
        self.marked = False
        self.dropping = False
        self.answered = threading.Event()

    def close(self) -> None:
        for s in (self.client, self.server):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()


def _read_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        got = s.recv(n - len(buf))
        if not got:
            raise OSError("closed")
        buf += got
    return buf
