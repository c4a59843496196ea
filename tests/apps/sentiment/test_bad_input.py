"""Bad input to the push API and CSV uploads: a bad item or row is rejected alone, with its index and field;
the valid ones are stored. (tests/apps/core/test_bad_input.py sends the whole corpus to every endpoint.)"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.core.errors import ServiceError
from apps.sentiment.models import Item, Source
from apps.sentiment.services import ingest
from apps.sentiment.services.ingest import ItemRecord, items_ingest
from apps.sentiment.services.uploads import items_upload_csv

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)
SURROGATE = "\udc80"
GOOD = {"title": "ACME beats estimates", "text": "Strong quarter", "url": "https://x.test/good", "id": "g1"}
BAD_ITEM = {
    "title": "Bad item",
    "text": "Some text",
    "url": "https://x.test/bad",
    "published_at": "2024-05-14T09:00:00Z",
    "language": "en",
    "id": "b1",
}


@pytest.fixture
def analyst_client(make_user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(make_user("analyst"))
    return client


@pytest.fixture
def source(db: None) -> Source:
    return ingest.source_get_or_create(name="test", kind=Source.Kind.PUSH)


def _push(client: APIClient, items: list[dict[str, Any]], source: str = "probe") -> Any:
    body = json.dumps({"source": source, "items": items})  # ASCII, with \u escapes: DRF's renderer cannot
    response = client.post("/api/sentiment/items/", body, content_type="application/json")
    assert response.status_code < 500, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    return response


CASES = [
    *[pytest.param(field, BAD_ITEM[field] + SURROGATE, id=f"surrogate-{field}") for field in BAD_ITEM],
    *[pytest.param(field, BAD_ITEM[field] + "\x00", id=f"nul-{field}") for field in BAD_ITEM],
    pytest.param("published_at", "0001-01-01T00:00:00Z", id="year1"),
    pytest.param("published_at", "0001-01-01T00:00:00+01:00", id="year1-offset"),
    pytest.param("published_at", "1969-12-31T23:59:59Z", id="before-1970"),
    pytest.param("published_at", "9999-12-31T23:59:59Z", id="year9999"),
    pytest.param("published_at", "9999-12-31T23:59:59-01:00", id="year9999-offset"),
]


@pytest.mark.parametrize(("field", "value"), CASES)
def test_a_bad_value_rejects_its_item_alone_with_index_and_field(
    analyst_client: APIClient, field: str, value: str
) -> None:
    items = [GOOD, {**BAD_ITEM, field: value}, {**GOOD, "url": "https://x.test/good2", "title": "Later news"}]
    response = _push(analyst_client, items)
    assert response.status_code == 201, response.content[:300]
    data = response.json()
    assert data["created"] == 2
    assert data["rejected"] == [{"index": 1, "reason": data["rejected"][0]["reason"], "field": field}]
    assert sorted(Item.objects.values_list("title", flat=True)) == ["ACME beats estimates", "Later news"]


@pytest.mark.parametrize("source", ["probe" + SURROGATE, "pro\x00be"])
def test_a_bad_source_name_is_a_400_for_the_request_and_stores_nothing(
    analyst_client: APIClient, source: str
) -> None:
    response = _push(analyst_client, [GOOD], source=source)
    assert response.status_code == 400
    assert response.json()["field"] == "source"
    assert not Item.objects.exists() and not Source.objects.exists()


def test_an_unknown_field_with_a_surrogate_name_is_reported_readably(analyst_client: APIClient) -> None:
    response = _push(analyst_client, [GOOD, {"title": "x", SURROGATE: "y"}])
    assert response.status_code == 201
    assert "unknown fields: '\\udc80'" in response.json()["rejected"][0]["reason"]


def test_a_timestamp_a_few_hours_ahead_is_clamped_and_noted_not_rejected(source: Source) -> None:
    records = [ItemRecord(text="soon", published_at=NOW + timedelta(hours=3))]
    report = items_ingest(source=source, records=records, now=NOW)
    assert report.created == 1 and Item.objects.get().published_at == NOW
    assert "future" in report.notes[0][1]


@pytest.mark.parametrize(
    ("published_at", "accepted"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), True),
        (datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), False),
        (NOW + timedelta(days=1), True),
        (NOW + timedelta(days=1, seconds=1), False),
    ],
)
def test_the_timestamp_window_edges(source: Source, published_at: datetime, accepted: bool) -> None:
    report = items_ingest(
        source=source, records=[ItemRecord(text="edge", published_at=published_at)], now=NOW
    )
    assert report.created == int(accepted)
    if not accepted:
        assert report.rejected_fields == {0: "published_at"}
        assert "1970-01-01" in report.rejected[0][1]


def test_the_service_names_the_field_of_every_rejection(source: Source) -> None:
    records = [ItemRecord(text=" "), ItemRecord(text="x", url="ftp://x"), ItemRecord(text="x" + SURROGATE)]
    report = items_ingest(source=source, records=records, now=NOW)
    assert report.rejected_fields == {0: "text", 1: "url", 2: "text"}
    assert [r.get("field") for r in report.as_dict()["rejected"]] == ["text", "url", "text"]  # type: ignore[union-attr]


# --- CSV ---------------------------------------------------------------------------------------------------
def test_an_unterminated_quote_is_reported_by_line_and_the_rows_before_it_are_kept(source: Source) -> None:
    data = b'title,text\nFirst,one\nSecond,two\nThird,"never closed\nFourth,four\nFifth,five\n'
    report = items_upload_csv(source=source, data=data, now=NOW)
    assert sorted(Item.objects.values_list("title", flat=True)) == ["First", "Second"]
    assert report.created == 2
    assert len(report.rejected) == 1
    row, reason = report.rejected[0]
    assert row == 4 and reason.startswith("line 4: unterminated quote")
    assert not Item.objects.filter(text__contains="Fourth").exists()


def test_a_malformed_quote_mid_file_rejects_that_row_and_reading_goes_on(source: Source) -> None:
    data = b'title,text\nFirst,one\nSecond,"two" and more\nThird,three\n'
    report = items_upload_csv(source=source, data=data, now=NOW)
    assert sorted(Item.objects.values_list("title", flat=True)) == ["First", "Third"]
    assert [(row, reason.split(":")[0]) for row, reason in report.rejected] == [(3, "line 3")]


def test_an_unterminated_quote_in_the_header_is_a_whole_file_error(source: Source) -> None:
    with pytest.raises(ServiceError, match="line 1: unterminated quote"):
        items_upload_csv(source=source, data=b'title,"text\nFirst,one\n', now=NOW)
    assert not Item.objects.exists()


@pytest.mark.parametrize("column", ["title", "text", "url", "language", "id"])
def test_a_nul_in_any_csv_cell_rejects_that_row_only(source: Source, column: str) -> None:
    values = {"title": "Bad", "text": "bad text", "url": "https://x.test/bad", "language": "en", "id": "b1"}
    values[column] += "\x00"
    header = ",".join(values)
    data = f"{header}\nGood,good text,https://x.test/good,en,g1\n{','.join(values.values())}\n".encode()
    report = items_upload_csv(source=source, data=data, now=NOW)
    assert report.created == 1 and Item.objects.get().title == "Good"
    assert report.rejected_fields == {3: column}


def test_csv_upload_api_reports_the_unterminated_quote(analyst_client: APIClient) -> None:
    upload = io.BytesIO(b'title\nKept row\n"Broken\nswallowed row\n')
    upload.name = "news.csv"
    response = analyst_client.post("/api/sentiment/uploads/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.content[:300]
    body = response.json()
    assert body["created"] == 1
    assert body["rejected"][0]["index"] == 3 and "line 3: unterminated quote" in body["rejected"][0]["reason"]
