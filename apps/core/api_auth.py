"""POST /api/auth/token/: DRF's token view, answering 429 while django-axes has the login locked out."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.access import PUBLIC, access


@access(PUBLIC)
class TokenView(ObtainAuthToken):
    """A token for a username and password; wrong passwords count towards a lock-out (LOGIN_FAILURE_LIMIT)."""

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid() and getattr(request, "axes_locked_out", False):
            # The axes backend refused even to check the password: say so, rather than "wrong password".
            raise Throttled(
                wait=settings.AXES_COOLOFF_TIME * 3600,
                detail="Too many failed logins for this username from this address.",
            )
        serializer.is_valid(raise_exception=True)
        # As DRF's view does, from the one authentication above (super().post would check the password again).
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})
