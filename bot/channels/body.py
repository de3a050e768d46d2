"""Reading a webhook body without letting a client make us hold more than a limit."""

from __future__ import annotations

from starlette.requests import Request


async def read_limited_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is (or claims to be) over `limit` bytes. A
    body sent without Content-Length is cut off as soon as it passes the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
