"""`bootstrap` (run by `make run`): roles, and the first admin from the settings or with a printed password."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_first_admin_takes_the_configured_name_and_password(settings, capsys):
    settings.CONTEXTA_ADMIN_USER, settings.CONTEXTA_ADMIN_PASSWORD = "ops", "a-long-secret-9"
    call_command("bootstrap")
    admin = User.objects.get(username="ops")
    assert admin.is_superuser and admin.check_password("a-long-secret-9")
    assert admin.groups.filter(name="admin").exists()
    assert "a-long-secret-9" not in capsys.readouterr().out


def test_without_a_password_one_is_generated_and_printed_once(settings, capsys):
    settings.CONTEXTA_ADMIN_PASSWORD = ""
    call_command("bootstrap")
    out = capsys.readouterr().out
    password = out.split("/accounts/password/): ")[1].split()[0]
    assert User.objects.get(username="admin").check_password(password)
    call_command("bootstrap")  # every start runs it: nothing new, nothing printed
    assert User.objects.filter(is_superuser=True).count() == 1
    assert capsys.readouterr().out == ""
