"""Server paths out of what non-admins see: "/srv/contexta/var/models/x" reads "MODEL_STORE/x".

Job parameters, results, logs and errors, and model versions, name files on the server. People who run
jobs need to know which data set and which version; where the files lie on the disk is for admins (the
`core.view_all_trainingjob` permission).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

SEE_ALL = "core.view_all_trainingjob"


def _roots() -> list[tuple[str, str]]:
    """(path prefix, what it reads as), the longest first so a nested root wins."""
    roots = {
        str(settings.MODEL_STORE): "MODEL_STORE",
        str(settings.DATA_DIR): "DATA_DIR",
        str(settings.VAR_DIR): "VAR_DIR",
        str(settings.BASE_DIR): "APP_DIR",
    }
    return sorted(roots.items(), key=lambda root: len(root[0]), reverse=True)


def hide_paths(value: Any) -> Any:
    """`value` (text or JSON data) with every server root replaced by its name."""
    if isinstance(value, str):
        for prefix, name in _roots():
            value = value.replace(prefix, name)
        return value
    if isinstance(value, dict):
        return {key: hide_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [hide_paths(item) for item in value]
    return value


def shown_to(user: Any, value: Any) -> Any:
    """`value` as `user` may see it: whole for admins, with server paths hidden for everyone else."""
    return value if user.has_perm(SEE_ALL) else hide_paths(value)
