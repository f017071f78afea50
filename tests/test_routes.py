"""Every route of the API (v1) and every error, through the real Chalice routing."""

from __future__ import annotations

import pytest

from helpers import body


def test_health_reports_version_stage_and_cold_start(api):
    first = api.get("/health")
    second = api.get("/health")
    assert first.status_code == 200
    assert body(first) == {"status": "ok", "version": "1.0.0", "stage": "local", "cold": True}
    assert body(second)["cold"] is False


def test_list_dates_newest_first_with_latest(api, put_batch):
    put_batch("2026-11-21")
    put_batch("2026-11-23")
    put_batch("2026-11-22", pointer=False)
    assert body(api.get("/predictions")) == {
        "latest": "2026-11-23", "dates": ["2026-11-23", "2026-11-22", "2026-11-21"]}


def test_list_dates_on_an_empty_bucket(api):
    assert body(api.get("/predictions")) == {"latest": None, "dates": []}


def test_latest_batch_page_carries_metadata_and_items(api, put_batch):
    doc = put_batch("2026-11-23", n=3)
    page = body(api.get("/predictions/latest"))
    assert page["date"] == "2026-11-23"
    assert page["model"] == {"name": "demand-forecast", "version": "3.2.0"}
    assert page["generated_at"] == "2026-11-23T04:00:00Z"
    assert page["count"] == 3
    assert page["items"] == doc["predictions"]
    assert page["next_cursor"] is None


def test_dated_batch(api, put_batch):
    put_batch("2026-11-22", n=2)
    put_batch("2026-11-23", n=4)
    assert body(api.get("/predictions/2026-11-22"))["count"] == 2


def test_one_prediction_by_id(api, put_batch):
    put_batch("2026-11-23")
    answer = body(api.get("/predictions/2026-11-23/sku-002"))
    assert answer == {"date": "2026-11-23", "model": {"name": "demand-forecast", "version": "3.2.0"},
                      "prediction": {"id": "sku-002", "label": "Item 2", "value": 2.0}}


def test_one_prediction_is_the_same_bytes_as_encoding_it_whole(api, put_batch):
    # The body is assembled from the item's cached text; it must be exactly what encoding the answer gives.
    from chalice_app.jsontext import encode

    put_batch("2026-11-23")
    response = api.get("/predictions/2026-11-23/sku-002")
    assert response.body.decode() == encode(body(response))
    assert body(api.get("/predictions/2026-11-23/sku-002")) == body(response)  # a second time, from the cache


def test_one_prediction_of_latest(api, put_batch):
    put_batch("2026-11-23")
    assert body(api.get("/predictions/latest/sku-001"))["prediction"]["id"] == "sku-001"


@pytest.mark.parametrize("path, code", [
    ("/predictions/2026-13-01", "invalid_date"),
    ("/predictions/2026-02-30", "invalid_date"),
    ("/predictions/yesterday", "invalid_date"),
    ("/predictions/2026-11-23/bad%20id", "invalid_id"),
    ("/predictions/2026-11-23/-leading-dash", "invalid_id"),
    ("/predictions/latest?limit=0", "invalid_limit"),
    ("/predictions/latest?limit=501", "invalid_limit"),
    ("/predictions/latest?limit=ten", "invalid_limit"),
    ("/predictions/latest?order=up", "invalid_order"),
    ("/predictions/latest?sort=nope", "invalid_sort"),
    ("/predictions/latest?cursor=garbage", "invalid_cursor"),
    ("/predictions/latest?limt=5", "unknown_parameter"),
    ("/predictions/latest?limit=5&limit=6", "repeated_parameter"),
    ("/predictions/latest?q=" + "x" * 201, "invalid_q"),
    ("/predictions?x=1", "unknown_parameter"),
])
def test_bad_input_is_a_400_naming_the_problem(api, put_batch, path, code):
    put_batch("2026-11-23")
    response = api.get(path)
    assert response.status_code == 400
    error = body(response)["error"]
    assert error["code"] == code
    assert error["message"]


def test_missing_batch_is_a_404(api, put_batch):
    put_batch("2026-11-23")
    response = api.get("/predictions/2026-11-20")
    assert response.status_code == 404
    assert body(response)["error"]["code"] == "batch_not_found"


def test_latest_on_an_empty_bucket_is_a_404(api):
    response = api.get("/predictions/latest")
    assert response.status_code == 404
    assert body(response)["error"]["message"] == "no batch has been published yet"


def test_missing_id_is_a_404(api, put_batch):
    put_batch("2026-11-23")
    response = api.get("/predictions/2026-11-23/sku-999")
    assert response.status_code == 404
    assert body(response)["error"]["code"] == "prediction_not_found"


