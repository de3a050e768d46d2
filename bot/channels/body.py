"""Reading a webhook body without letting a client make us hold more than a limit."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request


async def read_limited_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is (or claims to be) over `limit` bytes or the
    client went away before sending it all (a slow body is cut off by the
    server's body timeout). A body sent without Content-Length is cut off as
    soon as it passes the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    except ClientDisconnect:
        return None  # nobody to answer; no traceback per aborted upload
    return b"".join(chunks)
