"""Input hygiene shared by every entry point: bytes, huge strings, control characters."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence

from ml.errors import InvalidInput

# Far above any model window (512 tokens is ~3 KB of English); keeps tokenizers from chewing on megabytes.
MAX_CHARS = 20_000
_CONTROL = {c for c in map(chr, range(32)) if c not in "\t\n\r"} | {"\x7f"}
_LINK = re.compile(r"https?://\S+", re.IGNORECASE)


def clean_text(value: object) -> str:
    """Return `value` as a normalised str; bytes are decoded as UTF-8 with invalid sequences replaced."""
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("utf-8", errors="replace")
    if not isinstance(value, str):
        raise InvalidInput(f"expected text (str or bytes), got {type(value).__name__}")
    text = unicodedata.normalize("NFC", value[: MAX_CHARS * 2])
    text = "".join(" " if ch in _CONTROL else ch for ch in text)
    # Lone surrogates cannot be encoded and crash tokenizers: replace them.
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text[:MAX_CHARS]


def clean_texts(values: Iterable[object]) -> list[str]:
    """Clean a batch; a bare string is refused so it is not mistaken for a list of characters."""
    if isinstance(values, str | bytes):
        raise InvalidInput("expected a list of texts, got a single string")
    return [clean_text(v) for v in values]


def length_order(texts: Sequence[str]) -> list[int]:
    """Indices of `texts` sorted by length, so each batch holds similar lengths and carries little padding."""
    return sorted(range(len(texts)), key=lambda i: len(texts[i]))


def strip_links(text: str) -> str:
    """The text without http(s) links, whitespace collapsed.

    A shortened link ("https://t.co/KN1g4AWFIb") says nothing about sentiment yet costs a classifier 17 word
    pieces on average: 47 % of the finance tweets carry one, and without them the mean tweet is 20 tokens,
    not 28.
    """
    return " ".join(_LINK.sub(" ", text).split())


def mark_links(text: str) -> str:
    """Each http(s) link replaced by the one word piece "http", whitespace collapsed.

    The link's characters are noise, but whether a post carries a link is a signal: in the finance tweets,
    69 % of the posts with a link are neutral against 61 % of those without (news headlines link to the
    story). The marker keeps that for one token instead of 17.
    """
    return " ".join(_LINK.sub(" http ", text).split())


# What a classifier does to a text before its tokenizer sees it, by the name its artifact records
# (`text_preprocess` in meta.json): training and every inference backend apply the same one.
PREPROCESSORS: dict[str, Callable[[str], str]] = {
    "": lambda text: text,
    "strip-links": strip_links,
    "mark-links": mark_links,
}


def preprocess(texts: Sequence[str], name: str) -> list[str]:
    try:
        step = PREPROCESSORS[name]
    except KeyError:
        raise InvalidInput(
            f"unknown text preprocessing {name!r}; known: {', '.join(repr(k) for k in PREPROCESSORS)}"
        ) from None
    return [step(text) for text in texts]
