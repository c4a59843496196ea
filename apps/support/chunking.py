"""Heading-aware chunks of a document's text for retrieval (pure: no ORM, no Django).

The text is Markdown-like (the extractor writes HTML headings as `#` lines). Each heading opens a section;
a chunk never spans two sections and carries its heading path ("Billing > Refunds"). Within a section,
paragraphs are packed into chunks of at most `budget` tokens; a paragraph longer than that is cut at
sentence ends, and a sentence longer than that at word boundaries. Consecutive chunks of one section share
`overlap` tokens, so an answer cut at a boundary is still whole in one of them.

Tokens are estimated without a tokenizer: a word (a run of letters and digits) or a punctuation mark counts
one. That is close to WordPiece on English prose (rare words split into more pieces, so real counts run a
little higher): the default budget of 200 stays under the 256-token window of the MiniLM embedder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_BUDGET = 200
DEFAULT_OVERLAP = 30
HEADING_SEPARATOR = " > "
_TOKEN = re.compile(r"\w+|[^\w\s]")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Piece:
    position: int
    heading: str  # the heading path, outermost first; "" before the first heading
    text: str
    token_count: int


@dataclass(frozen=True)
class Section:
    heading: str
    paragraphs: tuple[str, ...]


def count_tokens(text: str) -> int:
    """The estimate described above: words and punctuation marks."""
    return len(_TOKEN.findall(text))


def sections(text: str) -> list[Section]:
    """The text cut at its headings, each section with its heading path and paragraphs."""
    path: list[tuple[int, str]] = []
    found: list[Section] = []
    lines: list[str] = []
    for line in text.split("\n"):
        match = _HEADING.match(line.strip())
        if match is None:
            lines.append(line)
            continue
        found.append(Section(_path(path), _paragraphs(lines)))
        level = len(match.group(1))
        path = [(lvl, name) for lvl, name in path if lvl < level] + [(level, match.group(2).strip())]
        lines = []
    found.append(Section(_path(path), _paragraphs(lines)))
    return [section for section in found if section.paragraphs]


def _path(path: list[tuple[int, str]]) -> str:
    return HEADING_SEPARATOR.join(name for _, name in path)


def _paragraphs(lines: list[str]) -> tuple[str, ...]:
    blocks = re.split(r"\n\s*\n", "\n".join(lines))
    return tuple(" ".join(block.split()) for block in blocks if block.strip())


def _fit(paragraph: str, budget: int) -> list[str]:
    """A paragraph as parts of at most `budget` tokens: whole if it fits, else sentences, else word runs."""
    if count_tokens(paragraph) <= budget:
        return [paragraph]
    parts: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        if count_tokens(sentence) <= budget:
            parts.append(sentence)
        else:
            parts += _word_runs(sentence, budget)
    return parts


def _word_runs(text: str, budget: int) -> list[str]:
    runs: list[str] = []
    current: list[str] = []
    for word in text.split():
        if current and count_tokens(" ".join([*current, word])) > budget:
            runs.append(" ".join(current))
            current = []
        current.append(word)
    return [*runs, " ".join(current)] if current else runs


def _tail(text: str, tokens: int) -> str:
    """The last words of `text` that hold at most `tokens` tokens (the overlap)."""
    words: list[str] = []
    for word in reversed(text.split()):
        if count_tokens(" ".join([word, *words])) > tokens:
            break
        words.insert(0, word)
    return " ".join(words)


def _pack(parts: list[str], budget: int, overlap: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    for part in parts:
        joined = f"{current} {part}".strip() if current else part
        if current and count_tokens(joined) > budget:
            chunks.append(current)
            carried = _tail(current, min(overlap, budget - count_tokens(part)))
            joined = f"{carried} {part}".strip() if carried else part
        current = joined
    return [*chunks, current] if current else chunks


def chunk_text(text: str, *, budget: int = DEFAULT_BUDGET, overlap: int = DEFAULT_OVERLAP) -> list[Piece]:
    """The chunks of `text`, numbered from 0 in reading order."""
    if budget < 10 or not 0 <= overlap < budget:
        raise ValueError(f"budget must be 10 or more and overlap 0 to budget-1, got {budget}, {overlap}")
    pieces: list[Piece] = []
    for section in sections(text):
        parts = [part for paragraph in section.paragraphs for part in _fit(paragraph, budget)]
        for chunk in _pack(parts, budget, overlap):
            pieces.append(Piece(len(pieces), section.heading, chunk, count_tokens(chunk)))
    return pieces
