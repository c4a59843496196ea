"""Time series in the database: buckets and baselines of scored items, re-building, and the series API.

The maths alone (EWMA steps, z-scores, bucket deltas) is tested without a database in test_series_math.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from apps.core.models import ModelVersion
from apps.sentiment.models import Bucket, Entity, Item, Score, Source
from apps.sentiment.series_math import ScoredItem
from apps.sentiment.services.series import series_apply, series_rebuild

H0 = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture
def entity(db: None) -> Entity:
    return Entity.objects.create(ticker="AAPL", name="Apple")


def _hour(entity: Entity, start: datetime) -> Bucket:
    return Bucket.objects.get(entity=entity, topic=None, granularity="hour", start=start)


def test_buckets_and_baselines_by_hand(entity: Entity) -> None:
    e = (entity.pk,)
    series_apply(
        items=[
            ScoredItem(H0 + timedelta(minutes=5), "positive", 0.8, e),
            ScoredItem(H0 + timedelta(minutes=50), "negative", -0.6, e),
            ScoredItem(H0 + 2 * H + timedelta(minutes=1), "neutral", 0.1, e),  # hour 1 stays empty
        ]
    )
    first, third = _hour(entity, H0), _hour(entity, H0 + 2 * H)
    assert (first.count, first.negative, first.positive) == (2, 1, 1)
    assert first.score_sum == pytest.approx(0.2) and first.mean_score == pytest.approx(0.1)
    assert first.negative_share == 0.5 and first.positive_share == 0.5
    assert first.baseline["count"]["n"] == 0  # a scope's first bucket has no history

    base = third.baseline
    assert base["gap"] == 1
    # count: 2 (hour 0), then the empty hour 1 as a 0: diff -2, incr -0.16
    assert base["count"]["ewma"] == pytest.approx(1.84) and base["count"]["n"] == 2
    assert base["count"]["ewmvar"] == pytest.approx(0.92 * 0.32)
    # sentiment statistics skip the empty hour
    assert base["mean_score"] == {"ewma": pytest.approx(0.1), "ewmvar": 0.0, "n": 1}
    assert base["negative_share"]["ewma"] == 0.5

    everything = Bucket.objects.get(entity=None, topic=None, granularity="day")
    assert everything.count == 3 and everything.mean_score == pytest.approx(0.3 / 3)


def test_a_late_item_refreshes_the_later_baselines(entity: Entity) -> None:
    e = (entity.pk,)
    series_apply(items=[ScoredItem(H0, "positive", 0.8, e), ScoredItem(H0, "positive", 0.6, e)])
    series_apply(items=[ScoredItem(H0 + 2 * H, "neutral", 0.0, e)])
    series_apply(items=[ScoredItem(H0 + H + timedelta(minutes=30), "negative", -0.9, e)])  # late, for hour 1

    middle, last = _hour(entity, H0 + H), _hour(entity, H0 + 2 * H)
    assert middle.baseline["count"] == {"ewma": 2.0, "ewmvar": 0.0, "n": 1}
    assert last.baseline["gap"] == 0
    assert last.baseline["count"]["ewma"] == pytest.approx(1.92)  # 2, then 1: diff -1, incr -0.08
    assert last.baseline["mean_score"]["ewma"] == pytest.approx(0.7 + 0.08 * (-0.9 - 0.7))


def test_counts_add_up_across_batches(entity: Entity) -> None:
    for _ in range(3):
        series_apply(items=[ScoredItem(H0, "negative", -0.5, (entity.pk,))])
    bucket = _hour(entity, H0)
    assert bucket.count == 3 and bucket.negative_share == 1.0 and bucket.mean_score == pytest.approx(-0.5)


def _version(number: int) -> ModelVersion:
    return ModelVersion.objects.create(task="sentiment", version=number, artifact_dir=f"/none/{number}")


def test_rebuild_recomputes_a_range_from_one_version(entity: Entity) -> None:
    source = Source.objects.create(name="s", kind="push")
    v1, v2 = _version(1), _version(2)
    items = [
        Item.objects.create(source=source, text=f"t{i}", text_hash=f"h{i}", published_at=H0 + i * H)
        for i in range(3)
    ]
    for item in items:
        item.itementity_set.create(entity=entity)
        Score.objects.create(item=item, model_version=v1, label="positive", p_negative=0.1, p_neutral=0.1,
                             p_positive=0.8, score=0.7)  # fmt: skip
        Score.objects.create(item=item, model_version=v2, label="negative", p_negative=0.9, p_neutral=0.1,
                             p_positive=0.0, score=-0.9)  # fmt: skip
    series_apply(items=[ScoredItem(i.published_at, "positive", 0.7, (entity.pk,)) for i in items])
    assert _hour(entity, H0 + H).mean_score == pytest.approx(0.7)

    result = series_rebuild(version_id=v2.pk, start=H0, end=H0 + 3 * H)

    assert result["items"] == 3
    for i in range(3):
        bucket = _hour(entity, H0 + i * H)
        assert bucket.count == 1 and bucket.mean_score == pytest.approx(-0.9) and bucket.negative == 1
    assert _hour(entity, H0 + 2 * H).baseline["mean_score"]["ewma"] == pytest.approx(-0.9)
    assert Bucket.objects.filter(entity=entity, granularity="day").get().count == 3


# --- API -----------------------------------------------------------------------------------------------
@pytest.fixture
def client(make_user) -> APIClient:  # type: ignore[no-untyped-def]
    api = APIClient()
    api.force_authenticate(make_user("analyst"))
    return api


def test_series_api_returns_buckets_with_baselines(client: APIClient, entity: Entity) -> None:
    e = (entity.pk,)
    series_apply(items=[ScoredItem(H0 + i * H, "negative", -0.5, e) for i in range(4)])
    url = "/api/sentiment/entities/aapl/series/"
    response = client.get(
        url, {"granularity": "hour", "from": H0.isoformat(), "to": (H0 + 3 * H).isoformat()}
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["entity"] == "AAPL" and data["granularity"] == "hour"
    assert [b["count"] for b in data["buckets"]] == [1, 1, 1]  # `to` is exclusive
    assert data["buckets"][2]["baseline"]["count"]["n"] == 2 and "mean_score" in data["buckets"][2]["z"]

    everything = client.get("/api/sentiment/series/", {"granularity": "day", "from": "2024-05-01T00:00:00Z",
                                                      "to": "2024-06-01T00:00:00Z"})  # fmt: skip
    assert everything.status_code == 200 and everything.json()["buckets"][0]["count"] == 4


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"granularity": "week"}, 400, "granularity"),
        ({"from": "2024-05-02T00:00:00Z", "to": "2024-05-01T00:00:00Z"}, 400, "after"),
        ({"from": "yesterday"}, 400, "ISO 8601"),
        ({"from": "2000-01-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"}, 400, "at most"),
    ],
)
def test_series_api_validates_its_query(
    client: APIClient, entity: Entity, params: dict[str, str], status: int, message: str
) -> None:
    response = client.get("/api/sentiment/entities/AAPL/series/", params)
    assert response.status_code == status
    assert message in str(response.json())


def test_series_api_unknown_ticker_and_permissions(client: APIClient, make_user) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/sentiment/entities/NOPE/series/").status_code == 404
    agent = APIClient()
    agent.force_authenticate(make_user("agent"))
    assert agent.get("/api/sentiment/entities/").status_code == 403


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("/api/sentiment/entities/NOPE/series/", "no entity with ticker 'NOPE'"),
        ("/api/sentiment/series/?ticker=NOPE", "no entity with ticker 'NOPE'"),
        ("/api/sentiment/series/?topic=nope", "no topic 'nope'"),
        ("/api/sentiment/items/?ticker=NOPE", "no entity with ticker 'NOPE'"),
        ("/api/sentiment/alerts/?ticker=NOPE", "no entity with ticker 'NOPE'"),
    ],
)
def test_an_unknown_ticker_or_topic_answers_404_naming_it(client: APIClient, url: str, detail: str) -> None:
    response = client.get(url)
    assert response.status_code == 404 and response.json() == {"detail": detail}


def test_a_ticker_is_found_in_any_case_and_with_a_cashtag(client: APIClient, entity: Entity) -> None:
    assert client.get("/api/sentiment/items/?ticker=$aapl").status_code == 200
    assert client.get("/api/sentiment/alerts/?ticker=aapl").status_code == 200
    assert client.get("/api/sentiment/entities/aapl/series/").json()["entity"] == "AAPL"


def test_entities_api_lists_and_upserts(client: APIClient) -> None:
    response = client.post("/api/sentiment/entities/", {"ticker": "$tsla", "name": "Tesla",
                                                        "aliases": ["Tesla Inc."]}, format="json")  # fmt: skip
    assert response.status_code == 201 and response.json()["ticker"] == "TSLA"
    assert response.json()["aliases"] == ["Tesla", "Tesla Inc."]
    bad = client.post("/api/sentiment/entities/", {"ticker": "two words"}, format="json")
    assert bad.status_code == 400 and "not a ticker" in bad.json()["detail"]
    assert [e["ticker"] for e in client.get("/api/sentiment/entities/").json()["results"]] == ["TSLA"]


def test_a_quiet_scope_finds_its_previous_bucket_beyond_the_look_back(entity: Entity) -> None:
    e = (entity.pk,)
    series_apply(items=[ScoredItem(H0, "positive", 0.5, e), ScoredItem(H0 + 2 * H, "neutral", 0.0, e)])
    series_apply(items=[ScoredItem(H0 + 20 * H, "negative", -0.5, e)])  # 17 empty hours later

    before, last = _hour(entity, H0 + 2 * H), _hour(entity, H0 + 20 * H)
    assert last.baseline["gap"] == 17
    assert last.baseline["count"]["n"] == before.baseline["count"]["n"] + 1 + 17  # 17 zeros folded in
    assert last.baseline["count"]["ewma"] < 0.4  # 1.9 decayed by 0.92 ** 17
    assert last.baseline["mean_score"]["n"] == 2  # the empty hours are not sentiment observations


def test_rebuild_covers_whole_days_up_to_the_end(entity: Entity) -> None:
    source = Source.objects.create(name="s", kind="push")
    version = _version(1)
    day2 = H0 + timedelta(days=1)
    for i, when in enumerate([H0, day2 + 3 * H]):  # 09:00 on day 1, 12:00 on day 2
        item = Item.objects.create(source=source, text=f"t{i}", text_hash=f"h{i}", published_at=when)
        Score.objects.create(item=item, model_version=version, label="negative", p_negative=0.8, p_neutral=0.2,
                             p_positive=0.0, score=-0.8)  # fmt: skip

    result = series_rebuild(version_id=version.pk, start=H0 + H, end=day2 + 3 * H + timedelta(minutes=30))

    assert result["items"] == 2
    assert Bucket.objects.filter(entity=None, topic=None, granularity="day").count() == 2
