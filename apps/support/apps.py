from apps.core.platform import ContextaApp, NavEntry
from apps.core.roles import ADMIN, AGENT


class SupportConfig(ContextaApp):
    name = "apps.support"
    label = "support"
    verbose_name = "Support"

    urls = "apps.support.urls"
    url_prefix = "support/"
    nav = (NavEntry("Support", "support:index", roles=(ADMIN, AGENT), order=10),)
    role_permissions = {ADMIN: ("support.*",), AGENT: ("support.*",)}
