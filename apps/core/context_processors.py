from django.http import HttpRequest

from apps.core.roles import ADMIN, AGENT, ANALYST, has_role


def navigation(request: HttpRequest) -> dict[str, object]:
    user = request.user
    if not user.is_authenticated:
        return {"nav": []}
    items = [
        ("Overview", "core:dashboard", True),
        ("Support", "support:index", has_role(user, ADMIN, AGENT)),
        ("Sentiment", "sentiment:index", has_role(user, ADMIN, ANALYST)),
        ("Recommender", "recommender:index", has_role(user, ADMIN, ANALYST)),
        ("Jobs", "core:jobs", user.has_perm("core.view_trainingjob")),
        ("Models", "core:models", user.has_perm("core.view_modelversion")),
        ("Prompts", "core:prompts", user.has_perm("core.view_prompttemplate")),
    ]
    return {"nav": [(label, name) for label, name, allowed in items if allowed]}
