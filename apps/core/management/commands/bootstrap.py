"""Create the first admin (and roles) on a fresh install; safe to run on every start."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from apps.core.roles import ADMIN, ensure_roles


class Command(BaseCommand):
    help = "Create roles and a first admin from CONTEXTA_ADMIN_USER / CONTEXTA_ADMIN_PASSWORD / CONTEXTA_ADMIN_EMAIL."

    def handle(self, *args: Any, **options: Any) -> None:
        ensure_roles()
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        username, email = settings.CONTEXTA_ADMIN_USER, settings.CONTEXTA_ADMIN_EMAIL
        generated = not settings.CONTEXTA_ADMIN_PASSWORD
        password = settings.CONTEXTA_ADMIN_PASSWORD or secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=username, email=email, password=password)
        user.groups.add(Group.objects.get(name=ADMIN))
        self.stdout.write(self.style.SUCCESS(f"Created the first admin {username!r}."))
        if generated:
            self.stdout.write(
                f"  password (shown once, change it at /accounts/password/): {password}\n"
                "  set CONTEXTA_ADMIN_PASSWORD to choose it instead."
            )
