"""Reads through postgrest-py: select shapes, every filter, order, ranges, counts, embedding."""

from __future__ import annotations

import httpx
import pytest
from postgrest.exceptions import APIError
from supabase import AsyncClient

from localbase.server import LocalbaseThread

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("items")]


async def _ids(builder: object) -> list[int]:
    response = await builder.order("id").execute()  # type: ignore[attr-defined]
    return [row["id"] for row in response.data]


async def test_renames_casts_and_json_paths(service_client: AsyncClient) -> None:
    row = (
        await service_client.table("lbtest_items")
        .select("id, label:name, n_text:n::text, data->k, x:data->nested->>x, tags")
        .eq("id", 1)
        .single()
        .execute()
    ).data

    assert row == {
        "id": 1,
        "label": "apple",
        "n_text": "3",
        "k": 1,
        "x": "a",
        "tags": ["red", "fruit"],
    }


async def test_every_filter_operator(service_client: AsyncClient) -> None:
    t = lambda: service_client.table("lbtest_items").select("id")  # noqa: E731
    cases = {
        "eq": (t().eq("name", "banana"), [2]),
        "neq": (t().neq("n", 3), [2, 4, 5]),
        "gt": (t().gt("n", 3), [2, 4]),
        "gte": (t().gte("n", 3), [1, 2, 4]),
        "lt": (t().lt("n", 3), [5]),
        "lte": (t().lte("n", 3), [1, 5]),
        "like": (t().like("name", "*an*"), [2, 5]),
        "ilike": (t().ilike("name", "e%"), [5]),
        "is null": (t().is_("n", None), [3]),
        "is true": (t().is_("flag", True), [1, 4]),
        "in": (t().in_("name", ["apple", "date", "x,y"]), [1, 4]),
        "cs": (t().contains("tags", ["fruit"]), [1, 2]),
        "cd": (t().contained_by("tags", ["orange", "veg", "red"]), [3, 4]),
        "ov": (t().overlaps("tags", ["veg", "yellow"]), [2, 3, 5]),
        "json cs": (t().contains("data", {"k": 2}), [2]),
        "json path": (t().eq("data->>k", "3"), [4]),
        "not": (t().not_.in_("id", [1, 2]), [3, 4, 5]),
        "not is": (t().not_.is_("note", None), [2, 3, 5]),
        "or": (t().or_("n.gt.5,name.eq.apple"), [1, 4]),
        "nested and": (t().or_("and(n.gt.1,n.lt.5),id.eq.3"), [1, 3]),
        "match": (t().match({"flag": False, "n": 1}), [5]),
        "like any": (t().like_any_of("name", "a*,c*"), [1, 3]),
        "imatch": (t().filter("name", "imatch", "^e"), [5]),
        "isdistinct": (t().filter("flag", "isdistinct", "true"), [2, 3, 5]),
        "range sl": (t().range_lt("rng", (6, 9)), [1, 4]),
        "range adj": (t().range_adjacent("rng", (9, 12)), [2]),
        "fts": (t().text_search("body", "quick"), [1, 3]),
        "fts config": (
            t().text_search("body", "dog", options={"config": "english", "type": "plain"}),
            [2],
        ),
        "gt any": (t().filter("n", "gt(any)", "{7,4}"), [2, 4]),
    }
    results = {name: await _ids(builder) for name, (builder, _) in cases.items()}

    assert results == {name: expected for name, (_, expected) in cases.items()}


async def test_order_with_nulls_first_and_last(service_client: AsyncClient) -> None:
    t = service_client.table("lbtest_items")
    first = (await t.select("id").order("n", desc=True, nullsfirst=True).execute()).data
    last = (await t.select("id").order("n", desc=True, nullsfirst=False).execute()).data
    by_json = (await t.select("id").order("data->k").not_.is_("data", None).execute()).data

    assert [row["id"] for row in first] == [3, 4, 2, 1, 5]
    assert [row["id"] for row in last] == [4, 2, 1, 5, 3]
    assert [row["id"] for row in by_json] == [5, 1, 2, 4]  # jsonb: strings sort before numbers


