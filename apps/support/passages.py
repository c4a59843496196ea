"""What a knowledge-base passage looks like in its index: its id, its text and its metadata (pure).

Retrieval reads hits back by these rules, so they live in one place: the text indexed for a passage is
"<document title>\\n<heading path>\\n<text>" and its metadata exactly
{"document", "kb", "visibility", "kind", "title", "heading"}. A curated answer is a passage of kind "qa"
whose heading is its question and whose text is its answer.
"""

from __future__ import annotations

from typing import Any, Literal

PASSAGE, QA = "passage", "qa"
Kind = Literal["passage", "qa"]


def chunk_index_id(document_id: int, version: int, position: int) -> str:
    return f"chunk-{document_id}-v{version}-{position}"


def qa_index_id(document_id: int, version: int, position: int) -> str:
    return f"qa-{document_id}-v{version}-{position}"


def passage_text(*, title: str, heading: str, text: str) -> str:
    return f"{title}\n{heading}\n{text}"


def passage_metadata(
    *, document: int, kb: int, visibility: str, kind: Kind | str, title: str, heading: str
) -> dict[str, Any]:
    if kind not in (PASSAGE, QA):
        raise ValueError(f"a passage's kind is {PASSAGE!r} or {QA!r}, got {kind!r}")
    return {
        "document": int(document),
        "kb": int(kb),
        "visibility": visibility,
        "kind": kind,
        "title": title,
        "heading": heading,
    }
