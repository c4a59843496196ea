"""Times sent to the API: ISO 8601 or Unix seconds (an integer or a fraction), and out of range is a 400.

Where the schema says Unix seconds (a pushed item's `published_at`, the series' `from` and `to`), a plain
number is accepted; a time before 1970 or after 9999 is answered 400 with a message, never a 500.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.sentiment.models import Item
from tests.apps.sentiment import alert_factories as f

pytestmark = pytest.mark.django_db
MAY_1 = datetime(2024, 5, 1, tzinfo=UTC)  # 1714521600


@pytest.fixture
def client(make_user: Any) -> APIClient:
    api = APIClient()
    api.force_authenticate(make_user("analyst"))
    return api


def _push(client: APIClient, published_at: Any) -> Any:
    body = {"items": [{"title": f"ACME item at {published_at!r}", "published_at": published_at}]}
    return client.post("/api/sentiment/items/", body, format="json")


# --- a pushed item's published_at ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("published_at", "stored"),
    [
        (1714521600, MAY_1),
        (1714521600.25, datetime(2024, 5, 1, 0, 0, 0, 250000, tzinfo=UTC)),
        ("1714521600", MAY_1),
        ("2024-05-01T02:00:00+02:00", MAY_1),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_a_pushed_item_takes_unix_seconds_as_a_number_or_text_and_iso_8601(
    client: APIClient, published_at: Any, stored: datetime
) -> None:
    response = _push(client, published_at)

    assert response.status_code == 201, response.json()
    assert Item.objects.get().published_at == stored


@pytest.mark.parametrize("published_at", [-1, 253402300800, 1e300, 10**400])
def test_a_pushed_time_out_of_range_is_rejected_with_a_message(client: APIClient, published_at: Any) -> None:
    response = _push(client, published_at)

    assert response.status_code == 400  # the only item rejected: the batch is refused, with its report
    rejected = response.json()["rejected"][0]
    assert rejected["field"] == "published_at" and "out of range" in rejected["reason"]
    assert "from 0 (1970-01-01) to 253402300799 (9999-12-31)" in rejected["reason"]
    assert not Item.objects.exists()


def test_a_pushed_time_in_range_but_far_ahead_is_rejected_by_the_ingest_window(client: APIClient) -> None:
    response = _push(client, 253402300799)  # 9999-12-31T23:59:59Z: a time, but not a publication time

    assert response.status_code == 400
    assert "outside the accepted window" in response.json()["rejected"][0]["reason"]


@pytest.mark.parametrize("published_at", [True, [1714521600], {"seconds": 1714521600}])
def test_a_pushed_time_that_is_neither_text_nor_a_number_is_rejected(
    client: APIClient, published_at: Any
) -> None:
    response = _push(client, published_at)

    assert response.status_code == 400
    assert (
        response.json()["rejected"][0]["reason"] == "published_at must be a string or a number (Unix seconds)"
    )


def test_one_bad_time_rejects_its_item_only(client: APIClient) -> None:
    items = [{"title": "fine", "published_at": 1714521600}, {"title": "too late", "published_at": 1e20}]

    response = client.post("/api/sentiment/items/", {"items": items}, format="json")

    assert response.status_code == 201 and response.json()["created"] == 1
    assert response.json()["rejected"][0]["index"] == 1


# --- the series' from and to ------------------------------------------------------------------------------
@pytest.fixture
def entity() -> Any:
    return f.entity("AAPL")


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("1714521600", "1714608000"),
        ("1714521600.0", "1714608000.5"),
        ("2024-05-01T00:00:00Z", "1714608000"),
        ("2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z"),
        ("2024-05-01T00:00:00", "2024-05-02T00:00:00"),  # no offset: UTC
    ],
)
def test_the_series_range_takes_unix_seconds_and_iso_8601(
    client: APIClient, entity: Any, start: str, end: str
) -> None:
    response = client.get("/api/sentiment/entities/AAPL/series/", {"from": start, "to": end})

    assert response.status_code == 200, response.json()
    assert response.json()["from"] == "2024-05-01T00:00:00Z"
    assert response.json()["to"].startswith("2024-05-02T00:00:00")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "-1"}, "from"),
        ({"to": "253402300800"}, "to"),
        ({"from": "1e20"}, "from"),
        ({"from": "1969-12-31T23:59:59Z"}, "from"),
        ({"to": "0001-01-02T00:00:00Z"}, "to"),  # was a 500: the default start fell before year 1
        ({"to": "9999-12-31T23:59:59-01:00"}, "to"),  # past 9999 once in UTC
    ],
)
def test_a_series_time_out_of_range_is_a_400_saying_so(
    client: APIClient, entity: Any, params: dict[str, str], field: str
) -> None:
    response = client.get("/api/sentiment/series/", params)

    assert response.status_code == 400, response.content[:300]
    assert response.json()["field"] == field
    assert (
        "out of range: times are from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"
        in response.json()["detail"]
    )


@pytest.mark.parametrize("value", ["yesterday", "nan", "1_714_521_600", "0x10"])
def test_a_series_time_in_no_format_is_a_400_naming_both_formats(client: APIClient, value: str) -> None:
    response = client.get("/api/sentiment/series/", {"from": value})

    assert response.status_code == 400
    assert response.json()["detail"] == (
        "`from` must be an ISO 8601 date-time (2024-05-01T09:30:00Z) or Unix seconds (1714555800, 1714555800.5)"
    )