async def test_range_count_and_content_range(
    localbase: LocalbaseThread, service_client: AsyncClient
) -> None:
    page = (
        await service_client.table("lbtest_items")
        .select("id", count="exact")
        .order("id")
        .range(1, 2)
        .execute()
    )
    headers = {"apikey": localbase.keys.service_role_key, "Prefer": "count=exact"}
    async with httpx.AsyncClient(base_url=f"{localbase.url}/rest/v1") as http:
        partial = await http.get(
            "/lbtest_items", params={"select": "id", "order": "id", "offset": "3"}, headers=headers
        )
        ranged = await http.get(
            "/lbtest_items",
            params={"select": "id", "order": "id"},
            headers={**headers, "Range-Unit": "items", "Range": "1-3"},
        )
        whole = await http.get("/lbtest_items", params={"select": "id"}, headers=headers)
        past = await http.get("/lbtest_items", params={"offset": "9"}, headers=headers)
        head = await http.head("/lbtest_items", headers=headers)

    assert [row["id"] for row in page.data] == [2, 3] and page.count == 5
    assert (partial.status_code, partial.headers["content-range"]) == (206, "3-4/5")
    assert [row["id"] for row in ranged.json()] == [2, 3, 4]
    assert (ranged.status_code, ranged.headers["content-range"]) == (206, "1-3/5")
    assert (whole.status_code, whole.headers["content-range"]) == (200, "0-4/5")
    assert past.status_code == 416 and past.json()["code"] == "PGRST103"
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-range"] == "0-4/5"


async def test_embedding_follows_foreign_keys(service_client: AsyncClient) -> None:
    parents = (
        await service_client.table("lbtest_items")
        .select("name, kids:lbtest_children(label)")
        .in_("id", [1, 3])
        .order("id")
        .execute()
    ).data
    children = (
        await service_client.table("lbtest_children")
        .select("label, lbtest_items(name), owner:item_id(n)")
        .order("label")
        .execute()
    ).data
    with_children = (
        await service_client.table("lbtest_items")
        .select("id, lbtest_children!inner(id)")
        .order("id")
        .execute()
    ).data

    assert parents == [
        {"name": "apple", "kids": [{"label": "a1"}, {"label": "a2"}]},
        {"name": "carrot", "kids": []},
    ]
    assert children[0] == {"label": "a1", "lbtest_items": {"name": "apple"}, "owner": {"n": 3}}
    assert [row["id"] for row in with_children] == [1, 2]


async def test_single_maybe_single_and_strip_nulls(service_client: AsyncClient) -> None:
    t = service_client.table("lbtest_items")
    with pytest.raises(APIError) as many:
        await t.select("id").gt("id", 1).single().execute()
    with pytest.raises(APIError) as maybe_many:
        await t.select("id").gt("id", 1).maybe_single().execute()
    stripped = (await t.select("id, n, note").eq("id", 4).strip_nulls().execute()).data

    assert (many.value.code, many.value.details) == ("PGRST116", "The result contains 4 rows")
    assert maybe_many.value.code == "406"
    assert stripped == [{"id": 4, "n": 8}]


async def test_unsupported_features_fail_clearly(
    localbase: LocalbaseThread, service_client: AsyncClient
) -> None:
    t = service_client.table("lbtest_items")
    with pytest.raises(APIError) as csv:
        await t.select("id").csv().execute()
    with pytest.raises(APIError) as spread:
        await t.select("...lbtest_children(label)").execute()
    with pytest.raises(APIError) as embedded_filter:
        await t.select("id, lbtest_children(label)").eq("lbtest_children.label", "a1").execute()
    with pytest.raises(APIError) as embedded_order:
        await (
            t.select("id, lbtest_children(label)")
            .order("label", foreign_table="lbtest_children")
            .execute()
        )
    with pytest.raises(APIError) as no_relation:
        await t.select("id, tasks(id)").execute()

    assert csv.value.code == "PGRST107"
    assert spread.value.code == "PGRST100" and "not supported" in spread.value.details
    assert embedded_filter.value.code == "PGRST100"
    assert "not supported" in embedded_filter.value.message
    assert embedded_order.value.code == "PGRST100"
    assert no_relation.value.code == "PGRST200"
