from django.http import HttpRequest, HttpResponse
from django.urls import path

app_name = "plugin"


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("plugin")


urlpatterns = [path("", index, name="index")]
