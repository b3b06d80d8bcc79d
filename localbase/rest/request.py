"""Request parameters shared by table and rpc requests: query string, Range, Prefer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from localbase.errors import PostgrestError
from localbase.rest.query import (
    RESERVED_PARAMS,
    Filter,
    LogicTree,
    Preferences,
    QueryError,
    RangeError,
    parse_columns,
    parse_filter,
    parse_logic,
    parse_non_negative_int,
    parse_order,
    parse_prefer,
    parse_range_header,
    parse_select,
)


@contextlib.contextmanager
def query_errors() -> Iterator[None]:
    """Turn :class:`QueryError` and :class:`RangeError` into PostgREST errors."""
    try:
        yield
    except QueryError as exc:
        raise PostgrestError(400, "PGRST100", exc.message, details=exc.details) from exc
    except RangeError as exc:
        raise PostgrestError(
            416, "PGRST103", "Requested range not satisfiable", details=str(exc)
        ) from exc


def preferences(request: Request) -> Preferences:
    prefs = parse_prefer(request.headers.getlist("prefer"))
    if prefs.strict and prefs.invalid:
        raise PostgrestError(
            400,
            "PGRST122",
            "Invalid preferences given with handling=strict",
            details="Invalid preferences: " + ", ".join(prefs.invalid),
        )
    return prefs


@dataclass
class TableQuery:
    select: list[Any]
    filters: list[Filter | LogicTree]
    order: list[Any]
    limit: int | None
    offset: int
    columns: list[str] | None
    on_conflict: list[str] | None

    @classmethod
    def from_request(cls, request: Request, skip: frozenset[str] = frozenset()) -> TableQuery:
        params = request.query_params
        filters: list[Filter | LogicTree] = []
        for key, value in params.multi_items():
            if key in skip:
                continue
            if key in {"or", "and", "not.or", "not.and"}:
                filters.append(parse_logic(key, value))
            elif key.endswith((".or", ".and", ".order", ".limit", ".offset")):
                raise QueryError(
                    f'"failed to parse ({key})"',
                    "filters, order and limits on embedded resources are not supported by"
                    " localbase",
                )
            elif key not in RESERVED_PARAMS:
                filters.append(parse_filter(key, value))
        limit_text, offset_text = params.get("limit"), params.get("offset")
        limit = parse_non_negative_int("limit", limit_text) if limit_text is not None else None
        offset = parse_non_negative_int("offset", offset_text) if offset_text is not None else 0
        if request.method in {"GET", "HEAD"}:
            offset, limit = _intersect_range(offset, limit, request.headers.get("range"))
        columns, on_conflict = params.get("columns"), params.get("on_conflict")
        return cls(
            select=parse_select(params.get("select")),
            filters=filters,
            order=parse_order(params["order"]) if params.get("order") else [],
            limit=limit,
            offset=offset,
            columns=parse_columns(columns) if columns else None,
            on_conflict=parse_columns(on_conflict) if on_conflict else None,
        )


def _intersect_range(offset: int, limit: int | None, header: str | None) -> tuple[int, int | None]:
    """Combine ``limit``/``offset`` with a ``Range`` header: the rows both allow."""
    requested = parse_range_header(header)
    if requested is None:
        return offset, limit
    lower, length = requested
    upper = None if length is None else lower + length  # exclusive
    query_upper = None if limit is None else offset + limit
    start = max(offset, lower)
    ends = [end for end in (upper, query_upper) if end is not None]
    end = min(ends) if ends else None
    return start, None if end is None else max(end - start, 0)
