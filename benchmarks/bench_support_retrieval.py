"""Support retrieval benchmark: `apps.support.retrieval.retrieve` latency over a large synthetic knowledge base.

Chunks are SYNTHETIC, stated as such: texts of 24 words drawn (Zipf) from a made-up 30,000-word vocabulary,
20 chunks per document, 90 % public; vectors are random unit vectors around 2,000 cluster centres (384-d,
MiniLM's size), so dense search is not trivially easy. They are not embedded: the query's vector is a noisy
copy of a chunk's, and the MiniLM query embedding (one short text, a constant cost whatever the index size) is
left out. Queries are six words of a chunk's text.

Measured: the whole `retrieve` (dense + BM25 search, re-fusion, grouping by document) with public_only=True (the
widget's path, a metadata filter) and False, on the production setup (FAISS HNSW, as `ml.api` picks above 10k
vectors) against a brute-force baseline in the same run (exact numpy search over every vector, the same BM25),
as p50/p95 milliseconds and their ratio, and top-10 document overlap with the baseline. 1M chunks need about
8 GB and, on 2 cores, most of a benchmark's time in the HNSW build; the result says which sizes were run and
extrapolates to 1M from the largest (the BM25 and brute-force sides grow linearly, HNSW about with log n).

Run: `.venv/bin/python -m benchmarks.bench_support_retrieval [--quick] [--size N]` prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from apps.support.retrieval import passage_metadata, retrieve
from ml.search.exact import NumpyVectorIndex
from ml.search.hybrid import HybridSearcher
from ml.search.lexical import BM25Index
from ml.search.vector import VectorIndex

DIM = 384
WORDS_PER_CHUNK = 24
CHUNKS_PER_DOC = 20
VOCABULARY = 30_000
CLUSTERS = 2_000
PUBLIC_SHARE = 0.9
QUERY_NOISE = 0.6  # per-vector noise norm before renormalising: cosine to the source chunk about 0.85
SEED = 0
K = 10
BATCH = 50_000


class _QueryVectors:
    """An embedder that answers each benchmark query with its prepared vector (nothing is embedded)."""

    name, dimension = "synthetic", DIM

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _chunks(rng: np.random.Generator, start: int, n: int, centres: np.ndarray) -> tuple[Any, ...]:
    words = rng.zipf(1.3, size=(n, WORDS_PER_CHUNK)) % VOCABULARY
    texts = [" ".join(f"w{w}" for w in row) for row in words.tolist()]
    vectors = _unit(centres[rng.integers(0, CLUSTERS, n)] + rng.normal(0, 0.05, (n, DIM)).astype(np.float32))
    ids = [f"c{i}" for i in range(start, start + n)]
    public = rng.random(n) < PUBLIC_SHARE
    metas = [
        passage_metadata(
            document=i // CHUNKS_PER_DOC,
            kb=1,
            visibility="public" if p else "internal",
            kind="passage",
            title=f"doc {i // CHUNKS_PER_DOC}",
            heading="",
        )
        for i, p in zip(range(start, start + n), public.tolist(), strict=True)
    ]
    return ids, texts, vectors, metas


def _build(size: int) -> tuple[VectorIndex, NumpyVectorIndex, BM25Index, list[tuple[str, np.ndarray]], float]:
    rng = np.random.default_rng(SEED)
    centres = _unit(rng.standard_normal((CLUSTERS, DIM)).astype(np.float32))
    hnsw, brute, lexical = VectorIndex(DIM), NumpyVectorIndex(DIM), BM25Index()
    queries: list[tuple[str, np.ndarray]] = []
    build_s = 0.0
    for start in range(0, size, BATCH):
        ids, texts, vectors, metas = _chunks(rng, start, min(BATCH, size - start), centres)
        t0 = time.perf_counter()
        hnsw.add(ids, vectors, metas)
        build_s += time.perf_counter() - t0
        brute.add(ids, vectors, metas)
        lexical.add(ids, texts, metas)
        for j in rng.integers(0, len(ids), 4).tolist():
            noisy = vectors[j] + rng.normal(0, QUERY_NOISE / np.sqrt(DIM), DIM).astype(np.float32)
            queries.append((" ".join(texts[j].split()[:6]), noisy / np.linalg.norm(noisy)))
    return hnsw, brute, lexical, queries, build_s


def _latency(
    searcher: HybridSearcher, queries: list[str], public_only: bool
) -> tuple[dict[str, float], list[list[int]]]:
    for q in queries[:3]:
        retrieve(searcher, q, public_only=public_only, k=K)  # warm-up (BM25 builds on its first search)
    times, ranked = [], []
    for q in queries:
        t0 = time.perf_counter_ns()
        docs = retrieve(searcher, q, public_only=public_only, k=K)
        times.append((time.perf_counter_ns() - t0) / 1e6)
        ranked.append([d.document for d in docs])
    return {
        "p50_ms": round(float(np.percentile(times, 50)), 2),
        "p95_ms": round(float(np.percentile(times, 95)), 2),
    }, ranked


def _overlap(found: list[list[int]], truth: list[list[int]]) -> float:
    shares = [len(set(f) & set(t)) / max(1, len(t)) for f, t in zip(found, truth, strict=True)]
    return round(float(np.mean(shares)), 4)


def measure(size: int, n_queries: int) -> dict[str, Any]:
    hnsw, brute, lexical, prepared, build_s = _build(size)
    embedder = _QueryVectors()
    rng = np.random.default_rng(SEED + 1)
    picked = [prepared[i] for i in rng.choice(len(prepared), min(n_queries, len(prepared)), replace=False)]
    embedder.vectors = dict(picked)
    queries = [text for text, _ in picked]
    row: dict[str, Any] = {
        "chunks": size,
        "documents": size // CHUNKS_PER_DOC,
        "hnsw_build_s": round(build_s, 1),
    }
    for public_only in (True, False):
        fast, found = _latency(HybridSearcher(embedder, hnsw, lexical), queries, public_only)
        slow, truth = _latency(HybridSearcher(embedder, brute, lexical), queries, public_only)
        row["public_only" if public_only else "all_passages"] = {
            "hnsw": fast,
            "brute_force": slow,
            "p50_speedup": round(slow["p50_ms"] / fast["p50_ms"], 2),
            "top10_document_overlap": _overlap(found, truth),
        }
    return row


def _peak_rss_gb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)  # Linux: kilobytes


def run(quick: bool = False, size: int | None = None) -> dict[str, Any]:
    """Latency of retrieve() at each size; `quick` runs small sizes for a smoke run."""
    sizes = [size] if size else ([20_000, 50_000] if quick else [100_000, 300_000])
    rows = [measure(s, 30 if quick else 100) for s in sizes]
    largest = rows[-1]
    factor = 1_000_000 / largest["chunks"]
    return {
        "chunks": "synthetic (Zipf words of a made-up vocabulary, clustered random 384-d vectors), not embedded",
        "queries": "six words of a chunk, with a noisy copy of its vector; query embedding left out",
        "by_size": rows,
        "peak_rss_gb": _peak_rss_gb(),
        "extrapolated_1m_public_only_p50_ms": {
            # brute force and BM25 scale linearly with the chunks; HNSW's dense part about with log n, but the
            # BM25 part it shares is linear too, so the linear figure is an upper bound for it
            "hnsw_upper_bound": round(largest["public_only"]["hnsw"]["p50_ms"] * factor, 1),
            "brute_force": round(largest["public_only"]["brute_force"]["p50_ms"] * factor, 1),
        }
        if factor > 1
        else None,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--size", type=int, default=None)
    args = parser.parse_args()
    print(json.dumps(run(args.quick, args.size), indent=1))
    sys.exit(0)
