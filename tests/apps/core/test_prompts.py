from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.core import selectors
from apps.core.errors import ServiceError
from apps.core.models import PromptVersion
from apps.core.services import prompts as svc

pytestmark = pytest.mark.django_db

BODY = (
    "Answer {{ customer }} using:\n{% for p in passages %}- {{ p.text }}\n{% endfor %}{{ question | fence }}"
)


@pytest.fixture
def template(make_user):
    return svc.prompt_template_create(name="support-answer", body=BODY, user=make_user("admin"))


def test_versions_are_immutable(template):
    v1 = template.versions.get()
    v1.body = "changed"
    with pytest.raises(ValidationError, match="immutable"):
        v1.save()
    assert PromptVersion.objects.get(pk=v1.pk).body == BODY


def test_edit_creates_a_version_and_labels_stay_until_moved(template):
    v2 = svc.prompt_version_create(template=template, body=BODY + "\nBe brief.", note="shorter", user=None)
    assert v2.number == 2
    assert selectors.prompt_resolve(template_name="support-answer").number == 1
    svc.prompt_label_move(template=template, label="production", version=v2, user=None)
    assert selectors.prompt_resolve(template_name="support-answer").number == 2
    # roll back = move the label to the old version
    v1 = template.versions.get(number=1)
    svc.prompt_label_move(template=template, label="production", version=v1, user=None)
    assert selectors.prompt_resolve(template_name="support-answer").number == 1
    label = template.labels.get(name="production")
    assert [(e.from_version.number, e.to_version.number) for e in label.events.all()] == [(2, 1), (1, 2)]


def test_unchanged_or_broken_bodies_are_refused(template):
    with pytest.raises(ServiceError, match="unchanged"):
        svc.prompt_version_create(template=template, body=BODY, user=None)
    with pytest.raises(ServiceError, match="syntax error on line 1"):
        svc.prompt_version_create(template=template, body="{% for x in %}", user=None)
    assert template.versions.count() == 1


def test_rendering_fences_untrusted_text_and_blocks_attributes(template):
    version = template.versions.get()
    text = svc.prompt_preview(
        version=version,
        variables={
            "customer": "Ann",
            "passages": [{"text": "Cards arrive in 5 days."}],
            "question": "Where is it?",
        },
    )
    assert "- Cards arrive in 5 days." in text
    assert "<<<DATA untrusted\nWhere is it?\nDATA>>>" in text
    sneaky = svc.prompt_version_create(template=template, body="{{ customer.__class__ }}", user=None)
    with pytest.raises(ServiceError, match="unsafe"):
        svc.prompt_preview(version=sneaky, variables={"customer": {"a": 1}})


def test_missing_variable_is_a_readable_error(template):
    with pytest.raises(ServiceError, match="'customer' is undefined"):
        svc.prompt_preview(version=template.versions.get(), variables={})


def test_diff_shows_changed_lines(template):
    v2 = svc.prompt_version_create(template=template, body=BODY.replace("Answer", "Reply to"), user=None)
    lines = svc.prompt_diff(old=template.versions.get(number=1), new=v2)
    assert "-Answer {{ customer }} using:" in lines
    assert "+Reply to {{ customer }} using:" in lines


def test_traffic_split_is_stable_per_key_and_near_the_percentage(template):
    v2 = svc.prompt_version_create(template=template, body=BODY + "!", user=None)
    v1 = template.versions.get(number=1)
    svc.prompt_label_move(
        template=template, label="production", version=v1, split_version=v2, split_percent=30, user=None
    )
    picks = [
        selectors.prompt_resolve(template_name="support-answer", key=f"conv-{i}").number for i in range(2000)
    ]
    share = picks.count(2) / len(picks)
    assert 0.25 < share < 0.35
    assert all(
        selectors.prompt_resolve(template_name="support-answer", key="conv-7").number == picks[7]
        for _ in range(5)
    )


def test_split_needs_two_versions_and_a_valid_percent(template):
    v1 = template.versions.get()
    with pytest.raises(ServiceError, match="two different versions"):
        svc.prompt_label_move(
            template=template, label="production", version=v1, split_version=v1, split_percent=10, user=None
        )
    with pytest.raises(ServiceError, match="unknown label"):
        svc.prompt_label_move(template=template, label="canary", version=v1, user=None)
