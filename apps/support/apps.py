from apps.core.platform import ContextaApp
from apps.core.roles import ADMIN, AGENT


class SupportConfig(ContextaApp):
    name = "apps.support"
    label = "support"
    verbose_name = "Support"

    urls = "apps.support.urls"
    url_prefix = "support/"
    # No navigation entry until the app has pages to show (the support issues add it back).
    role_permissions = {ADMIN: ("support.*",), AGENT: ("support.*",)}
