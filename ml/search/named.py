"""Named, versioned hybrid indexes in the model store: the handles `ml.api.index_*` gives apps.

An index named `faq` is saved as `MODEL_STORE/indexes/faq/<version>/`, one new directory per save (a version is
the UTC time stamp `ml.artifacts.new_version_dir` gives it), with meta.json written last: a directory without
one is an unfinished save and is never listed or loaded. A saved version never changes; a handle opened on one
searches the copy every caller in the process shares and takes a private copy on its first write.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.artifacts import ArtifactMeta, new_version_dir, read_meta
from ml.errors import ArtifactError, InvalidInput
from ml.search.common import Filter
from ml.search.hybrid import KIND, HybridHit, HybridSearcher

INDEX_ROOT = "indexes"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_VERSION = re.compile(r"[0-9]{8}T[0-9]{12}")  # new_version_dir's %Y%m%dT%H%M%S%f


@dataclass(frozen=True)
class IndexVersion:
    """One saved version of a named index."""

    name: str
    version: str
    path: Path
    size: int
    embed_backend: str
    embed_model: str
    created_at: str = ""


def check_name(name: object) -> str:
    """`name` if it is 1-64 letters, digits, '-' or '_'; anything else raises InvalidInput."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(f"an index name is 1-64 letters, digits, '-' or '_', got {name!r}")
    return name


def index_root(store: Path, name: str) -> Path:
    return Path(store) / INDEX_ROOT / check_name(name)


def _describe(name: str, path: Path, meta: ArtifactMeta) -> IndexVersion:
    hp = meta.hyperparameters
    return IndexVersion(
        name=name,
        version=path.name,
        path=path,
        size=int(meta.metrics.get("size", 0)),
        embed_backend=str(hp.get("embed_backend", "")),
        embed_model=str(hp.get("embed_model", meta.base_model)),
        created_at=meta.created_at,
    )


def list_versions(store: Path, name: str) -> list[IndexVersion]:
    """The complete saved versions of `name`, oldest first (none saved: an empty list)."""
    root = index_root(store, name)
    if not root.is_dir():
        return []
    found = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and _VERSION.fullmatch(p.name)):
        try:
            meta = read_meta(path)
        except ArtifactError:  # an unfinished or broken save is not a version
            continue
        if meta.kind == KIND:
            found.append(_describe(name, path, meta))
    return found


def find_version(store: Path, name: str, version: str | None) -> IndexVersion:
    """The saved `version` of `name` (None: the latest); a bad version string is InvalidInput, a missing one
    ArtifactError."""
    if version is None:
        versions = list_versions(store, name)
        if not versions:
            raise ArtifactError(f"no saved version of index {name!r} under {index_root(store, name)}")
        return versions[-1]
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise InvalidInput(f"an index version looks like 20240501T120000123456, got {version!r}")
    path = index_root(store, name) / version
    meta = read_meta(path)  # ArtifactError naming the path when it is missing or incomplete
    if meta.kind != KIND:
        raise ArtifactError(f"{path} holds a {meta.kind!r} artifact, not a {KIND!r}")
    return _describe(name, path, meta)


class HybridIndex:
    """A named hybrid (dense + BM25) index: add, delete and search documents, then save a new version.

    Not safe for concurrent writers; concurrent searches are fine.
    """

    def __init__(
        self,
        name: str,
        searcher: HybridSearcher,
        *,
        embed_backend: str,
        embed_model: str,
        version: IndexVersion | None = None,
        shared: bool = False,
    ) -> None:
        self.name = check_name(name)
        self.embed_backend = embed_backend
        self.embed_model = embed_model
        self._searcher = searcher
        self._version = version
        self._shared = shared  # the searcher is the process-wide cached copy of a saved version

    @property
    def version(self) -> str | None:
        """The saved version this handle holds (None before the first save, or after changes since)."""
        return self._version.version if self._version is not None else None

    @property
    def fusion(self) -> str:
        return self._searcher.fusion

    def __len__(self) -> int:
        return len(self._searcher)

    def __repr__(self) -> str:
        return f"<HybridIndex {self.name} version={self.version} size={len(self)}>"

    def add(
        self, ids: Sequence[str], texts: Sequence[object], metadata: Sequence[Mapping[str, Any]] | None = None
    ) -> None:
        """Embed and index documents (an id already present is replaced); `metadata` is one JSON-safe dict
        per document, returned with its hits and matched by filters."""
        self._own().add(ids, texts, metadata)

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents by id (unknown ids are ignored); returns how many were removed."""
        return self._own().delete(ids)

    def search(self, query: object, k: int = 10, filter: Filter | None = None) -> list[HybridHit]:
        """The k best documents for `query`, fused from dense and BM25 rank; `filter` is a dict of metadata
        values every hit must have, or a predicate over a hit's metadata."""
        return self._searcher.search(query, k, filter)

    def _own(self) -> HybridSearcher:
        """The searcher, made private first if it is the shared copy of a saved version (copy on write)."""
        if self._shared and self._version is not None:
            self._searcher = HybridSearcher.load(self._version.path, self._searcher.embedder)
            self._shared = False
        self._version = None  # changed since it was saved
        return self._searcher

    def save_to(self, store: Path) -> IndexVersion:
        """Save as a new version under `store` (see `ml.api.index_save`)."""
        path = new_version_dir(Path(store) / INDEX_ROOT, self.name)
        self._searcher.save(
            path,
            task=self.name,
            extra={"embed_backend": self.embed_backend, "embed_model": self.embed_model},
        )
        self._version = _describe(self.name, path, read_meta(path))
        return self._version
