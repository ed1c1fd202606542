"""Binding a server's listening address (`sync/listen.py`), and what to do when it fails."""

from __future__ import annotations

import socket

import pytest

from sync.listen import listen_advice, listen_socket


def test_a_feed_that_cannot_bind_says_what_to_do() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        with pytest.raises(OSError) as taken:
            listen_socket(f"127.0.0.1:{holder.getsockname()[1]}")
    assert listen_advice(taken.value, "[feed] listen") == (
        "stop the program holding that port or set [feed] listen to a free one"
    )
    # an address of no interface here (TEST-NET-1): bind refuses it, nothing is sent
    with pytest.raises(OSError) as foreign:
        listen_socket("192.0.2.1:0")
    assert listen_advice(foreign.value, "[feed] listen") == (
        "set [feed] listen to an address of this PC (0.0.0.0 for all of them)"
    )
