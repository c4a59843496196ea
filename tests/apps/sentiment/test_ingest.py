"""Ingestion: deduplication, language, entity linking, topics, the push API and CSV uploads."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError
from django.utils import timezone
from rest_framework.test import APIClient

from apps.core.errors import ServiceError
from apps.sentiment.models import Item, ItemEntity, ItemTopic, Source, Topic
from apps.sentiment.services import ingest, uploads
from apps.sentiment.services.entities import EntityMatcher, entity_upsert
from apps.sentiment.services.ingest import ItemRecord, items_ingest
from apps.sentiment.services.language import detect_language
from apps.sentiment.services.topics import (
    DEFAULT_TOPICS,
    TopicMatcher,
    _pattern,
    topics_ensure_defaults,
)
from apps.sentiment.services.uploads import items_upload_csv

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


@pytest.fixture
def source(db: None) -> Source:
    return ingest.source_get_or_create(name="test", kind=Source.Kind.PUSH)


# --- deduplication -------------------------------------------------------------------------------------
def test_same_url_is_stored_once(source: Source) -> None:
    first = items_ingest(
        source=source, records=[ItemRecord(text="Shares rise", url="https://x.test/a")], now=NOW
    )
    again = items_ingest(
        source=source, records=[ItemRecord(text="Shares rise (updated)", url="https://x.test/a")], now=NOW
    )
    assert (first.created, again.created, again.duplicates) == (1, 0, 1)
    assert Item.objects.count() == 1


def test_same_normalised_text_is_stored_once_even_with_another_link(source: Source) -> None:
    records = [
        ItemRecord(text="$TSLA  Tesla recalls 2m cars https://t.co/AAA"),
        ItemRecord(text="$tsla tesla RECALLS 2m cars https://t.co/BBB", url="https://x.test/other"),
        ItemRecord(text="$TSLA Tesla recalls 3m cars"),
    ]
    report = items_ingest(source=source, records=records, now=NOW)
    assert (report.created, report.duplicates) == (2, 1)
    assert ingest.normalise_text("A  B\nhttps://t.co/x C") == "a b c"


def test_a_batch_with_a_bad_record_stores_the_good_ones_and_reports_the_bad(source: Source) -> None:
    records = [ItemRecord(text="good one"), ItemRecord(text="   "), ItemRecord(text="bad url", url="ftp://x")]
    report = items_ingest(source=source, records=records, now=NOW, first_index=10)
    assert report.created == 1
    assert [i for i, _ in report.rejected] == [11, 12]
    assert "empty" in report.rejected[0][1] and "http" in report.rejected[1][1]


def test_a_database_failure_stores_nothing_of_the_batch(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    items_ingest(source=source, records=[ItemRecord(text="already here")], now=NOW)

    def broken_link(items: list[Item]) -> None:
        raise IntegrityError("simulated failure while linking")

    monkeypatch.setattr(ingest, "_link", broken_link)
    with pytest.raises(IntegrityError):
        items_ingest(source=source, records=[ItemRecord(text="one"), ItemRecord(text="two")], now=NOW)
    assert list(Item.objects.values_list("text", flat=True)) == ["already here"]
    source.refresh_from_db()
    assert source.items_total == 1


def test_times_are_clamped_and_defaulted(source: Source) -> None:
    records = [
        ItemRecord(text="from the future", published_at=NOW + timedelta(hours=20)),
        ItemRecord(text="no time"),
        ItemRecord(text="naive time", published_at=datetime(2024, 5, 1, 9, 0)),  # noqa: DTZ001 (on purpose)
    ]
    report = items_ingest(source=source, records=records, now=NOW)
    by_text = dict(Item.objects.values_list("text", "published_at"))
    assert by_text["from the future"] == NOW and by_text["no time"] == NOW
    assert by_text["naive time"] == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    assert report.notes and report.notes[0][0] == 0 and "future" in report.notes[0][1]


def test_huge_text_is_truncated_and_marked(source: Source) -> None:
    report = items_ingest(source=source, records=[ItemRecord(text="x " * 80_000)], now=NOW)
    item = Item.objects.get()
    assert item.truncated and len(item.text) == ingest.MAX_TEXT_CHARS
    assert "truncated" in report.notes[0][1]


# --- language ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The company said that its profit for the year will be higher than expected", "en"),
        ("Der Umsatz ist im dritten Quartal gestiegen und die Aktie legt zu", "de"),
        ("Le chiffre d'affaires de la société est en hausse pour le trimestre", "fr"),
        ("Las ventas de la empresa crecieron en el primer trimestre del año", "es"),
        ("Yhtiön liikevaihto kasvoi ja se on myös parantanut kannattavuutta", "fi"),
        ("Акции компании выросли после публикации отчета", "ru"),
        ("トヨタ自動車の株価が上昇した", "ja"),
        ("$TSLA up 5%", "en"),
        ("12345 !!!", ""),
    ],
)
def test_language_guess(text: str, expected: str) -> None:
    assert detect_language(text) == expected


# --- entities ------------------------------------------------------------------------------------------
def _matcher() -> EntityMatcher:
    return EntityMatcher(
        [(1, "AAPL", ["Apple", "Apple Inc."]), (2, "BRK.B", ["Berkshire Hathaway"]), (3, "T", ["AT&T"])]
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$AAPL hits a record", {1: "$AAPL"}),
        ("$aapl hits a record", {1: "$aapl"}),
        ("Apple Inc. reports results", {1: "Apple Inc."}),
        ("Apple's iPhone sales fell", {1: "Apple"}),
        ("Pineapple prices jump", {}),
        ("apple pie recipes", {}),
        ("Snapple is not Apple-owned", {}),
        ("AAPL without a dollar sign", {}),
        ("$AAPLX is another fund", {}),
        ("US$AAPL is not a cashtag", {}),
        ("Berkshire Hathaway buys $BRK.B shares", {2: "$BRK.B"}),
        ("AT&T and Apple", {3: "AT&T", 1: "Apple"}),
        ("AT&T and $T", {3: "$T"}),  # the cashtag wins: cashtags are looked at first
    ],
)
def test_entity_linking_uses_cashtags_and_whole_word_aliases(text: str, expected: dict[int, str]) -> None:
    assert _matcher().match(text) == expected


def test_linking_works_on_a_thousand_entity_watchlist() -> None:
    # speed at this size is measured by benchmarks/bench_sentiment.py (`linking`), not asserted here
    entities = [(i, f"T{i:03d}", [f"Company{i} Holdings", f"Brand{i}"]) for i in range(1000)]
    matcher = EntityMatcher(entities)
    text = "Brand17 and Company512 Holdings beat estimates, $T999 falls; Company3 is not an alias"
    assert matcher.match(text) == {999: "$T999", 17: "Brand17", 512: "Company512 Holdings"}


def test_ingested_items_are_linked_to_entities_and_topics(source: Source) -> None:
    entity_upsert(ticker="aapl", name="Apple", aliases=["Apple Inc."])
    topics_ensure_defaults()
    items_ingest(
        source=source,
        records=[
            ItemRecord(title="Apple beats earnings estimates"),
            ItemRecord(text="Pineapple harvest is late"),
        ],
        now=NOW,
    )
    linked = ItemEntity.objects.select_related("item", "entity").get()
    assert (
        linked.entity.ticker == "AAPL" and linked.item.title.startswith("Apple") and linked.matched == "Apple"
    )
    assert list(ItemTopic.objects.values_list("topic__slug", flat=True)) == ["earnings"]


def test_entity_tickers_are_validated(db: None) -> None:
    with pytest.raises(ServiceError, match="not a ticker"):
        entity_upsert(ticker="not a ticker")
    assert entity_upsert(ticker="$msft", name="Microsoft").aliases == ["Microsoft"]


# --- topics --------------------------------------------------------------------------------------------
# 64 finance headlines written for this test (none copied from a data set), each with the topics a reader
# would file it under; written before the keyword lists were finished (first measurement: precision 0.966,
# recall 1.0; "to buy" was then dropped from M&A because of "upgrades X to buy").
LABELLED: list[tuple[str, set[str]]] = [
    ("Apple beats quarterly earnings estimates as iPhone sales jump", {"earnings"}),
    ("Tesla Q3 EPS of $0.72 misses consensus by $0.05", {"earnings"}),
    ("Nokia's operating profit rose to EUR 13.1 mn from EUR 8.7 mn a year earlier", {"earnings"}),
    ("Net loss for the period widened to $45 million on higher costs", {"earnings"}),
    ("Walmart reports first-quarter revenue of $152 billion, above expectations", {"earnings"}),
    ("Zoom shares slide after fourth-quarter results disappoint investors", {"earnings"}),
    ("Microsoft to acquire Activision Blizzard for $68.7 billion", {"mna"}),
    ("Broadcom completes its takeover of VMware after regulatory approval", {"mna"}),
    ("Pfizer agrees to buy Seagen in $43 billion deal", {"mna"}),
    ("The two banks announced a merger of equals on Monday", {"mna"}),
    ("Elliott builds a 5% stake in the chipmaker and pushes for a sale", {"mna"}),
    ("Private equity firm launches tender offer for the software maker", {"mna"}),
    ("Johnson & Johnson to spin off its consumer health business", {"mna"}),
    ("Amazon sued by FTC over alleged monopoly practices", {"litigation"}),
    ("Judge rejects Meta's bid to dismiss privacy class action", {"litigation"}),
    ("Boeing agrees to pay $200 million to settle SEC charges over 737 MAX statements", {"litigation"}),
    ("Google loses antitrust appeal against the EU's record fine", {"litigation"}),
    ("Jury orders Bayer to pay $1.5 billion in Roundup verdict", {"litigation"}),
    ("Shareholders file lawsuit alleging the company misled investors", {"litigation"}),
    ("Regulators open an investigation into the lender's accounting", {"litigation"}),
    ("Nike raises full-year guidance on strong demand", {"guidance"}),
    ("Intel cuts its revenue forecast for the third quarter", {"guidance", "earnings"}),
    ("The company expects net sales to grow by 10 % in 2024", {"guidance"}),
    ("FedEx lowers its outlook for fiscal 2024 as volumes fall", {"guidance"}),
    ("Management reiterated its annual profit guidance", {"guidance", "earnings"}),
    ("Goldman Sachs upgrades Nvidia to buy with a $600 price target", {"analyst"}),
    ("$ESS: BTIG Research cuts to Neutral", {"analyst"}),
    ("Morgan Stanley downgrades Ford to underweight", {"analyst"}),
    ("Jefferies initiates coverage of Snowflake with a hold rating", {"analyst"}),
    ("Analyst raises price target on Amazon to $200, keeps outperform", {"analyst"}),
    ("Coca-Cola raises quarterly dividend by 5%", {"dividend"}),
    ("Apple announces $90 billion share buyback", {"dividend"}),
    ("The board proposes a dividend of EUR 0.50 per share", {"dividend"}),
    ("Oracle authorises new $10 billion stock repurchase program", {"dividend"}),
    ("Disney CEO Bob Iger to step down at the end of his contract", {"management"}),
    ("Starbucks names Brian Niccol as chief executive", {"management"}),
    ("CFO resigns unexpectedly after six months in the role", {"management"}),
    ("The company appointed a new chairman of the board", {"management"}),
    ("Meta to cut 10,000 jobs in a second round of layoffs", {"layoffs"}),
    ("The plant will lay off 150 workers as part of the restructuring", {"layoffs"}),
    ("Stora Enso starts negotiations on temporary lay-offs at its mills", {"layoffs"}),
    ("Bank announces redundancies of 300 staff in its branch network", {"layoffs"}),
    # more than one topic
    (
        "Salesforce beats on revenue, raises guidance and expands buyback",
        {"earnings", "guidance", "dividend"},
    ),
    ("After the merger the combined company will cut 2,000 jobs", {"mna", "layoffs"}),
    ("Activist investor sues board to block the acquisition", {"mna", "litigation"}),
    ("CEO departs as the retailer slashes its profit forecast", {"management", "guidance", "earnings"}),
    ("Analysts downgrade the stock after weak quarterly earnings", {"analyst", "earnings"}),
    # none of the topics
    ("Stocks rise as oil prices ease and bond yields fall", set()),
    ("The new headquarters will be located in Helsinki", set()),
    ("$TSLA trading higher in premarket", set()),
    ("Fed minutes show officials divided over the path of rates", set()),
    ("The company has 1,200 employees in 15 countries", set()),
    ("Bitcoin tops $70,000 for the first time", set()),
    ("Apple unveils new iPad with faster chip", set()),
    ("Dollar slips against the yen ahead of jobs data", set()),
    ("Consumer confidence fell to a six-month low in June", set()),
    ("The shipyard delivered the vessel to its owner in March", set()),
    ("Gold steadies near record as traders await inflation figures", set()),
    ("The airline adds new routes to Asia for the summer season", set()),
    ("Mortgage rates climb to the highest level since 2001", set()),
    ("The product range includes pumps, valves and control systems", set()),
    ("Pineapple prices jump in European markets", set()),
    ("Wall Street ends mixed in thin holiday trading", set()),
    ("The factory in Oulu produces components for mobile phones", set()),
]


def test_topic_rules_on_the_hand_labelled_headlines(capsys: pytest.CaptureFixture[str]) -> None:
    slugs = list(DEFAULT_TOPICS)
    matcher = TopicMatcher((i, DEFAULT_TOPICS[slug][2]) for i, slug in enumerate(slugs))
    tp = fp = fn = 0
    for text, gold in LABELLED:
        predicted = {slugs[i] for i in matcher.match(text)}
        tp += len(predicted & gold)
        fp += len(predicted - gold)
        fn += len(gold - predicted)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    with capsys.disabled():
        print(
            f"\ntopics: {len(LABELLED)} headlines, {tp + fn} labels: precision {precision:.3f}, recall {recall:.3f}"
        )
    assert precision >= 0.9 and recall >= 0.9


def test_topic_keywords_match_on_word_boundaries_with_prefixes() -> None:
    matcher = TopicMatcher([(1, ["acqui*", "cut * jobs"]), (2, ["fine"])])
    assert matcher.match("XYZ acquires ABC") == {1: 0.5}
    assert matcher.match("the acquisition and the acquirer") == {1: 0.75}
    assert matcher.match("they cut 1,200 jobs") == {1: 0.5}
    assert matcher.match("a refined product, all fine") == {2: 0.5}


def test_topic_word_test_never_skips_a_match_the_patterns_find() -> None:
    """Each topic's regex runs only on texts holding the first word of one of its keywords; on tricky texts
    (case, hyphens, prefixes, punctuation- and wildcard-led keywords, non-ASCII) the result must equal
    running every pattern on every text."""
    topics = [
        (1, ["acqui*", "cut * jobs", "lay-off*"]),
        (2, ["M&A", "$deal", "10-K filing"]),
        (3, ["* jobs", "übernahme*", "ceo"]),
        (4, ["seo", "istanbul"]),
        *((10 + i, keywords) for i, (_, _, keywords) in enumerate(DEFAULT_TOPICS.values())),
    ]
    texts = [
        *(text for text, _ in LABELLED),
        "ACQUISITION of Foo; acquirer pays",
        "Lay-offs at the plant; LAY-OFF notices; layoffs",
        "m&a advisory fees rise; M&A boom",
        "the $DEAL closed; files its 10-K  filing late",
        "Cut 1,200 jobs, then 300 jobs more",
        "Die Übernahme ist abgeschlossen; ÜBERNAHMEANGEBOT",
        "the CEO's exit; non-ceo staff; ceos",
        "ACQU\u0130RES Foo; \u017feo; \u0131stanbul M&A",
        "acqui",
        "",
        "nothing here",
    ]
    matcher = TopicMatcher(topics)
    patterns = {tid: re.compile("|".join(_pattern(k) for k in kws), re.I) for tid, kws in topics}
    for text in texts:
        expected = {
            tid: round(1.0 - 0.5 ** len(rx.findall(text)), 4)
            for tid, rx in patterns.items()
            if rx.search(text)
        }
        assert matcher.match(text) == expected, text


def test_default_topics_are_created_once(db: None) -> None:
    assert topics_ensure_defaults() == len(DEFAULT_TOPICS)
    assert topics_ensure_defaults() == 0
    assert Topic.objects.count() == len(DEFAULT_TOPICS)


# --- push API ------------------------------------------------------------------------------------------
@pytest.fixture
def analyst_client(make_user) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.force_authenticate(make_user("analyst"))
    return client


def test_push_api_stores_items_and_reports_per_item_errors(analyst_client: APIClient) -> None:
    body = {
        "source": "newswire",
        "items": [
            {
                "title": "Nike raises guidance",
                "url": "https://x.test/1",
                "published_at": "2024-05-14T09:00:00Z",
            },
            {"text": ""},
            {"text": "ok", "published_at": "yesterday"},
            "not an object",
            {"text": 5},
            {"text": "extra", "colour": "red"},
            {"title": "Nike raises guidance", "url": "https://x.test/1"},
        ],
    }
    response = analyst_client.post("/api/sentiment/items/", body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["created"] == 1 and data["duplicates"] == 1
    rejected = {r["index"]: r["reason"] for r in data["rejected"]}
    assert sorted(rejected) == [1, 2, 3, 4, 5]
    assert "empty" in rejected[1] and "not a date-time" in rejected[2] and "JSON object" in rejected[3]
    assert "must be a string" in rejected[4] and "colour" in rejected[5]
    item = Item.objects.get()
    assert item.source.name == "newswire" and item.source.kind == "push"
    assert item.published_at == datetime(2024, 5, 14, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"items": []}, "non-empty list"),
        ({"items": "text"}, "non-empty list"),
        ({"items": [{"text": "x"}] * 1001}, "at most 1000"),
        ({"items": [{"text": ""}]}, "no item was accepted"),
        ([1, 2], "JSON object"),
    ],
)
def test_push_api_rejects_bad_requests_with_a_readable_message(
    analyst_client: APIClient, body: object, message: str
) -> None:
    response = analyst_client.post("/api/sentiment/items/", body, format="json")
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_push_api_needs_the_permission(make_user) -> None:  # type: ignore[no-untyped-def]
    client = APIClient()
    assert client.post("/api/sentiment/items/", {"items": [{"text": "x"}]}, format="json").status_code in (
        401,
        403,
    )
    client.force_authenticate(make_user("agent"))
    assert client.post("/api/sentiment/items/", {"items": [{"text": "x"}]}, format="json").status_code == 403
    assert Item.objects.count() == 0


# --- CSV upload ----------------------------------------------------------------------------------------
def _csv(text: str, encoding: str = "utf-8") -> bytes:
    return text.encode(encoding)


def test_csv_upload_reports_rows_by_spreadsheet_number(source: Source) -> None:
    data = _csv(
        "title,text,published_at,url\n"
        "Apple beats,Strong quarter,2024-05-14 09:00,https://x.test/a\n"
        ",,2024-05-14,\n"
        "Tesla,Deliveries fall,not a date,\n"
        "Dup,Strong quarter,,https://x.test/a\n"
        "Future,From tonight,2024-05-14T23:00:00Z,\n"
        "Far future,In 2999,2999-01-01T00:00:00Z,\n"
    )
    report = items_upload_csv(source=source, data=data, now=NOW)
    assert report.created == 2 and report.duplicates == 1
    assert report.rejected == [
        (3, "text and title are both empty"),
        (4, report.rejected[1][1]),
        (7, report.rejected[2][1]),
    ]
    assert "not a date-time" in report.rejected[1][1]
    assert "outside the accepted window" in report.rejected[2][1]
    assert report.rejected_fields == {3: "text", 4: "published_at", 7: "published_at"}
    assert report.notes[0][0] == 6 and "future" in report.notes[0][1]
    assert Item.objects.get(title="Future").published_at == NOW


def test_csv_upload_of_the_same_file_again_stores_nothing_twice(source: Source) -> None:
    data = _csv("text\nfirst\nsecond\n")
    items_upload_csv(source=source, data=data, now=NOW)
    again = items_upload_csv(source=source, data=data, now=NOW)
    assert (again.created, again.duplicates) == (0, 2) and Item.objects.count() == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"headline_only_col;other\nx;y\n", "needs a 'text' or 'title' column"),
        (b"", "no header row"),
        ("text\nCaf\u00e9 Ltd gains\n".encode("latin-1"), "not UTF-8 (byte 0xe9 on line 2)"),
        ("text\nhello\n".encode("utf-16"), "UTF-16"),
    ],
)
def test_csv_upload_rejects_bad_files_and_stores_nothing(source: Source, data: bytes, message: str) -> None:
    with pytest.raises(ServiceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        items_upload_csv(source=source, data=data, now=NOW)
    assert Item.objects.count() == 0


def test_csv_upload_reads_latin1_when_told(source: Source) -> None:
    data = "text\nCaf\u00e9 Ltd gains\n".encode("latin-1")
    assert items_upload_csv(source=source, data=data, encoding="latin-1", now=NOW).created == 1
    assert Item.objects.get().text == "Caf\u00e9 Ltd gains"


def test_csv_upload_truncates_huge_rows(source: Source) -> None:
    big = "word " * 60_000  # 300 KB in one cell: more than csv's default field limit too
    report = items_upload_csv(source=source, data=_csv(f'text\n"{big}"\nsmall\n'), now=NOW)
    assert report.created == 2
    assert Item.objects.get(truncated=True).text == big.strip()[: ingest.MAX_TEXT_CHARS]
    assert report.notes[0][0] == 2 and "truncated" in report.notes[0][1]


def test_csv_upload_api(analyst_client: APIClient) -> None:
    upload = io.BytesIO(b"text,published_at\nBoeing shares fall,2024-05-14T08:00:00Z\n,\n")
    upload.name = "news.csv"
    response = analyst_client.post("/api/sentiment/uploads/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["created"] == 1 and response.json()["rejected"][0]["index"] == 3
    assert Item.objects.get().source.kind == "upload"

    bad = io.BytesIO("text\n\u00e9t\u00e9\n".encode("latin-1"))
    bad.name = "bad.csv"
    response = analyst_client.post("/api/sentiment/uploads/", {"file": bad}, format="multipart")
    assert response.status_code == 400 and "not UTF-8" in response.json()["detail"]


def test_parse_when_accepts_common_forms() -> None:
    assert uploads.parse_when("2024-05-14T09:00:00Z") == datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
    assert uploads.parse_when("1715677200") == datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
    assert uploads.parse_when("2024-05-14") == datetime(2024, 5, 14, tzinfo=UTC)
    assert uploads.parse_when("") is None
    with pytest.raises(ValueError, match="not a date-time"):
        uploads.parse_when("14/05/2024")
    assert timezone.is_aware(uploads.parse_when("2024-05-14 09:00+02:00"))  # type: ignore[arg-type]


class _TooBig:
    """An upload whose declared size is over the limit; reading it would be a defect."""

    size = uploads.UPLOAD_MAX_BYTES + 1

    def read(self) -> bytes:
        raise AssertionError("a file over the limit must be refused before it is read")


def test_one_upload_service_checks_size_first_and_names_the_default_source(db: None) -> None:
    with pytest.raises(ServiceError, match="larger than 50 MB"):
        uploads.items_upload_file(file=_TooBig(), source_name="", username="ana")
    upload = io.BytesIO(b"title\nACME beats estimates\n")
    upload.size = len(upload.getvalue())  # type: ignore[attr-defined]
    report = uploads.items_upload_file(file=upload, source_name="", username="ana")  # type: ignore[arg-type]
    assert report.created == 1 and Item.objects.get().source.name == "upload:ana"
    assert not Source.objects.filter(kind="upload").exclude(name="upload:ana").exists()


def test_the_dashboard_and_the_api_upload_through_the_same_service(
    analyst_client: APIClient, client, make_user, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    calls: list[dict[str, object]] = []
    real = uploads.items_upload_file

    def spy(**kwargs: object) -> object:
        calls.append(kwargs)
        return real(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(uploads, "items_upload_file", spy)
    csv = b"title\nACME beats estimates\n"
    response = analyst_client.post(
        "/api/sentiment/uploads/", {"file": SimpleUploadedFile("a.csv", csv)}, format="multipart"
    )
    assert response.status_code == 201
    client.force_login(make_user("analyst", username="desk-analyst"))
    client.post("/sentiment/sources/", {"file": SimpleUploadedFile("b.csv", csv), "encoding": "utf-8"})
    assert [c["username"] for c in calls] == ["user-analyst", "desk-analyst"]


def test_the_push_schema_and_the_push_validator_have_the_same_fields(analyst_client: APIClient) -> None:
    schema = analyst_client.get("/api/schema/?format=json").json()["components"]["schemas"]
    item = schema["PushItem"]["properties"]
    assert set(item) == set(uploads.PUSH_FIELDS)
    texts = [prop for name, prop in item.items() if name != "published_at"]
    assert all(prop["type"] == "string" and prop["nullable"] for prop in texts)
    assert [s["type"] for s in item["published_at"]["oneOf"]] == ["string", "number"]  # or Unix seconds
    push = schema["Push"]["properties"]
    assert (push["items"]["minItems"], push["items"]["maxItems"]) == (1, uploads.PUSH_MAX_ITEMS)
    assert push["source"]["maxLength"] == uploads.SOURCE_NAME_MAX_CHARS
    assert Source._meta.get_field("name").max_length == uploads.SOURCE_NAME_MAX_CHARS
    example = {"text": "ACME up", "title": "ACME", "url": "https://example.com/a", "id": "a1",
               "published_at": "2024-05-14T08:00:00Z", "language": "en"}  # fmt: skip
    assert set(example) == set(uploads.PUSH_FIELDS)
    body = {"items": [example]}
    response = analyst_client.post("/api/sentiment/items/", body, format="json")
    assert response.status_code == 201, response.json()  # every field the schema shows is accepted
    unknown = analyst_client.post(
        "/api/sentiment/items/", {"items": [{"title": "x", "colour": "red"}]}, format="json"
    )
    assert "unknown fields: colour" in str(unknown.json())
    nulls = {"items": [{**dict.fromkeys(uploads.PUSH_FIELDS), "title": "ACME falls"}]}
    assert analyst_client.post("/api/sentiment/items/", nulls, format="json").status_code == 201


@pytest.mark.parametrize(
    ("source", "message"),
    [(5, "source must be a string"), ("x" * 201, "source is at most 200 characters")],
)
def test_push_api_checks_the_source_before_storing_anything(
    analyst_client: APIClient, source: object, message: str
) -> None:
    body = {"source": source, "items": [{"text": "ACME up"}]}
    response = analyst_client.post("/api/sentiment/items/", body, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": message, "field": "source"}
    assert not Item.objects.exists() and not Source.objects.exists()
