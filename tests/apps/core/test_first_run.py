"""Small things a new user tripped on (dashboard issue, defect 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.core import roles
from apps.core.services.registry import model_version_promote, model_version_register
from apps.sentiment.models import Source
from apps.sentiment.services import ingest
from apps.sentiment.services.ingest import ItemRecord
from ml.artifacts import ArtifactMeta, write_meta

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(make_user):
    user = make_user(None, "root")
    user.is_superuser = user.is_staff = True
    user.save()
    return user


def test_the_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")
    assert 'rel="icon"' in client.get("/accounts/login/").content.decode()


def test_the_admin_is_named_and_spelled(client, root):
    client.force_login(root)
    page = client.get("/admin/").content.decode()
    assert "Contexta administration" in page and "Django administration" not in page
    assert "Deliveries" in page and "Deliverys" not in page


def test_a_push_source_with_items_shows_its_last_item_not_never(client, make_user):
    source = ingest.source_get_or_create(name="wire", kind=Source.Kind.PUSH)
    ingest.items_ingest(source=source, records=[ItemRecord(text="Kone lifts its outlook")], score=False)
    client.force_login(make_user(roles.ANALYST))
    row = client.get("/sentiment/sources/").content.decode().split("<b>wire</b>", 1)[1].split("</tr>", 1)[0]
    assert "never" not in row and "no items yet" not in row


def test_a_feed_can_be_added_from_the_sources_page(client, make_user):
    client.force_login(make_user(roles.ANALYST))
    page = client.get("/sentiment/sources/").content.decode()
    assert 'action="/sentiment/sources/feeds/new/"' in page
    added = client.post(
        "/sentiment/sources/feeds/new/",
        {"name": "markets", "url": "https://93.184.216.34/rss", "poll_minutes": "15"},
    )
    assert added.status_code == 302
    feed = Source.objects.get(name="markets")
    assert (feed.kind, feed.poll_interval_seconds) == (Source.Kind.FEED, 900)


def test_a_feed_at_an_internal_address_is_refused_on_the_form(client, make_user):
    client.force_login(make_user(roles.ANALYST))
    refused = client.post(
        "/sentiment/sources/feeds/new/",
        {"name": "inside", "url": "http://10.0.0.5/rss", "poll_minutes": "15"},
    )
    assert refused.status_code == 400 and "a private address" in refused.content.decode()
    assert not Source.objects.filter(name="inside").exists()


def _version(store: Path, name: str):
    path = store / "demo" / name
    write_meta(path, ArtifactMeta(task="demo", kind="sequence-classifier", base_model="m", metrics={}))
    return model_version_register(task="demo", artifact_dir=path)


def test_roll_back_is_offered_only_with_somewhere_to_go_and_asks_first(client, make_user, model_store):
    client.force_login(make_user(roles.ADMIN))
    _version(model_store, "a")
    assert "Roll back" not in client.get("/models/").content.decode()  # one version: nowhere to go

    admin = make_user(roles.ADMIN, "other-admin")
    model_version_promote(version=_version(model_store, "b"), user=admin)
    page = client.get("/models/").content.decode()
    assert "Roll back to v1" in page and 'data-confirm="Make demo v1 active again' in page
