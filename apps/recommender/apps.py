from apps.core.platform import ContextaApp
from apps.core.roles import ADMIN, ANALYST


class RecommenderConfig(ContextaApp):
    name = "apps.recommender"
    label = "recommender"
    verbose_name = "Recommender"

    urls = "apps.recommender.urls"
    url_prefix = "recommender/"
    # No navigation entry until the app has pages to show (the recommender issue adds it back).
    role_permissions = {ADMIN: ("recommender.*",), ANALYST: ("recommender.*",)}
