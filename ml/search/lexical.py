"""Lexical search: BM25 (Lucene variant, via bm25s) over documents with string ids, metadata and filters.

bm25s builds a static index, so adding or deleting documents only marks the index stale and the next
search rebuilds it from the stored tokens. A rebuild is linear in the corpus (well under a second for tens of
thousands of short documents), which suits the knowledge bases here; a corpus with millions of documents would
want a segmented index instead. Only documents that share at least one token with the query are returned.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml.artifacts import ArtifactMeta, write_meta
from ml.errors import ArtifactError, InvalidInput
from ml.search.common import (
    Filter,
    Hit,
    Metadata,
    check_ids,
    check_k,
    check_metadata,
    checksums,
    compile_filter,
    open_artifact,
    read_json,
    write_json,
)
from ml.text import clean_text, clean_texts

KIND = "lexical-index"
DOCS_FILE = "documents.json"
# Runs of letters or digits in any script; underscores and punctuation split words.
_WORD = re.compile(r"[^\W_]+")


def english_stopwords() -> frozenset[str]:
    """bm25s's short English stop-word list."""
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize(text: str, stopwords: frozenset[str] = frozenset()) -> list[str]:
    """Lower-cased (case-folded, NFKC) words of `text`, digits kept, `stopwords` dropped."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [word for word in _WORD.findall(folded) if word not in stopwords]


class BM25Index:
    """A BM25 index with add and delete by id; the bm25s index is rebuilt lazily on the next search."""

    def __init__(self, *, k1: float = 1.5, b: float = 0.75, stopwords: bool | Iterable[str] = False) -> None:
        if k1 < 0 or not 0 <= b <= 1:
            raise InvalidInput(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.k1 = k1
        self.b = b
        if stopwords is True:
            self.stopwords = english_stopwords()
        elif stopwords is False:
            self.stopwords = frozenset()
        else:
            self.stopwords = frozenset(w.casefold() for w in stopwords)
        self._tokens: dict[str, list[str]] = {}
        self._meta: dict[str, Metadata] = {}
        self._bm25: Any = None
        self._order: list[str] = []

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._tokens

    @property
    def stale(self) -> bool:
        """Whether the next search has to rebuild the bm25s index first."""
        return self._bm25 is None and bool(self._tokens)

    def add(
        self, ids: Sequence[str], texts: Sequence[object], metadata: Sequence[Mapping[str, Any]] | None = None
    ) -> None:
        """Add documents; an id already present is replaced."""
        ids = check_ids(ids)
        cleaned = clean_texts(texts)
        if len(cleaned) != len(ids):
            raise InvalidInput(f"got {len(ids)} ids but {len(cleaned)} texts")
        metas = check_metadata(metadata, len(ids))
        for doc_id, text, meta in zip(ids, cleaned, metas, strict=True):
            self._tokens.pop(doc_id, None)  # a replaced document moves to the end, like a new one
            self._tokens[doc_id] = tokenize(text, self.stopwords)
            self._meta[doc_id] = meta
        if ids:
            self._bm25 = None

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id; unknown ids are ignored. Returns how many were removed."""
        gone = [i for i in check_ids(ids) if i in self._tokens]
        for doc_id in gone:
            del self._tokens[doc_id], self._meta[doc_id]
        if gone:
            self._bm25 = None
        return len(gone)

    def _index(self) -> Any:
        if self._bm25 is None:
            import bm25s

            model = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
            self._order = list(self._tokens)
            model.index([self._tokens[i] for i in self._order], show_progress=False)
            self._bm25 = model
        return self._bm25

    def search(self, query: object, k: int, filter: Filter | None = None) -> list[Hit]:
        """Up to k documents sharing words with `query`, best BM25 score first.

        With `filter` (a predicate over metadata, or a dict of required metadata values) only documents that
        pass are considered, so a filtered search still returns up to k of them and never one that fails.
        """
        k = check_k(k)
        words = tokenize(clean_text(query), self.stopwords)
        predicate = compile_filter(filter)
        if not self._tokens or not words:
            return []
        model = self._index()
        token_ids = model.get_tokens_ids(words)
        if not token_ids:
            return []
        scores = np.asarray(model.get_scores_from_ids(token_ids), dtype=np.float64)
        candidates = np.flatnonzero(scores > 0)
        if predicate is not None:
            candidates = np.array(
                [i for i in candidates.tolist() if predicate(self._meta[self._order[i]])], dtype=np.int64
            )
        # Best score first; ties go to the document added first, so results are deterministic.
        ranked = candidates[np.lexsort((candidates, -scores[candidates]))[:k]].tolist()
        return [Hit(self._order[i], float(scores[i]), dict(self._meta[self._order[i]])) for i in ranked]

    def save(self, directory: Path | str, *, task: str = KIND) -> Path:
        """Write the documents' tokens and metadata into `directory`; meta.json is written last."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        docs = [[doc_id, tokens, self._meta[doc_id]] for doc_id, tokens in self._tokens.items()]
        write_json(path / DOCS_FILE, {"documents": docs})
        write_meta(
            path,
            ArtifactMeta(
                task=task,
                kind=KIND,
                base_model="bm25",
                data=checksums(path, [DOCS_FILE]),
                hyperparameters={
                    "k1": self.k1,
                    "b": self.b,
                    "method": "lucene",
                    "stopwords": sorted(self.stopwords),
                },
                metrics={"size": len(self)},
            ),
        )
        return path

    @classmethod
    def load(cls, directory: Path | str) -> BM25Index:
        """Load a saved index (rebuilt on first search); a bad directory raises ArtifactError naming it."""
        path, meta = open_artifact(directory, KIND)
        raw = read_json(path / DOCS_FILE)
        try:
            hp = meta.hyperparameters
            index = cls(k1=float(hp["k1"]), b=float(hp["b"]), stopwords=[str(w) for w in hp["stopwords"]])
            for doc_id, tokens, doc_meta in raw["documents"]:
                index._tokens[str(doc_id)] = [str(t) for t in tokens]
                index._meta[str(doc_id)] = dict(doc_meta)
        except (KeyError, TypeError, ValueError, InvalidInput) as exc:
            raise ArtifactError(f"{path} holds a malformed lexical index: {exc}") from None
        return index
