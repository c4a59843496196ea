"""The URL conf: the sign-in pages, health, the API schema, and every installed app's declared URLs.

Each app mounts its dashboard at `url_prefix` and its API at "api/" + `api_prefix` (see apps.core.platform).
"""

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from apps.core import views as core_views
from apps.core.access import PUBLIC, SIGNED_IN, access
from apps.core.platform import url_mounts

# The API reference pages (no user content) run the documentation viewers' own inline styles and scripts.
_docs_csp = csp_update({"script-src": [UNSAFE_INLINE], "style-src": [UNSAFE_INLINE], "worker-src": ["blob:"]})

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("favicon.ico", core_views.favicon),
    path("accounts/login/", access(PUBLIC)(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", access(PUBLIC)(auth_views.LogoutView.as_view()), name="logout"),
    path(
        "accounts/password/",
        access(SIGNED_IN)(auth_views.PasswordChangeView.as_view()),
        name="password_change",
    ),
    path(
        "accounts/password/done/",
        access(SIGNED_IN)(auth_views.PasswordChangeDoneView.as_view()),
        name="password_change_done",
    ),
    path("admin/", admin.site.urls),
    path("api/schema/", access(PUBLIC)(SpectacularAPIView.as_view()), name="api-schema"),
    path(
        "api/docs/",
        access(PUBLIC)(_docs_csp(SpectacularSwaggerSplitView.as_view(url_name="api-schema"))),
        name="api-docs",
    ),
    path(
        "api/redoc/",
        access(PUBLIC)(_docs_csp(SpectacularRedocView.as_view(url_name="api-schema"))),
        name="api-redoc",
    ),
    *(path(prefix, include(module)) for prefix, module in url_mounts()),
]
