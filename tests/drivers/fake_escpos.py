"""A network ESC/POS printer on loopback for tests: answers the paper-status query, keeps jobs."""

from __future__ import annotations

import socket
import threading


class FakeEscposPrinter:
    """Listens on 127.0.0.1 once `start()`ed; `paper_out` makes it report an empty roll."""

    def __init__(self) -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()  # nothing listens until start(): the printer is "off"
        self.jobs: list[bytes] = []
        self.paper_out = False
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def device(self) -> str:
        """The [[printer]] device string that reaches it."""
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Switch the printer on."""
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        server = self._server  # its own reference: stop() clears the attribute, then closes it
        assert server is not None
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed by stop()
                return
            with conn:
                data = b""
                while len(data) < 3:
                    chunk = conn.recv(3 - len(data))
                    if not chunk:
                        break
                    data += chunk
                if data == b"\x10\x04\x04":
                    conn.sendall(b"\x72" if self.paper_out else b"\x12")
                    data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                if data and not self.paper_out:
                    self.jobs.append(data)

    def stop(self) -> None:
        """Switch the printer off."""
        if self._server is not None:
            self._server.close()
            self._server = None
