"""Reading request bodies with a size limit, before any of it is parsed."""

from __future__ import annotations

from starlette.requests import Request

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024


class BodyTooLarge(Exception):
    """The request body is longer than the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"Request body too large: the limit is {limit} bytes")
        self.limit = limit


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes without reading past the limit.

    Raises:
        BodyTooLarge: ``Content-Length`` announces, or the stream delivers, more.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)
