"""A listening TCP socket bound before a server starts, and what to do when it cannot be."""

from __future__ import annotations

import errno
import socket


def listen_socket(listen: str, backlog: int = 128) -> socket.socket:
    """A TCP socket bound to `HOST:PORT` (`[::1]:PORT` for IPv6) and listening, non-blocking;
    OSError if the address cannot be bound."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def listen_advice(exc: OSError, setting: str) -> str:
    """What to do when `setting` (`[feed] listen`, `--listen`) names an address that cannot be
    bound, by the cause."""
    if exc.errno == errno.EADDRINUSE:
        return f"stop the program holding that port or set {setting} to a free one"
    if exc.errno == errno.EACCES:
        return "use a port above 1023 or give the service the right to bind it"
    return f"set {setting} to an address of this PC (0.0.0.0 for all of them)"
