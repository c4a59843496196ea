"""Sandboxed prompt rendering, untrusted-text fencing and a token budget for retrieved passages.

Templates are Jinja syntax rendered in an immutable sandbox that allows no attribute access at all: variables
are plain data (str, numbers, lists, dicts), read with `x.key` or `x["key"]`, and there is no loader, so a
template cannot include files or reach the network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ml.errors import InvalidInput

FENCE_OPEN = "<<<DATA"
FENCE_CLOSE = "DATA>>>"
_PLAIN = (str, int, float, bool, type(None))


class _NoAttributes(ImmutableSandboxedEnvironment):
    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return False

    def is_safe_callable(self, obj: Any) -> bool:
        return False


def fence(text: object, label: str = "untrusted") -> str:
    """Wrap untrusted text (a customer message, a document) as data the model must not obey.

    The fence markers inside the text are neutralised so the text cannot close its own fence.
    """
    body = str(text).replace(FENCE_OPEN, "<<DATA").replace(FENCE_CLOSE, "DATA>>")
    return f"{FENCE_OPEN} {label}\n{body}\n{FENCE_CLOSE}"


def _default(value: object, fallback: object = "") -> object:
    """`{{ x | default("…") }}`: the fallback when x is undefined, None or empty."""
    if isinstance(value, Undefined) or value is None or value == "":
        return fallback
    return value


def _environment() -> _NoAttributes:
    env = _NoAttributes(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters = {
        "fence": fence,
        "upper": str.upper,
        "lower": str.lower,
        "trim": str.strip,
        "length": len,
        "join": lambda seq, sep="": sep.join(str(x) for x in seq),
        "default": _default,
    }
    env.globals = {}
    env.tests = {"defined": lambda v: v is not None, "none": lambda v: v is None}
    return env


_ENV = _environment()


def _plain(value: object, path: str = "variables") -> object:
    """Copy `value` into plain data, refusing anything else (objects could expose attributes)."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise InvalidInput(
        f"{path}: templates take plain data only (str, numbers, lists, dicts), got {type(value).__name__}"
    )


def check_template(body: str) -> set[str]:
    """Parse `body`, raising InvalidInput with the line on a syntax error; returns the variables it uses."""
    from jinja2 import meta

    if not body.strip():
        raise InvalidInput("a prompt template cannot be empty")
    try:
        tree = _ENV.parse(body)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        raise InvalidInput(f"template syntax error{f' on line {line}' if line else ''}: {exc}") from None
    if any(True for _ in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport))):
        raise InvalidInput("templates cannot include, import or extend other templates")
    return set(meta.find_undeclared_variables(tree))


def render(body: str, variables: Mapping[str, object]) -> str:
    """Render a stored template with plain-data variables; errors are InvalidInput with a readable reason."""
    check_template(body)
    data = _plain(dict(variables))
    assert isinstance(data, dict)
    try:
        return _ENV.from_string(body).render(**data)
    except TemplateError as exc:
        raise InvalidInput(f"cannot render template: {exc}") from None


@dataclass(frozen=True)
class Passage:
    text: str
    score: float
    source: str = ""


def fit_passages(
    passages: Sequence[Passage], budget: int, count_tokens: Callable[[str], int], *, min_tokens: int = 32
) -> list[Passage]:
    """Keep the best passages that fit in `budget` tokens.

    Passages are taken best score first; one that does not fit whole is trimmed to the room left (if at
    least `min_tokens` remain), and everything ranked below is dropped. Order in the result is by score.
    """
    if budget <= 0:
        return []
    kept: list[Passage] = []
    room = budget
    for p in sorted(passages, key=lambda p: p.score, reverse=True):
        need = count_tokens(p.text)
        if need <= room:
            kept.append(p)
            room -= need
            continue
        if room >= min_tokens:
            kept.append(Passage(_trim(p.text, room, count_tokens), p.score, p.source))
        break
    return kept


def _trim(text: str, budget: int, count_tokens: Callable[[str], int]) -> str:
    words = text.split()
    lo, hi = 0, len(words)
    while lo < hi:  # longest word prefix that fits
        mid = (lo + hi + 1) // 2
        if count_tokens(" ".join(words[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate (about 4 characters a token), for previews in the web process only."""
    return max(1, len(text) // 4) if text else 0
