from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from ml.artifacts import read_meta
from ml.errors import Cancelled, InvalidInput
from ml.training.embedding import (
    EmbeddingSpec,
    group_batches,
    load_stackfaq_pairs,
    load_stackfaq_queries,
    split_by_group,
    train_embedding,
)
from ml.training.runner import SilentCallbacks
from tests.ml.recorder import Recorder

DATA = Path(settings.DATA_DIR) / "stackfaq"  # read through DATA_DIR as the product reads it


@pytest.fixture(scope="module")
def faq():
    return load_stackfaq_pairs(DATA)


def _small_spec(faq, **overrides) -> EmbeddingSpec:
    """Eight FAQ threads, at most three short answers each: enough for in-batch negatives, quick on 2 cores."""
    picked: dict[str, int] = {}
    keep = []
    for i, group in enumerate(faq.groups):
        if (group in picked or len(picked) < 8) and picked.get(group, 0) < 3:
            picked[group] = picked.get(group, 0) + 1
            keep.append(i)
    fields = dict(
        task="faq-encoder",
        queries=tuple(faq.queries[i] for i in keep),
        passages=tuple(faq.passages[i][:300] for i in keep),
        groups=tuple(faq.groups[i] for i in keep),
        batch_size=4,
        max_length=32,
        max_steps=2,
        eval_fraction=0.25,
    )
    return EmbeddingSpec(**{**fields, **overrides})


def test_stackfaq_pairs_are_question_answer_pairs_grouped_by_thread(faq):
    assert len(faq.queries) == len(faq.passages) == len(faq.groups) == 719
    assert len(set(faq.groups)) == 125
    first = faq.groups.index("t000")
    assert faq.queries[first] == "Strikethrough with GitHub Markdown"
    assert "tildes" in faq.passages[first]
    queries, threads = load_stackfaq_queries(DATA)
    assert len(queries) == len(threads) > 900
    assert not set(queries) & set(faq.queries)  # the test queries are not among the training questions


def test_the_held_aside_split_takes_whole_groups_with_a_fixed_seed(faq):
    train, held = split_by_group(faq.groups, 0.2, seed=13)
    assert not {faq.groups[i] for i in train} & {faq.groups[i] for i in held}
    assert sorted(train + held) == list(range(len(faq.groups)))
    assert len({faq.groups[i] for i in held}) == 25
    assert split_by_group(faq.groups, 0.2, seed=13) == (train, held)
    assert split_by_group(faq.groups, 0.2, seed=14) != (train, held)


def test_no_batch_holds_two_pairs_of_one_thread(faq):
    train, _ = split_by_group(faq.groups, 0.2, seed=13)
    batches = group_batches(train, faq.groups, 16, random.Random(0))
    assert all(2 <= len(b) <= 16 for b in batches)
    assert all(len({faq.groups[i] for i in b}) == len(b) for b in batches)
    used = [i for b in batches for i in b]
    assert len(used) == len(set(used))
    assert len(used) > 0.95 * len(train)  # only a tail of one leftover thread may be dropped


def test_bad_specs_are_refused_before_any_model_loads(faq):
    with pytest.raises(InvalidInput, match="differ"):
        train_embedding(_small_spec(faq, passages=("only one",)), Path("unused"), SilentCallbacks())
    with pytest.raises(InvalidInput, match="batch_size"):
        train_embedding(_small_spec(faq, batch_size=1), Path("unused"), SilentCallbacks())


@pytest.fixture(scope="module")
def tuned(faq, tmp_path_factory):
    out = tmp_path_factory.mktemp("encoder")
    extra = load_stackfaq_queries(DATA)
    spec = _small_spec(faq, extra_eval_queries=extra[0][:20], extra_eval_groups=extra[1][:20])
    recorder = Recorder()
    result = train_embedding(spec, out, recorder)
    return spec, result, recorder


@pytest.mark.slow
def test_fine_tuning_reports_progress_and_hit_at_k_before_and_after(tuned):
    _, result, recorder = tuned
    assert [e.step for e in recorder.events] == [1, 2]
    assert all(e.loss is not None and e.loss > 0 for e in recorder.events)
    meta = read_meta(result.artifact_dir)
    assert meta.kind == "sentence-encoder"
    for when in ("before", "after"):
        held = meta.metrics[when]["heldout"]
        assert set(held) == {"hit@1", "hit@5", "mrr@10", "n"}
        assert held["n"] == 2  # two of the eight threads held aside, one question each
        assert 0 <= held["hit@1"] <= held["hit@5"] <= 1
        assert "extra_all" in meta.metrics[when]
    # the untuned packaged model already finds these threads' answers among 24 passages
    assert meta.metrics["before"]["heldout"]["hit@5"] == 1.0
    assert meta.hyperparameters["loss"].startswith("in-batch negatives")
    assert meta.data["pairs"]


@pytest.mark.slow
def test_the_tuned_encoder_loads_in_the_fp32_embedder_and_has_moved(tuned, minilm_embedder):
    from ml.api import embed

    _, result, _ = tuned
    texts = ["How do I delete my Facebook account?", "Strikethrough with GitHub Markdown"]
    tuned_vectors = embed(texts, backend="torch-fp32", model=str(result.artifact_dir))
    base_vectors = minilm_embedder.encode(texts)
    assert tuned_vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(tuned_vectors, axis=1), 1.0, atol=1e-5)
    cosines = (tuned_vectors * base_vectors).sum(axis=1)
    assert (cosines < 0.99999).all() and (cosines > 0.9).all()  # two small steps: changed, not wrecked


@pytest.mark.slow
def test_cancelling_stops_training_and_writes_no_artifact(faq, tmp_path):
    out = tmp_path / "cancelled"
    with pytest.raises(Cancelled):
        train_embedding(_small_spec(faq, max_steps=5), out, Recorder(stop_at=1))
    assert not (out / "meta.json").exists()