def test_every_answer_has_an_etag_and_a_matching_one_gets_304(api, put_batch):
    put_batch("2026-11-23")
    first = api.get("/predictions/2026-11-23?limit=2")
    etag = first.headers["ETag"]
    again = api.get("/predictions/2026-11-23?limit=2", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.body in (b"", "")
    assert again.headers["ETag"] == etag


def test_a_different_page_has_a_different_etag(api, put_batch):
    put_batch("2026-11-23")
    one = api.get("/predictions/2026-11-23?limit=2").headers["ETag"]
    two = api.get("/predictions/2026-11-23?limit=3").headers["ETag"]
    assert one != two


def test_stale_etag_gets_the_full_answer(api, put_batch):
    put_batch("2026-11-23")
    response = api.get("/predictions/2026-11-23", headers={"If-None-Match": '"old"'})
    assert response.status_code == 200


def test_cache_control_dated_batch_long_latest_short(api, put_batch):
    put_batch("2026-11-23")
    assert api.get("/predictions/2026-11-23").headers["Cache-Control"] == "public, max-age=3600"
    # The local stage sets LATEST_MAX_AGE_SECONDS=0: 'latest' can change any moment.
    assert api.get("/predictions/latest").headers["Cache-Control"] == "public, max-age=0"


@pytest.fixture
def edge_cached(monkeypatch):
    """The stage's site function runs (or EDGE_CACHE=on): each publish invalidates /api/* at CloudFront."""
    import dataclasses

    from chalice_app.api import container

    real = container.settings
    monkeypatch.setattr(container, "settings", lambda: dataclasses.replace(real(), edge_cache="on"))


def test_batch_answers_are_kept_by_the_edge_until_the_next_publish(api, put_batch, edge_cached):
    """s-maxage for CloudFront (a day, EDGE_MAX_AGE_SECONDS), browsers keep their short max-age."""
    put_batch("2026-11-22", pointer=False)
    put_batch("2026-11-23")
    shared = "s-maxage=86400"
    for path, max_age in (("/predictions", 0), ("/predictions/latest?limit=2", 0), ("/predictions/latest/sku-001", 0),
                          ("/predictions/2026-11-22", 3600), ("/predictions/2026-11-22/sku-001", 3600)):
        response = api.get(path)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == f"public, max-age={max_age}, {shared}", path
        # The 304 says the same, so a revalidating cache keeps its copy as long.
        again = api.get(path, headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304 and again.headers["Cache-Control"] == response.headers["Cache-Control"]


def test_errors_and_health_stay_uncached_at_the_edge_too(api, put_batch, edge_cached):
    put_batch("2026-11-23")
    # A date published later must be served as soon as it exists: its 404 is never kept.
    for path in ("/predictions/2026-11-30", "/predictions/2026-11-23/nope", "/reports/2026-11-30", "/health",
                 "/predictions/latest?bogus=1"):
        assert api.get(path).headers["Cache-Control"] == "no-store", path


def test_without_a_site_function_no_s_maxage(api, put_batch):
    """The local stage's config sets SITE_REBUILD_ENABLED false and no EDGE_CACHE: today's answers."""
    put_batch("2026-11-23")
    assert api.get("/predictions/latest").headers["Cache-Control"] == "public, max-age=0"


@pytest.mark.parametrize(("mode", "site_function", "expected"), [
    ("auto", "false", 0), ("auto", "", 0), ("auto", "true", 86400), ("on", "false", 86400), ("off", "true", 0)])
def test_edge_cache_follows_the_site_function_unless_set(monkeypatch, mode, site_function, expected):
    import dataclasses

    from chalice_app.api import container

    monkeypatch.setattr(container, "settings", lambda: dataclasses.replace(container.Settings(), edge_cache=mode))
    monkeypatch.setenv("SITE_REBUILD_ENABLED", site_function)
    assert container.edge_max_age() == expected


def test_errors_are_not_cached_and_are_json(api):
    response = api.get("/predictions/nope")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Type"].startswith("application/json")


def test_security_headers_on_every_answer(api, put_batch):
    put_batch("2026-11-23")
    for path in ("/health", "/predictions", "/predictions/latest", "/predictions/bad"):
        headers = api.get(path).headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert "Access-Control-Allow-Origin" not in headers


def test_error_never_echoes_markup(api):
    response = api.get("/predictions/latest/%3Cscript%3E")
    assert response.status_code == 400
    assert b"<script" not in response.body


ROWS = [
    {"id": "a", "label": "Oat milk", "value": 3},
    {"id": "b", "label": "Butter", "value": None},
    {"id": "c", "label": "oat bar", "value": 10.5},
    {"id": "d", "label": "Apples", "value": -1},
    {"id": "e", "label": "Bread"},
]


def ids(response) -> list[str]:
    return [item["id"] for item in body(response)["items"]]


def test_sort_ascending_puts_nulls_last(api, put_batch):
    put_batch("2026-11-23", ROWS)
    assert ids(api.get("/predictions/latest?sort=value")) == ["d", "a", "c", "b", "e"]


def test_sort_descending_still_puts_nulls_last(api, put_batch):
    put_batch("2026-11-23", ROWS)
    assert ids(api.get("/predictions/latest?sort=value&order=desc")) == ["c", "a", "d", "b", "e"]


def test_sort_by_string_field(api, put_batch):
    put_batch("2026-11-23", ROWS)
    assert ids(api.get("/predictions/latest?sort=label")) == ["d", "e", "b", "a", "c"]


def test_q_is_case_insensitive_over_id_and_strings(api, put_batch):
    put_batch("2026-11-23", ROWS)
    response = api.get("/predictions/latest?q=OAT")
    assert ids(response) == ["a", "c"]
    assert body(response)["count"] == 2
    assert body(response)["total"] == 5


def test_q_matches_the_id(api, put_batch):
    put_batch("2026-11-23", [{"id": "sku-XYZ-1"}, {"id": "sku-2"}])
    assert ids(api.get("/predictions/latest?q=xyz")) == ["sku-XYZ-1"]


def walk(api, first_path: str) -> list[str]:
    seen, path = [], first_path
    while True:
        page = body(api.get(path))
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            return seen
        path = f"/predictions/latest?limit=7&cursor={page['next_cursor']}"


def test_pagination_walks_every_item_exactly_once(api, put_batch):
    doc = put_batch("2026-11-23", n=50)
    seen = walk(api, "/predictions/latest?limit=7")
    assert seen == [row["id"] for row in doc["predictions"]]


def test_pagination_of_a_sorted_filtered_view(api, put_batch):
    rows = [{"id": f"r{i:02d}", "label": "even" if i % 2 == 0 else "odd", "value": (i * 7) % 13}
            for i in range(40)]
    put_batch("2026-11-23", rows)
    seen = walk(api, "/predictions/latest?limit=7&sort=value&order=desc&q=even")
    expected = sorted((r for r in rows if r["label"] == "even"), key=lambda r: -r["value"])
    assert sorted(seen) == sorted(r["id"] for r in expected)
    assert len(seen) == len(set(seen)) == 20
    values = [next(r["value"] for r in rows if r["id"] == i) for i in seen]
    assert values == sorted(values, reverse=True)


def test_cursor_keeps_walking_its_batch_when_latest_moves(api, put_batch):
    old = put_batch("2026-11-22", n=10)
    first = body(api.get("/predictions/latest?limit=4"))
    put_batch("2026-11-23", n=3)
    from chalice_app.api import container

    container.store().pointer_ttl = 0  # see the new pointer now, not after the stage's TTL
    second = body(api.get(f"/predictions/latest?limit=4&cursor={first['next_cursor']}"))
    assert second["date"] == "2026-11-22"
    assert [i["id"] for i in second["items"]] == [r["id"] for r in old["predictions"][4:8]]


def test_cursor_for_another_date_is_refused(api, put_batch):
    put_batch("2026-11-22", n=10)
    put_batch("2026-11-23", n=10)
    cursor = body(api.get("/predictions/2026-11-22?limit=4"))["next_cursor"]
    response = api.get(f"/predictions/2026-11-23?cursor={cursor}")
    assert response.status_code == 400
    assert body(response)["error"]["code"] == "invalid_cursor"


def test_cursor_with_a_different_sort_is_refused(api, put_batch):
    put_batch("2026-11-23", n=10)
    cursor = body(api.get("/predictions/latest?limit=4&sort=value"))["next_cursor"]
    response = api.get(f"/predictions/latest?cursor={cursor}&sort=label")
    assert body(response)["error"]["code"] == "invalid_cursor"


def test_route_without_bucket_configured_is_a_503(api, monkeypatch):
    from chalice_app.api import container
    from chalice_app.config.settings import Settings

    container._state["settings"] = Settings(bucket="")
    response = api.get("/predictions")
    assert response.status_code == 503
    assert body(response)["error"]["code"] == "not_configured"


def test_page_body_is_exactly_the_compact_json_of_the_page(api, put_batch):
    """Pages are assembled from per-item text: the result must equal encoding the whole page."""
    from chalice_app.jsontext import encode

    rows = [{"id": "a", "label": "<b>Oat & milk</b>", "value": 1.5}, {"id": "b", "label": "Ü", "value": None}]
    put_batch("2026-11-23", rows)
    for _ in range(2):  # the second answer comes from the cached item texts
        response = api.get("/predictions/2026-11-23?limit=1&sort=label")
        page = body(response)
        assert response.body.decode() == encode(page)
        assert page["items"] == [rows[0]]
        assert b"<b>" not in response.body
