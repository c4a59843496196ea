"""The top navigation: only apps that have pages, the current section marked, a skip link."""

from __future__ import annotations

import pytest

from apps.core import roles

pytestmark = pytest.mark.django_db


def _nav(html: str) -> str:
    return html.split("<nav>", 1)[1].split("</nav>", 1)[0]


def test_apps_without_pages_are_not_in_the_navigation(client, make_user):
    client.force_login(make_user(roles.ADMIN))
    nav = _nav(client.get("/").content.decode())
    assert "Recommender" not in nav
    assert "Support" in nav and "Sentiment" in nav and "Jobs" in nav


@pytest.mark.parametrize(
    ("path", "current"), [("/", "Overview"), ("/jobs/", "Jobs"), ("/sentiment/alerts/", "Sentiment")]
)
def test_the_current_section_is_marked_for_screen_readers(client, make_user, path, current):
    client.force_login(make_user(roles.ADMIN))
    nav = _nav(client.get(path).content.decode())
    marked = [
        part.split(">", 1)[1].split("<", 1)[0]
        for part in nav.split("<a ")[1:]
        if 'aria-current="page"' in part
    ]
    assert marked == [current]


def test_every_page_starts_with_a_skip_link(client, make_user):
    client.force_login(make_user(roles.ADMIN))
    html = client.get("/").content.decode()
    assert '<a class="skip" href="#main">' in html and '<main id="main">' in html
