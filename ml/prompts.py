"""Sandboxed prompt rendering, untrusted-text fencing and a token budget for retrieved passages.

Templates are Jinja syntax rendered in an immutable sandbox that allows no attribute access at all: variables
are plain data (str, numbers, lists, dicts), read with `x.key` or `x["key"]`, and there is no loader, so a
template cannot include files or reach the network.

Rendering has a cost ceiling (`RenderLimits`), since templates and variables come from users: the template's
and the variables' size, the loop iterations of one render (every `for` loop is counted, however nested, so
a loop inside a loop over a long list stops early instead of growing with its square), the output's length,
the time, and the operators that can make a huge value from a small one (`*`, `**`, `%`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ml.errors import InvalidInput

FENCE_OPEN = "<<<DATA"
FENCE_CLOSE = "DATA>>>"
_PLAIN = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class RenderLimits:
    """The most one render may cost; going past any limit is an InvalidInput that names it."""

    template_chars: int = 50_000
    variables_chars: int = 2_000_000  # as JSON
    iterations: int = 100_000  # loop iterations, all loops of the render together
    output_chars: int = 500_000
    seconds: float = 2.0
    max_exponent: int = 64


LIMITS = RenderLimits()


class _Meter:
    """What one render has spent so far (the loops count iterations, the stream counts characters)."""

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.iterations = 0
        self.deadline = time.monotonic() + limits.seconds

    def tick(self) -> None:
        self.iterations += 1
        if self.iterations > self.limits.iterations:
            raise InvalidInput(
                f"the template ran more than {self.limits.iterations:,} loop iterations: loop over less data "
                "or do not nest loops over long lists"
            )
        if self.iterations % 256 == 0:
            self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise InvalidInput(f"rendering the template took more than {self.limits.seconds:g} s")


_METER: ContextVar[_Meter | None] = ContextVar("prompt_render_meter", default=None)


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every `for` loop iterates through this (see `_NoAttributes._parse`)."""
    meter = _METER.get()
    for item in iterable:
        if meter is not None:
            meter.tick()
        yield item


class _NoAttributes(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return False

    def is_safe_callable(self, obj: Any) -> bool:
        return False

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """The parsed template with every loop's iterable passed through the iteration meter."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "_counted", [], [], None, None, lineno=loop.lineno)
        return tree

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """`*` within the output limit, `**` with a small exponent, `%` on numbers only (the render's limits)."""
        meter = _METER.get()
        limits = meter.limits if meter is not None else LIMITS
        if operator == "*":
            _check_repeat(left, right, limits.output_chars)
        elif operator == "**" and isinstance(right, int | float) and abs(right) > limits.max_exponent:
            raise InvalidInput(f"exponents above {limits.max_exponent} are not allowed in templates")
        elif operator == "%" and isinstance(left, str):
            raise InvalidInput("string formatting with % is not allowed in templates: use {{ value }}")
        return super().call_binop(context, operator, left, right)


def _check_repeat(left: Any, right: Any, most: int) -> None:
    sized, count = (left, right) if isinstance(right, int) else (right, left)
    if isinstance(sized, str | list) and isinstance(count, int) and len(sized) * count > most:
        raise InvalidInput(f"the template repeats a value past {most:,} characters")


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
        "_counted": _counted,
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
    if len(body) > LIMITS.template_chars:
        raise InvalidInput(f"a prompt template may have at most {LIMITS.template_chars:,} characters")
    try:
        tree = _ENV.parse(body)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        raise InvalidInput(f"template syntax error{f' on line {line}' if line else ''}: {exc}") from None
    if any(True for _ in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport))):
        raise InvalidInput("templates cannot include, import or extend other templates")
    return set(meta.find_undeclared_variables(tree))


def render(body: str, variables: Mapping[str, object], *, limits: RenderLimits = LIMITS) -> str:
    """Render a stored template with plain-data variables within `limits`; errors are InvalidInput."""
    check_template(body)
    data = _plain(dict(variables))
    if not isinstance(data, dict):  # _plain keeps a mapping a mapping
        raise InvalidInput("variables must be a mapping")
    if len(json.dumps(data, ensure_ascii=False)) > limits.variables_chars:
        raise InvalidInput(f"the variables may have at most {limits.variables_chars:,} characters as JSON")
    meter = _Meter(limits)
    token = _METER.set(meter)
    try:
        return _stream(_ENV.from_string(body).generate(**data), meter)
    except TemplateError as exc:
        raise InvalidInput(f"cannot render template: {exc}") from None
    except RecursionError:
        raise InvalidInput("the template or its variables nest too deeply") from None
    finally:
        _METER.reset(token)


def _stream(chunks: Iterator[str], meter: _Meter) -> str:
    out: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > meter.limits.output_chars:
            raise InvalidInput(
                f"the rendered prompt would be longer than {meter.limits.output_chars:,} characters"
            )
        meter.check_time()
        out.append(chunk)
    return "".join(out)


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
