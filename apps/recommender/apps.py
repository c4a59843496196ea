from apps.core.platform import ContextaApp, NavEntry
from apps.core.roles import ADMIN, ANALYST


class RecommenderConfig(ContextaApp):
    name = "apps.recommender"
    label = "recommender"
    verbose_name = "Recommender"

    urls = "apps.recommender.urls"
    url_prefix = "recommender/"
    nav = (NavEntry("Recommender", "recommender:index", roles=(ADMIN, ANALYST), order=30),)
    role_permissions = {ADMIN: ("recommender.*",), ANALYST: ("recommender.*",)}
