"""Dense vector search with FAISS: exact below a size, HNSW above it; ids, deletes, filters, persistence.

Vectors are L2-normalised on the way in and compared by inner product, so scores are cosine similarities.
Each item gets an internal int64 key from a counter (keys only grow, so a re-added id never reuses an old
key); FAISS holds the keys through `IndexIDMap2`. An exact index (`IndexFlatIP`) deletes in place; HNSW cannot
remove nodes, so deleted keys become tombstones that every search excludes, and the graph is rebuilt once
tombstones pass `compact_fraction` of it. Rebuilds also switch between exact and HNSW as the live size crosses
`exact_threshold`.

Filtered searches return exactly min(k, matching live items) results and never a filtered-out or deleted
item: the filter becomes a FAISS ID selector (FAISS skips excluded items while it searches). An exact index
is exact under any filter. On HNSW a filter that leaves few items (at most `exact_threshold`) is answered by
exact search over those items, a broader one by HNSW with `efSearch` widened until enough come back, and exact
search over the allowed items finishes any query that HNSW still leaves short.

Not safe for concurrent writers; concurrent searches on an unchanging index are fine.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.artifacts import ArtifactMeta, write_meta
from ml.config import load_config
from ml.errors import ArtifactError, InvalidInput
from ml.search.common import (
    Filter,
    Hit,
    Metadata,
    as_unit_matrix,
    check_ids,
    check_k,
    check_metadata,
    checksums,
    compile_filter,
    open_artifact,
    read_json,
    write_json,
)

KIND = "vector-index"
INDEX_FILE = "index.faiss"
ITEMS_FILE = "items.json"
# Up to this many live vectors search is exact. benchmarks/bench_search.py (MiniLM vectors, 2 shared cores,
# two runs): exact answered one query in 0.42-0.44 ms (p50) at 10k vectors, 1.7-2.0 ms at 20k and 11-26 ms at
# 100k; HNSW (ef 64) was faster from 5k on but gains little below 10k, where exact keeps perfect recall and
# deletes in place.
DEFAULT_EXACT_THRESHOLD = 10_000
# Smaller batches search on one thread: waking OpenMP workers for one query costs more than it saves, and on a
# busy machine it cost 20 ms per search (benchmarks/bench_search.py).
PARALLEL_FROM = 16


@dataclass(frozen=True)
class HNSWParams:
    """HNSW graph settings: neighbours per node, build-time and default search-time beam widths."""

    m: int = 32
    ef_construction: int = 100
    ef_search: int = 64


def _faiss() -> Any:
    import faiss

    return faiss


@contextmanager
def _omp_threads(n: int) -> Iterator[None]:
    """Run FAISS on `n` OpenMP threads inside the block (0: leave as is; ML_THREADS gives the batch setting).

    OpenMP keeps the setting per calling thread, so concurrent searches in other threads are not affected.
    """
    faiss = _faiss()
    before = faiss.omp_get_max_threads()
    if n <= 0 or n == before:
        yield
        return
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _cache_key(where: Filter | None) -> object:
    """A hashable key for a dict filter (or for no filter); None for a callable, whose answers may change."""
    if where is None:
        return ()
    if not isinstance(where, Mapping):
        return None
    try:
        key = tuple(sorted(where.items()))
        hash(key)
    except TypeError:
        return None
    return key


def _bitmap(keys: np.ndarray) -> np.ndarray:
    """A little-endian bitmap with the bits of `keys` set, as FAISS's IDSelectorBitmap reads it."""
    size = int(keys.max()) + 1 if len(keys) else 1
    mask = np.zeros(size, dtype=bool)
    mask[keys] = True
    return np.packbits(mask, bitorder="little")


