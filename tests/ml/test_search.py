from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ml.errors import ArtifactError, InvalidInput
from ml.search import BM25Index, VectorIndex, reciprocal_rank_fusion, save_version, weighted_fusion
from ml.search.common import Hit
from ml.search.lexical import tokenize
from ml.search.vector import HNSWParams

DIM = 32
FAST_HNSW = HNSWParams(m=16, ef_construction=40, ef_search=64)


@pytest.fixture(autouse=True)
def one_faiss_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """ML_THREADS=1: on the shared 2-core test machine OpenMP workers waiting for a core made each build 4x slower."""
    monkeypatch.setenv("ML_THREADS", "1")


def _data_dir() -> Path:
    from django.conf import settings

    path = Path(settings.DATA_DIR)
    if not (path / "stackfaq" / "faq_answers.csv").is_file():
        pytest.skip(f"StackFAQ is not under DATA_DIR ({path})")
    return path


def _faq(n: int) -> tuple[list[str], list[str], list[str]]:
    """The first n StackFAQ answers: passage ids, thread ids and texts, cut to 200 characters to embed fast."""
    with (_data_dir() / "stackfaq" / "faq_answers.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))[:n]
    return [r["passage_id"] for r in rows], [r["thread_id"] for r in rows], [r["answer"][:200] for r in rows]


def _questions() -> dict[str, str]:
    with (_data_dir() / "stackfaq" / "faq_questions.csv").open(encoding="utf-8", newline="") as fh:
        return {r["thread_id"]: r["question"] for r in csv.DictReader(fh)}


def _random(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _filled(n: int, *, hnsw: bool, seed: int = 0) -> tuple[VectorIndex, np.ndarray]:
    # A light graph keeps the tests fast; the default parameters are what the benchmark measures.
    index = VectorIndex(DIM, exact_threshold=0 if hnsw else 1_000_000, hnsw=FAST_HNSW)
    x = _random(n, seed)
    index.add([f"d{i}" for i in range(n)], x, [{"public": i % 50 == 0, "group": i % 7} for i in range(n)])
    return index, x


def _brute_force(x: np.ndarray, query: np.ndarray, rows: list[int], k: int) -> list[str]:
    scores = x[rows] @ query
    return [f"d{rows[i]}" for i in np.argsort(-scores, kind="stable")[:k]]


# ----- vector index on real embeddings


@pytest.fixture(scope="module")
def faq_vectors(minilm_embedder):
    passage_ids, threads, texts = _faq(300)
    questions = _questions()
    asked = sorted(set(threads))
    return {
        "ids": passage_ids,
        "threads": threads,
        "texts": texts,
        "vectors": minilm_embedder.encode(texts),
        "asked": asked,
        "queries": minilm_embedder.encode([questions[t] for t in asked]),
    }


@pytest.mark.slow
def test_hnsw_agrees_with_exact_search_on_real_embeddings(faq_vectors):
    ids, vectors, queries = faq_vectors["ids"], faq_vectors["vectors"], faq_vectors["queries"]
    exact = VectorIndex(384)
    hnsw = VectorIndex(384, exact_threshold=0)
    for index in (exact, hnsw):
        index.add(ids, vectors)
    assert (exact.kind, hnsw.kind) == ("exact", "hnsw")
    truth = [[h.id for h in hits] for hits in exact.search(queries, 10)]
    found = [[h.id for h in hits] for hits in hnsw.search(queries, 10)]
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall >= 0.95


@pytest.mark.slow
def test_a_faq_question_finds_an_answer_from_its_own_thread(faq_vectors):
    index = VectorIndex(384)
    index.add(faq_vectors["ids"], faq_vectors["vectors"], [{"thread": t} for t in faq_vectors["threads"]])
    hits = index.search(faq_vectors["queries"], 5)
    hit_rate = np.mean(
        [
            any(h.metadata["thread"] == t for h in row)
            for row, t in zip(hits, faq_vectors["asked"], strict=True)
        ]
    )
    assert hit_rate >= 0.6  # paraphrase-free questions against their own answers; chance is about 0.1


@pytest.mark.slow
def test_hybrid_search_fuses_dense_and_lexical_results(faq_vectors, minilm_embedder):
    from ml.search.hybrid import HybridSearcher

    searcher = HybridSearcher(minilm_embedder)
    meta = [{"t": t} for t in faq_vectors["threads"]]
    searcher.vectors.add(faq_vectors["ids"], faq_vectors["vectors"], meta)  # embedded once for the module
    searcher.lexical.add(faq_vectors["ids"], faq_vectors["texts"], meta)
    rare = _rare_word(faq_vectors["texts"])
    owner = faq_vectors["ids"][next(i for i, t in enumerate(faq_vectors["texts"]) if rare in tokenize(t))]
    hits = searcher.search(rare, 5)  # a keyword the dense side alone may miss
    assert owner in [h.id for h in hits]
    hit = next(h for h in hits if h.id == owner)
    assert hit.lexical_rank == 1
    question = _questions()["t001"]  # "How do I delete my Facebook account?"
    top = searcher.search(question, 3, filter={"t": "t001"})
    assert top and all(h.metadata["t"] == "t001" for h in top)


@pytest.mark.slow
def test_hybrid_searcher_embeds_new_documents_and_survives_a_save(minilm_embedder, tmp_path):
    from ml.search.hybrid import HybridSearcher

    _, _, texts = _faq(40)
    searcher = HybridSearcher(minilm_embedder, fusion="weighted", weights=(0.7, 0.3))
    searcher.add([f"p{i}" for i in range(40)], texts)
    searcher.add(
        ["refund"], ["Refunds for a cancelled card payment take five working days."], [{"new": True}]
    )
    hits = searcher.search("how long until my money comes back after cancelling a card payment", 3)
    assert hits[0].id == "refund" and hits[0].dense_rank == 1
    loaded = HybridSearcher.load(searcher.save(tmp_path / "hybrid"), minilm_embedder)
    assert loaded.fusion == "weighted" and len(loaded) == 41
    query = "delete my account"
    assert loaded.search(query, 5) == searcher.search(query, 5)
    assert searcher.delete(["refund"]) == 1
    assert "refund" not in [h.id for h in searcher.search("refund cancelled card payment", 10)]


# ----- vector index on random vectors (fast)


def test_small_index_is_exact_and_switches_to_hnsw_past_the_threshold():
    index = VectorIndex(DIM, exact_threshold=100)
    x = _random(150)
    index.add([f"d{i}" for i in range(80)], x[:80])
    assert index.kind == "exact"
    index.add([f"d{i}" for i in range(80, 150)], x[80:])
    assert index.kind == "hnsw"
    assert len(index) == 150
    top = index.search(x[[3, 120]], 1)
    assert [row[0].id for row in top] == ["d3", "d120"]
    assert top[0][0].score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("hnsw", [False, True])
def test_filtered_search_returns_k_results_all_passing(hnsw):
    index, x = _filled(2000, hnsw=hnsw)
    public = [i for i in range(2000) if i % 50 == 0]  # 40 of 2000
    results = index.search(x[:20], 10, filter={"public": True})
    assert all(len(row) == 10 for row in results)
    assert all(h.metadata["public"] is True for row in results for h in row)
    if not hnsw:
        assert [h.id for h in results[7]] == _brute_force(x, x[7], public, 10)


@pytest.mark.parametrize("hnsw", [False, True])
def test_a_very_selective_filter_returns_every_match_and_nothing_else(hnsw):
    index, x = _filled(2000, hnsw=hnsw)
    assert index.search(x[:4], 10, filter=lambda meta: False) == [[], [], [], []]
    picked = ["d5", "d777", "d1999"]
    index.add(picked, x[[5, 777, 1999]], [{"pick": True}] * 3)
    for row in index.search(x[:4], 10, filter={"pick": True}):
        assert sorted(h.id for h in row) == sorted(picked)


def test_hnsw_answers_a_narrow_filter_by_exact_search_over_the_allowed_items():
    index = VectorIndex(DIM, exact_threshold=100, hnsw=FAST_HNSW)
    x = _random(600)
    index.add([f"d{i}" for i in range(600)], x, [{"public": i % 50 == 0} for i in range(600)])
    assert index.kind == "hnsw"
    public = [i for i in range(600) if i % 50 == 0]  # 12 items, under the threshold: searched exactly
    for where in ({"public": True}, lambda meta: meta["public"]):  # a dict filter is cached, a callable not
        assert [h.id for h in index.search(x[7], 5, where)[0]] == _brute_force(x, x[7], public, 5)
    top = index.search(x[7], 1, {"public": True})[0][0].id
    index.delete([top])  # the cached allowed set must not outlive a write
    assert top not in [h.id for h in index.search(x[7], 12, {"public": True})[0]]
    assert len(index.search(x[7], 12, {"public": True})[0]) == 11


def test_hnsw_filter_above_the_subset_limit_still_fills_k():
    index, x = _filled(3000, hnsw=True)
    index.exact_threshold = 10  # forces the filtered HNSW path, widening efSearch, then exact top-up
    results = index.search(x[:10], 25, filter={"group": 3})
    assert all(len(row) == 25 for row in results)
    assert all(h.metadata["group"] == 3 for row in results for h in row)


@pytest.mark.parametrize("hnsw", [False, True])
def test_delete_removes_items_without_a_rebuild(hnsw):
    index, x = _filled(1000, hnsw=hnsw)
    before = [h.id for h in index.search(x[42], 10)[0]]
    assert before[0] == "d42"
    assert index.delete([*before[:5], "never-added"]) == 5
    after = [h.id for h in index.search(x[42], 10)[0]]
    assert len(after) == 10
    assert not set(after) & set(before[:5])
    assert after[:5] == before[5:10]
    assert len(index) == 995 and "d42" not in index
    assert index.tombstones == (5 if hnsw else 0)


def test_hnsw_compacts_once_tombstones_pass_the_fraction():
    index, x = _filled(400, hnsw=True)
    index.delete([f"d{i}" for i in range(90)])
    assert index.tombstones == 90  # 90 of 400 is under 25 %
    index.delete([f"d{i}" for i in range(90, 110)])
    assert index.tombstones == 0  # 110 of 400 passed it: rebuilt from the 290 live items
    assert index.kind == "hnsw" and len(index) == 290
    assert index.search(x[200], 1)[0][0].id == "d200"
    assert all(int(h.id[1:]) >= 110 for h in index.search(x[:50], 10)[5])


@pytest.mark.parametrize("hnsw", [False, True])
def test_re_adding_an_id_replaces_its_vector_and_metadata(hnsw):
    index, x = _filled(500, hnsw=hnsw)
    fresh = _random(1, seed=99)[0]
    index.add(["d10"], fresh[None, :], [{"public": False, "version": 2}])
    assert len(index) == 500
    top = index.search(fresh, 1)[0][0]
    assert (top.id, top.metadata["version"]) == ("d10", 2)
    old = index.search(x[10], 3)[0]
    assert all(h.id != "d10" or h.score < 0.99 for h in old)
    assert index.metadata("d10") == {"public": False, "version": 2}


@pytest.mark.parametrize("hnsw", [False, True])
def test_save_and_load_give_identical_results(hnsw, model_store):
    index, x = _filled(800, hnsw=hnsw)
    index.delete(["d1", "d2", "d3"])
    path = save_version(index, model_store, "faq-vectors")
    assert path.parent == model_store / "faq-vectors"
    meta = json.loads((path / "meta.json").read_text())
    assert meta["kind"] == "vector-index" and meta["metrics"]["size"] == 797
    loaded = VectorIndex.load(path)
    assert loaded.kind == index.kind and len(loaded) == 797
    for where in (None, {"public": True}):
        assert loaded.search(x[:30], 10, where) == index.search(x[:30], 10, where)
    loaded.add(["new"], x[1][None, :])  # keys keep counting after a load
    assert loaded.search(x[1], 1)[0][0].id == "new"


def test_loading_a_missing_or_corrupt_index_names_the_path(tmp_path):
    with pytest.raises(ArtifactError, match=str(tmp_path / "nope")):
        VectorIndex.load(tmp_path / "nope")
    index, _ = _filled(50, hnsw=False)
    path = index.save(tmp_path / "v1")
    (path / "index.faiss").write_bytes(b"not faiss")
    with pytest.raises(ArtifactError, match=str(path / "index.faiss")):
        VectorIndex.load(path)
    path = index.save(tmp_path / "v2")
    (path / "items.json").unlink()
    with pytest.raises(ArtifactError, match=str(path / "items.json")):
        VectorIndex.load(path)
    lexical = BM25Index()
    lexical.add(["a"], ["text"])
    with pytest.raises(ArtifactError, match="not a 'vector-index'"):
        VectorIndex.load(lexical.save(tmp_path / "lex"))


def test_bad_inputs_are_refused():
    index, x = _filled(20, hnsw=False)
    bad_vectors = x[:2].copy()
    bad_vectors[1, 3] = np.nan
    with pytest.raises(InvalidInput, match="shape"):
        index.add(["a"], np.ones((1, DIM + 1)))
    with pytest.raises(InvalidInput, match="NaN"):
        index.add(["a", "b"], bad_vectors)
    with pytest.raises(InvalidInput, match="2 ids but 1 vectors"):
        index.add(["a", "b"], x[:1])
    with pytest.raises(InvalidInput, match="all-zero"):
        index.add(["a"], np.zeros((1, DIM)))
    with pytest.raises(InvalidInput, match="twice"):
        index.add(["a", "a"], x[:2])
    with pytest.raises(InvalidInput, match="JSON"):
        index.add(["a"], x[:1], [{"when": object()}])
    with pytest.raises(InvalidInput, match="single string"):
        index.delete("d1")
    for k in (0, -3, True):
        with pytest.raises(InvalidInput, match="k must be"):
            index.search(x[0], k)
    with pytest.raises(InvalidInput, match="shape"):
        index.search(np.ones(DIM - 1), 3)
    with pytest.raises(InvalidInput, match="filter"):
        index.search(x[0], 3, filter=["public"])
    assert len(index) == 20  # nothing half-added


# ----- lexical index


def _rare_word(texts: list[str]) -> str:
    """A word of at least 7 letters that occurs in exactly one of `texts`."""
    counts = Counter(w for t in texts for w in set(tokenize(t)))
    return sorted(w for w, c in counts.items() if c == 1 and len(w) >= 7 and w.isalpha())[0]


def test_bm25_finds_a_document_by_a_rare_keyword():
    ids, _, texts = _faq(300)
    index = BM25Index(stopwords=True)
    index.add(ids, texts)
    rare = _rare_word(texts)
    owner = ids[next(i for i, t in enumerate(texts) if rare in tokenize(t))]
    hits = index.search(f"{rare.upper()}?", 5)
    assert [h.id for h in hits] == [owner]  # only the one document holding it, found despite the case


def test_bm25_filters_deletes_and_rebuilds_lazily():
    index = BM25Index()
    index.add(
        ["a", "b", "c"],
        ["Reset the router password", "Router firmware update steps", "Password rules for accounts"],
        [{"public": True}, {"public": False}, {"public": True}],
    )
    assert index.stale
    assert [h.id for h in index.search("router password", 10)] == ["a", "b", "c"]
    assert not index.stale
    assert [h.id for h in index.search("router password", 10, filter={"public": True})] == ["a", "c"]
    assert index.search("router", 10, filter={"public": True})[0].id == "a"
    index.delete(["a"])
    assert index.stale
    assert [h.id for h in index.search("router password", 10)] == ["b", "c"]
    index.add(["b"], ["Nothing about networking"])
    assert [h.id for h in index.search("router", 10)] == []
    assert index.search("", 5) == [] and index.search("zebra", 5) == []


def test_tokenizer_folds_case_and_unicode_and_keeps_numbers():
    assert tokenize("Größe of iOS 17, 2FA_codes!") == ["grösse", "of", "ios", "17", "2fa", "codes"]
    fullwidth = "\uff26\uff35\uff2c\uff2c"
    assert tokenize(f"{fullwidth} width and 東京") == ["full", "width", "and", "東京"]


def test_bm25_save_and_load_roundtrip(model_store):
    ids, _, texts = _faq(120)
    index = BM25Index(stopwords=["the", "a"])
    index.add(ids, texts, [{"n": i % 3} for i in range(120)])
    index.delete(ids[:10])
    path = save_version(index, model_store, "faq-bm25")
    loaded = BM25Index.load(path)
    for query, where in [("delete facebook account", None), ("gmail filter label", {"n": 1})]:
        assert loaded.search(query, 7, where) == index.search(query, 7, where)
    (path / "documents.json").write_text("{}")
    with pytest.raises(ArtifactError, match=str(path / "documents.json")):
        BM25Index.load(path)


def test_bm25_bad_inputs_are_refused():
    index = BM25Index()
    with pytest.raises(InvalidInput, match="2 ids but 1 texts"):
        index.add(["a", "b"], ["only one"])
    with pytest.raises(InvalidInput, match="k must be"):
        index.search("x", 0)
    with pytest.raises(InvalidInput, match="got int"):
        index.add(["a"], [5])


# ----- fusion


def test_reciprocal_rank_fusion_on_a_hand_built_example():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]])
    assert [f.id for f in fused] == ["a", "c", "b", "d"]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 62)
    assert fused[1].score == pytest.approx(1 / 63 + 1 / 61)
    assert fused[3].ranks == (None, 3)
    weighted = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]], weights=[0.1, 1.0])
    assert weighted[0].id == "c"
    tie = reciprocal_rank_fusion([["a", "b"], ["b", "a"]], limit=1)
    assert [f.id for f in tie] == ["a"]  # equal scores: the first seen wins


def test_weighted_fusion_normalises_each_list():
    dense = [Hit("a", 0.91), Hit("b", 0.90), Hit("c", 0.50)]
    lexical = [Hit("c", 12.0), Hit("d", 3.0)]
    fused = weighted_fusion([dense, lexical], weights=[1.0, 1.0])
    scores = {f.id: f.score for f in fused}
    assert scores["c"] == pytest.approx(1.0)  # 0 in dense (its minimum) + 1 in lexical (its maximum)
    assert scores["a"] == pytest.approx(1.0) and scores["d"] == pytest.approx(0.0)
    assert scores["b"] == pytest.approx(0.4 / 0.41)
    with pytest.raises(InvalidInput, match="weights"):
        weighted_fusion([dense, lexical], weights=[1.0])
