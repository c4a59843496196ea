"""The support pages: the knowledge-base list with its create form, a KB page with its documents and
the forms that add and delete them; agents and admins only."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.support.models import Document, KnowledgeBase

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_ml")]


@pytest.fixture
def agent(client: Client, make_user: Any) -> Client:
    client.force_login(make_user("agent"))
    return client


def test_the_index_lists_knowledge_bases_and_creates_one(agent: Client) -> None:
    empty = agent.get("/support/").content.decode()
    created = agent.post("/support/kb/new/", {"name": "Billing help", "slug": "", "description": ""})

    assert "No knowledge bases yet." in empty and 'id="new-kb"' in empty
    assert created.status_code == 302 and created["Location"] == "/support/kb/billing-help/"
    assert "Billing help" in agent.get("/support/").content.decode()


def test_a_taken_slug_is_shown_on_the_form(agent: Client, support_kb: KnowledgeBase) -> None:
    response = agent.post("/support/kb/new/", {"name": "Other", "slug": "help"})

    assert response.status_code == 400 and "already exists" in response.content.decode()


def test_documents_added_on_the_page_show_status_passages_and_a_confirmed_delete(
    agent: Client, support_kb: KnowledgeBase, run_queued: Any
) -> None:
    paste = {"paste-title": "Hours", "paste-text": "# Hours\nWe open at nine.", "paste-format": "markdown",
             "paste-visibility": "internal"}  # fmt: skip
    upload = {"upload-file": SimpleUploadedFile("faq.md", b"# FAQ\nAsk us."), "upload-visibility": "public"}

    assert run_queued(lambda: agent.post("/support/kb/help/paste/", paste)).status_code == 302
    assert run_queued(lambda: agent.post("/support/kb/help/upload/", upload)).status_code == 302
    page = agent.get("/support/kb/help/").content.decode()

    assert page.count("tone-ok") >= 2 and "Internal" in page and "Hours" in page and "faq.md" in page
    assert 'data-confirm="Delete Hours from Help centre?' in page
    hours = Document.objects.get(title="Hours")
    assert run_queued(lambda: agent.post(f"/support/kb/help/documents/{hours.pk}/delete/")).status_code == 302
    assert list(Document.objects.values_list("title", flat=True)) == ["faq.md"]


def test_a_failed_document_shows_its_error(agent: Client, support_kb: KnowledgeBase, run_queued: Any) -> None:
    bad = {"upload-file": SimpleUploadedFile("a.csv", b"q,a\nx,y\n"), "upload-visibility": "public"}
    run_queued(lambda: agent.post("/support/kb/help/upload/", bad))

    page = agent.get("/support/kb/help/").content.decode()

    assert "tone-bad" in page and "needs a header with the columns question and answer" in page


def test_a_bad_form_is_answered_with_its_errors(agent: Client, support_kb: KnowledgeBase) -> None:
    response = agent.post(
        "/support/kb/help/url/", {"url-url": "ftp://x", "url-visibility": "public", "url-sync_minutes": "0"}
    )

    assert response.status_code == 400 and "errorlist" in response.content.decode()


def test_analysts_may_not_open_support(client: Client, make_user: Any, support_kb: KnowledgeBase) -> None:
    client.force_login(make_user("analyst"))

    assert client.get("/support/").status_code == 403 and client.get("/support/kb/help/").status_code == 403


def test_the_documents_table_is_a_live_region_of_its_knowledge_base(client, make_user, support_kb) -> None:
    client.force_login(make_user("agent"))
    page = client.get(f"/support/kb/{support_kb.slug}/").content.decode()
    assert f'<div id="kb-documents" data-live="support.kb.{support_kb.pk}"' in page
    assert 'hx-trigger="live"' in page and "every 5s" not in page
