"""Reading an HTTP request body with a size cap, shared by the receiver and the pull feed."""

from __future__ import annotations

from starlette.requests import Request

from sync.protocol import BodyTooLarge


async def read_capped(request: Request, cap: int) -> bytes:
    """The request's body, or BodyTooLarge as soon as it (or its declared length) passes `cap`."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > cap:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)
