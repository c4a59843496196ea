from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.core.access import access
from apps.core.roles import ADMIN, AGENT, has_role


@access("role:admin,agent")
@login_required
def index(request: HttpRequest) -> HttpResponse:
    if not has_role(request.user, ADMIN, AGENT):
        raise PermissionDenied
    return render(request, "support/index.html")
