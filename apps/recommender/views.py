from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.core.access import access
from apps.core.roles import ADMIN, ANALYST, has_role


@access("role:admin,analyst")
@login_required
def index(request: HttpRequest) -> HttpResponse:
    if not has_role(request.user, ADMIN, ANALYST):
        raise PermissionDenied
    return render(request, "recommender/index.html")
