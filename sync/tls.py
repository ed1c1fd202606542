"""TLS contexts: a client's for an `https://` URL, and a server's, loaded from its certificate
and key."""

from __future__ import annotations

import ssl

from agent.config import ConfigError


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context holding `cert_file` and its `key_file`; OSError or ssl.SSLError if they
    do not load (the caller says which setting named them)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def client_context(ca_file: str, client_cert: str, client_key: str, key: str) -> ssl.SSLContext:
    """A client context for an `https://` URL: `ca_file` (else the system's CAs) and an optional
    client certificate; ConfigError naming `key` (`sync`, `peer NAME`) when a file cannot be used.
    """
    try:
        ctx = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            [f"{key}.ca_file: cannot load {ca_file!r} ({exc}); give a PEM file of CA certificates"]
        ) from None
    if client_cert:
        try:
            ctx.load_cert_chain(client_cert, client_key or None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                [
                    f"{key}.client_cert: cannot load {client_cert!r} with its key ({exc});"
                    " give a PEM certificate and its private key"
                ]
            ) from None
    elif client_key:
        raise ConfigError([f"{key}.client_key: is set without {key}.client_cert; set both"])
    return ctx
