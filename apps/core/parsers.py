"""The API's JSON parser: DRF's, made safe for hostile bodies.

- A body over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413.
- Bytes that are not text in the declared charset (UTF-8 by default) are a 400.
- Arrays and objects nested deeper than MAX_DEPTH are a 400, found by a flat scan before anything is parsed
  (Python's json module recurses, and runs out of stack at about 1,000 levels).
- A lone surrogate (a "\\udc80" escape without its pair) anywhere in the body is a 400 naming where it is: such a
  string cannot be stored, hashed or answered. Batch endpoints that reject bad items one by one use
  BatchJSONParser, which leaves that to the service so the other items are kept.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import APIException, ParseError
from rest_framework.settings import api_settings
from rest_framework.utils import json

MAX_DEPTH = 64

# A JSON string, to the end of the text if it is never closed: every match succeeds, so no backtracking.
_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKETS_RE = re.compile(r"[^\[\]{}]+")
_SURROGATE_ESCAPE_RE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


class RequestTooLarge(APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "request_too_large"


class BadBody(ParseError):
    """A request body that cannot be read, naming the part of it to blame when one is."""

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field


def printable(text: str) -> str:
    """`text` with lone surrogates written as escapes (\\udc80): they cannot be encoded in any answer."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8") if _SURROGATE_RE.search(text) else text


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether arrays and objects in the JSON `text` nest deeper than `limit` (strings are skipped)."""
    brackets = _NOT_BRACKETS_RE.sub("", _STRING_RE.sub("", text))
    depth = 0
    for bracket in brackets:
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def lone_surrogate_path(data: Any) -> str | None:
    """The dotted path ("items.2.title") of the first string or key holding a lone surrogate, if any.

    Walks with an explicit stack, so even a deep structure cannot exhaust Python's.
    """
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if _SURROGATE_RE.search(value):
                return path
        elif isinstance(value, dict):
            children = []
            for key, child in value.items():
                child_path = f"{path}.{printable(str(key))}" if path else printable(str(key))
                if isinstance(key, str) and _SURROGATE_RE.search(key):
                    return child_path
                children.append((child_path, child))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend(
                reversed([(f"{path}.{i}" if path else str(i), child) for i, child in enumerate(value)])
            )
    return None


def parse_json(raw: bytes, *, encoding: str = "utf-8", allow_lone_surrogates: bool = False) -> Any:
    """Decode and parse a JSON body with the checks above; raises BadBody (a DRF ParseError)."""
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise BadBody(
            f"JSON parse error - the body is not {encoding} text (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}); send UTF-8"
        ) from None
    if too_deep(text):
        raise BadBody(f"JSON parse error - arrays and objects are nested more than {MAX_DEPTH} deep")
    parse_constant = json.strict_constant if api_settings.STRICT_JSON else None
    try:
        data = json.loads(text, parse_constant=parse_constant)
    except (ValueError, RecursionError) as exc:
        raise BadBody(f"JSON parse error - {exc}") from None
    if not allow_lone_surrogates and _SURROGATE_ESCAPE_RE.search(text):
        path = lone_surrogate_path(data)
        if path is not None:
            raise BadBody(
                f"{path or 'the body'} holds a lone surrogate escape (half of a UTF-16 pair): send valid text",
                field=path or None,
            )
    return data


def read_limited(stream: Any) -> bytes:
    """The body from `stream`, refusing one over DATA_UPLOAD_MAX_MEMORY_SIZE without reading all of it."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    raw: bytes = stream.read() if limit is None else stream.read(limit + 1)
    if limit is not None and len(raw) > limit:
        raise RequestTooLarge()
    return raw


def _encoding(parser_context: dict[str, Any]) -> str:
    """The declared charset, if it is a text encoding (as DRF checks: "bz2_codec" would inflate the body)."""
    encoding = parser_context.get("encoding") or settings.DEFAULT_CHARSET
    try:
        "".encode(encoding)
    except (LookupError, UnicodeError):
        raise BadBody(f'Unsupported charset "{encoding}" in request Content-Type header.') from None
    return str(encoding)


class JSONParser(parsers.JSONParser):
    allow_lone_surrogates = False

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        if stream is None:
            return {}
        encoding = _encoding(parser_context or {})
        return parse_json(
            read_limited(stream), encoding=encoding, allow_lone_surrogates=self.allow_lone_surrogates
        )


class BatchJSONParser(JSONParser):
    """For endpoints whose service rejects a bad item alone, naming it: lone surrogates reach the service."""

    allow_lone_surrogates = True
