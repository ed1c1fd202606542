"""The TLS context an HTTP client of Tally gets for a plain `http://` URL: one that loads no CA."""

from __future__ import annotations

import ssl


def unused_context() -> ssl.SSLContext:
    """A context for a client whose URL is `http://`, so it never opens a TLS connection (Tally's
    clients follow no redirects).

    httpx would otherwise load certifi's CA bundle for every client, and `ssl.create_default_context`
    the system's: about a mebibyte each, kept for the daemon's life, for nothing. This one verifies
    like a default context and trusts no CA, so a TLS connection it were ever asked for would fail
    closed rather than open.
    """
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
