"""Content negotiation, Content-Range and response bodies (protocol doc §3.3, §3.4)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from localbase.errors import PostgrestError

JSON_TYPE = "application/json; charset=utf-8"
OBJECT_MEDIA_TYPE = "application/vnd.pgrst.object+json"
_ARRAY_TYPES = {"application/json", "application/*", "*/*", "application/vnd.pgrst.array+json",
                "application/vnd.pgrst.array"}  # fmt: skip
_OBJECT_TYPES = {OBJECT_MEDIA_TYPE, "application/vnd.pgrst.object"}


@dataclass(frozen=True)
class Representation:
    """How rows are returned: an array or one object, with or without null fields."""

    singular: bool = False
    strip_nulls: bool = False


@dataclass
class Result:
    body: str  # JSON array text
    first: str | None  # JSON text of the first row
    count: int
    inserted: int | None = None  # rows an upsert inserted (not updated)


def negotiate(request: Request) -> Representation:
    """Pick the first media type of ``Accept`` that localbase produces.

    Raises:
        PostgrestError: 406 ``PGRST107`` when none is (CSV, GeoJSON, plans, ...).
    """
    header = request.headers.get("accept", "").strip()
    if not header:
        return Representation()
    for entry in header.split(","):
        media, *params = (piece.strip() for piece in entry.split(";"))
        media = media.lower()
        strip = any(param.replace(" ", "").lower() == "nulls=stripped" for param in params)
        if media in _OBJECT_TYPES:
            return Representation(singular=True, strip_nulls=strip)
        if media in _ARRAY_TYPES:
            return Representation(strip_nulls=strip)
    raise PostgrestError(
        406,
        "PGRST107",
        f"None of these media types are available: {header}",
        hint="localbase answers application/json and application/vnd.pgrst.object+json"
        " (CSV, GeoJSON and query plans are not supported)",
    )


def not_singular(count: int) -> PostgrestError:
    return PostgrestError(
        406,
        "PGRST116",
        "Cannot coerce the result to a single JSON object",
        details=f"The result contains {count} rows",
    )


def json_response(
    result: Result,
    representation: Representation,
    status: int,
    headers: dict[str, str],
    *,
    head: bool = False,
) -> Response:
    if representation.singular:
        body, media_type = result.first or "null", f"{OBJECT_MEDIA_TYPE}; charset=utf-8"
    else:
        body, media_type = result.body, JSON_TYPE
    return Response(
        b"" if head else body, status_code=status, media_type=media_type, headers=headers
    )


def read_status_and_range(offset: int, count: int, total: int | None) -> tuple[int, str]:
    """PostgREST's status and ``Content-Range`` for ``count`` rows read from ``offset``.

    Raises:
        PostgrestError: 416 ``PGRST103`` when a counted read starts past the last row.
    """
    total_text = "*" if total is None else str(total)
    if total is not None and offset > total:
        raise PostgrestError(
            416,
            "PGRST103",
            "Requested range not satisfiable",
            details=f"An offset of {offset} was requested, but there are only {total} rows.",
        )
    content_range = f"{offset}-{offset + count - 1}/{total_text}" if count else f"*/{total_text}"
    status = 206 if total is not None and count < total else 200
    return status, content_range
