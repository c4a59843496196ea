from django.http import HttpRequest

from apps.core.platform import navigation_entries


def navigation(request: HttpRequest) -> dict[str, object]:
    """The top navigation: every installed app's declared entries that this user may open."""
    user = request.user
    if not user.is_authenticated:
        return {"nav": []}
    return {
        "nav": [(entry.label, entry.url_name) for entry in navigation_entries() if entry.visible_to(user)]
    }