class VectorIndex:
    """A FAISS index over L2-normalised float32 vectors with string ids, metadata, deletes and filters."""

    backend = "faiss"

    def __init__(
        self,
        dimension: int,
        *,
        exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
        hnsw: HNSWParams | None = None,
        compact_fraction: float = 0.25,
        model: str = "",
    ) -> None:
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension <= 0:
            raise InvalidInput(f"dimension must be a positive integer, got {dimension!r}")
        if exact_threshold < 0 or not 0 < compact_fraction <= 1:
            raise InvalidInput("exact_threshold must be >= 0 and compact_fraction in (0, 1]")
        self.dimension = dimension
        self.exact_threshold = exact_threshold
        self.hnsw = hnsw or HNSWParams()
        self.compact_fraction = compact_fraction
        self.model = model  # the embedding model the vectors come from, recorded in meta.json
        self.ef_search = self.hnsw.ef_search
        self._key_of: dict[str, int] = {}
        self._id_of: dict[int, str] = {}
        self._meta: dict[int, Metadata] = {}
        self._dead: set[int] = set()
        self._next_key = 0
        # Allowed keys of recent dict filters, and on HNSW the vectors of small allowed sets; writes clear both.
        self._allowed_cache: dict[object, np.ndarray] = {}
        self._subset_cache: dict[object, np.ndarray] = {}
        self._is_hnsw = False
        self._index = self._new_index(hnsw=False)

    # ----- inspection
    @property
    def kind(self) -> str:
        """'hnsw' or 'exact'."""
        return "hnsw" if self._is_hnsw else "exact"

    def __len__(self) -> int:
        return len(self._key_of)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._key_of

    def metadata(self, item_id: str) -> Metadata:
        """A copy of the metadata stored with `item_id`."""
        try:
            return dict(self._meta[self._key_of[item_id]])
        except KeyError:
            raise InvalidInput(f"no item with id {item_id!r}") from None

    @property
    def tombstones(self) -> int:
        """Deleted items still in the HNSW graph (excluded from every search until the next compaction)."""
        return len(self._dead)

    # ----- writes
    def add(
        self,
        ids: Sequence[str],
        vectors: object,
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Add items; an id already present is replaced (its old vector and metadata are dropped)."""
        ids = check_ids(ids)
        x = as_unit_matrix(vectors, self.dimension, "vectors")
        if len(x) != len(ids):
            raise InvalidInput(f"got {len(ids)} ids but {len(x)} vectors")
        metas = check_metadata(metadata, len(ids))
        if not ids:
            return
        self._forget([self._key_of[i] for i in ids if i in self._key_of])
        self._changed()
        keys = np.arange(self._next_key, self._next_key + len(ids), dtype=np.int64)
        self._next_key += len(ids)
        for key, item_id, meta in zip(keys.tolist(), ids, metas, strict=True):
            self._key_of[item_id] = key
            self._id_of[key] = item_id
            self._meta[key] = meta
        with _omp_threads(load_config().threads):
            if not self._is_hnsw and len(self) > self.exact_threshold:
                old_keys, old_x = self._stored()
                self._rebuild(np.concatenate([old_keys, keys]), np.concatenate([old_x, x]))
            else:
                self._index.add_with_ids(x, keys)
            self._maybe_compact()

    def delete(self, ids: Sequence[str]) -> int:
        """Remove items by id without a rebuild; unknown ids are ignored. Returns how many were removed."""
        keys = [self._key_of[i] for i in check_ids(ids) if i in self._key_of]
        self._forget(keys)
        with _omp_threads(load_config().threads):
            self._maybe_compact()
        return len(keys)

    def compact(self) -> None:
        """Rebuild from the live items: drops tombstones and picks exact or HNSW by the live size."""
        keys, x = self._stored()
        self._rebuild(keys, x)

    def _changed(self) -> None:
        self._allowed_cache.clear()
        self._subset_cache.clear()

    def _forget(self, keys: list[int]) -> None:
        if not keys:
            return
        self._changed()
        for key in keys:
            del self._key_of[self._id_of.pop(key)]
            del self._meta[key]
        if self._is_hnsw:
            self._dead.update(keys)
        else:
            self._index.remove_ids(np.asarray(keys, dtype=np.int64))

    def _maybe_compact(self) -> None:
        if self._dead and len(self._dead) > self.compact_fraction * self._index.ntotal:
            self.compact()

    def _stored(self) -> tuple[np.ndarray, np.ndarray]:
        """Keys and vectors of the live items, in key order."""
        faiss = _faiss()
        keys = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        if not len(keys):
            return keys, np.zeros((0, self.dimension), dtype=np.float32)
        x = self._index.index.reconstruct_n(0, len(keys))
        live = np.fromiter((k not in self._dead for k in keys.tolist()), dtype=bool, count=len(keys))
        order = np.argsort(keys[live], kind="stable")
        return keys[live][order], x[live][order]

    def _rebuild(self, keys: np.ndarray, x: np.ndarray) -> None:
        hnsw = len(keys) > self.exact_threshold
        index = self._new_index(hnsw=hnsw)
        if len(keys):
            order = np.argsort(keys, kind="stable")  # HNSW positions follow key order (see _positions)
            index.add_with_ids(np.ascontiguousarray(x[order]), np.ascontiguousarray(keys[order]))
        self._index, self._is_hnsw, self._dead = index, hnsw, set()
        self._changed()

    def _new_index(self, *, hnsw: bool) -> Any:
        faiss = _faiss()
        if hnsw:
            inner = faiss.IndexHNSWFlat(self.dimension, self.hnsw.m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.hnsw.ef_construction
            inner.hnsw.efSearch = self.hnsw.ef_search
        else:
            inner = faiss.IndexFlatIP(self.dimension)
        return faiss.IndexIDMap2(inner)

    # ----- search
    def search(self, queries: object, k: int, filter: Filter | None = None) -> list[list[Hit]]:
        """The k most similar live items for each query row (a 1-d query counts as one row), best first.

        With `filter` (a predicate over metadata, or a dict of required metadata values) each list holds
        exactly min(k, number of live items that pass) hits, and none that fails it.
        """
        q = as_unit_matrix(queries, self.dimension, "queries")
        k = check_k(k)
        allowed, cache_key = self._allowed(filter)
        count = len(self) if allowed is None else len(allowed)
        target = min(k, count)
        if target == 0:
            return [[] for _ in range(len(q))]
        with _omp_threads(1 if len(q) < PARALLEL_FROM else load_config().threads):
            scores, keys = self._search_allowed(q, target, allowed, cache_key)
        return [self._hits(s, ks) for s, ks in zip(scores, keys, strict=True)]

    def _search_allowed(
        self, q: np.ndarray, target: int, allowed: np.ndarray | None, cache_key: object
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores and keys of the `target` best allowed items per query; every row comes back full."""
        if allowed is None:
            scores, keys = self._search(q, target, None, self.ef_search)
            if (keys[:, target - 1] < 0).any():  # a rare unreachable corner of the graph
                allowed = np.fromiter(self._id_of, dtype=np.int64, count=len(self))
        elif not self._is_hnsw:
            scores, keys = self._search(q, target, allowed, 0)
        elif len(allowed) <= self.exact_threshold:
            scores, keys = self._exact_subset(q, target, allowed, cache_key)
        else:
            scores, keys = self._widening_search(q, target, allowed)
        if allowed is not None:
            short = np.flatnonzero(keys[:, target - 1] < 0)
            if len(short):
                scores[short], keys[short] = self._exact_subset(q[short], target, allowed, None)
        return scores, keys

    def _allowed(self, where: Filter | None) -> tuple[np.ndarray | None, object]:
        """Keys a search may return (None when every key in the FAISS index is live and allowed), cache key."""
        if where is None and not self._dead:
            return None, None
        cache_key = _cache_key(where)
        if cache_key is not None and cache_key in self._allowed_cache:
            return self._allowed_cache[cache_key], cache_key
        predicate = compile_filter(where)
        if predicate is None:
            allowed = np.fromiter(self._id_of, dtype=np.int64, count=len(self))
        else:
            allowed = np.fromiter((k for k, m in self._meta.items() if predicate(m)), dtype=np.int64)
        if cache_key is not None:
            if len(self._allowed_cache) >= 16:
                self._allowed_cache.pop(next(iter(self._allowed_cache)))
            self._allowed_cache[cache_key] = allowed
        return allowed, cache_key

    def _search(
        self, q: np.ndarray, k: int, allowed: np.ndarray | None, ef: int
    ) -> tuple[np.ndarray, np.ndarray]:
        faiss = _faiss()
        bitmap = _bitmap(allowed) if allowed is not None else None
        selector = faiss.IDSelectorBitmap(bitmap) if bitmap is not None else None
        if self._is_hnsw:
            params = faiss.SearchParametersHNSW(efSearch=max(ef, k))
            if selector is not None:
                params.sel = selector
        else:
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
        scores, keys = self._index.search(q, k, params=params)
        return scores, keys

    def _widening_search(self, q: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """HNSW restricted to `allowed`; efSearch grows fourfold (twice at most) for queries left short.

        The first efSearch is scaled by the share of items allowed (up to 8 times): FAISS skips the others
        while it walks the graph, so a narrower filter needs a wider beam to find as many good items.
        """
        share = len(allowed) / max(1, self._index.ntotal)
        ef = int(min(self.ef_search / max(share, 1e-9), 8 * self.ef_search))
        scores, keys = self._search(q, k, allowed, ef)
        for _ in range(2):
            short = np.flatnonzero(keys[:, k - 1] < 0)
            if not len(short):
                break
            ef *= 4
            scores[short], keys[short] = self._search(q[short], k, allowed, ef)
        return scores, keys

    def _exact_subset(
        self, q: np.ndarray, k: int, allowed: np.ndarray, cache_key: object
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact search over the allowed items only."""
        faiss = _faiss()
        if not self._is_hnsw:
            return self._search(q, k, allowed, 0)
        if cache_key is not None:
            # A repeated dict filter: search a gathered copy of its vectors (a scan of the whole storage
            # with a selector took 12 ms at 100k vectors; the gathered 10k took 0.2 ms).
            vectors = self._subset_cache.get(cache_key)
            if vectors is None:
                vectors = self._storage().reconstruct_batch(self._positions(allowed))
                if len(self._subset_cache) >= 4:
                    self._subset_cache.pop(next(iter(self._subset_cache)))
                self._subset_cache[cache_key] = vectors
            scores, found = faiss.knn(q, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
            return scores, np.where(found >= 0, allowed[np.maximum(found, 0)], -1)
        bitmap = _bitmap(self._positions(allowed))
        selector = faiss.IDSelectorBitmap(bitmap)  # bitmap and selector must outlive the search call
        scores, found = self._storage().search(q, k, params=faiss.SearchParameters(sel=selector))
        id_map = faiss.vector_to_array(self._index.id_map)
        return scores, np.where(found >= 0, id_map[np.maximum(found, 0)], -1)

    def _storage(self) -> Any:
        """The flat index holding an HNSW graph's vectors, by position."""
        faiss = _faiss()
        return faiss.downcast_index(faiss.downcast_index(self._index.index).storage)

    def _positions(self, keys: np.ndarray) -> np.ndarray:
        """Storage positions of `keys` on HNSW.

        Positions follow key order (keys only grow and rebuilds add in key order), so a key's position is its
        rank in the id map.
        """
        id_map = _faiss().vector_to_array(self._index.id_map)
        return np.searchsorted(id_map, keys).astype(np.int64)

    def _hits(self, scores: np.ndarray, keys: np.ndarray) -> list[Hit]:
        return [
            Hit(self._id_of[key], float(score), dict(self._meta[key]))
            for score, key in zip(scores.tolist(), keys.tolist(), strict=True)
            if key >= 0
        ]

    # ----- persistence
    def save(self, directory: Path | str, *, task: str = KIND) -> Path:
        """Write the index into `directory` (a model-store version directory); meta.json is written last."""
        faiss = _faiss()
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._index, str(path / INDEX_FILE))
        items = [[key, self._id_of[key], self._meta[key]] for key in sorted(self._id_of)]
        write_json(
            path / ITEMS_FILE,
            {"next_key": self._next_key, "dead": sorted(self._dead), "items": items},
        )
        write_meta(
            path,
            ArtifactMeta(
                task=task,
                kind=KIND,
                base_model=self.model,
                data=checksums(path, [INDEX_FILE, ITEMS_FILE]),
                hyperparameters={
                    "dimension": self.dimension,
                    "index": self.kind,
                    "exact_threshold": self.exact_threshold,
                    "compact_fraction": self.compact_fraction,
                    "ef_search": self.ef_search,
                    "hnsw": asdict(self.hnsw),
                },
                metrics={"size": len(self), "tombstones": len(self._dead)},
            ),
        )
        return path

    @classmethod
    def load(cls, directory: Path | str) -> VectorIndex:
        """Load a saved index; a missing, incomplete or corrupt directory raises ArtifactError naming it."""
        path, meta = open_artifact(directory, KIND)
        try:
            hp = meta.hyperparameters
            index = cls(
                int(hp["dimension"]),
                exact_threshold=int(hp["exact_threshold"]),
                hnsw=HNSWParams(**hp["hnsw"]),
                compact_fraction=float(hp["compact_fraction"]),
                model=meta.base_model,
            )
            index.ef_search = int(hp["ef_search"])
            is_hnsw = hp["index"] == "hnsw"
        except (KeyError, TypeError, ValueError, InvalidInput) as exc:
            raise ArtifactError(f"{path / 'meta.json'} has bad hyperparameters: {exc}") from None
        index._restore(path, is_hnsw)
        return index

    def _restore(self, path: Path, is_hnsw: bool) -> None:
        faiss = _faiss()
        try:
            self._index = faiss.read_index(str(path / INDEX_FILE))
        except RuntimeError as exc:
            raise ArtifactError(f"{path / INDEX_FILE} is not a FAISS index: {exc}") from None
        raw = read_json(path / ITEMS_FILE)
        try:
            for key, item_id, meta in raw["items"]:
                self._key_of[str(item_id)] = int(key)
                self._id_of[int(key)] = str(item_id)
                self._meta[int(key)] = dict(meta)
            self._dead = {int(k) for k in raw["dead"]}
            self._next_key = int(raw["next_key"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{path / ITEMS_FILE} is malformed: {exc}") from None
        self._is_hnsw = is_hnsw
        if self._index.d != self.dimension or self._index.ntotal != len(self) + len(self._dead):
            raise ArtifactError(f"{path / INDEX_FILE} does not match {path / ITEMS_FILE}")
