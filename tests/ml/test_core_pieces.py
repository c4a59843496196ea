from __future__ import annotations

import json

import pytest

from ml.artifacts import ArtifactMeta, read_meta, sha256_texts, write_meta
from ml.cache import ModelCache
from ml.errors import ArtifactError, InvalidInput
from ml.prompts import Passage, approx_tokens, fit_passages, render
from ml.registry import Registry
from ml.text import clean_text, length_order, mark_links, preprocess, strip_links


def test_meta_round_trip_records_code_version_and_time(tmp_path):
    meta = ArtifactMeta(task="t", kind="k", base_model="b", labels=("a", "b"), metrics={"acc": 0.5})
    write_meta(tmp_path, meta)
    loaded = read_meta(tmp_path)
    assert loaded.labels == ("a", "b") and loaded.metrics == {"acc": 0.5}
    assert loaded.created_at and loaded.code_version


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "meta.json is missing"),
        ("{broken", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"task": "t"}', "lacks"),
    ],
)
def test_corrupt_or_missing_artifact_names_the_path(tmp_path, content, message):
    if content is not None:
        (tmp_path / "meta.json").write_text(content)
    with pytest.raises(ArtifactError, match=message) as info:
        read_meta(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_missing_directory_names_the_path(tmp_path):
    with pytest.raises(ArtifactError, match="does-not-exist does not exist"):
        read_meta(tmp_path / "does-not-exist")


def test_data_fingerprint_changes_with_labels():
    assert sha256_texts(["a", "b"], ["x", "y"]) != sha256_texts(["a", "b"], ["x", "x"])


def test_clean_text_handles_bytes_controls_and_size():
    assert clean_text(b"caf\xc3\xa9") == "café"
    assert "\ufffd" in clean_text(b"\xff\xfe")
    assert clean_text("a\x00b") == "a b"
    assert len(clean_text("y" * 1_000_000)) == 20_000
    assert clean_text("\ud800lone surrogate") == "?lone surrogate"
    with pytest.raises(InvalidInput):
        clean_text(3.5)


def test_strip_links_removes_http_links_only():
    assert strip_links("$GM - GM loses a bull https://t.co/tdUfG5HbXy") == "$GM - GM loses a bull"
    assert strip_links("see HTTP://x.io/a?b=1 and\nhttps://y.org/  now") == "see and now"
    assert strip_links("www.example.com and ftp://host stay") == "www.example.com and ftp://host stay"
    assert strip_links("https://t.co/only") == ""
    assert mark_links("loses a bull https://t.co/tdUfG5HbXy") == "loses a bull http"
    assert mark_links("a http://x.io/1,https://y.io/2  b") == "a http b"
    assert preprocess(["a https://t.co/x", "b"], "strip-links") == ["a", "b"]
    assert preprocess(["a https://t.co/x"], "mark-links") == ["a http"]
    assert preprocess(["a  https://t.co/x"], "") == ["a  https://t.co/x"]
    with pytest.raises(InvalidInput, match="unknown text preprocessing 'lower'"):
        preprocess(["a"], "lower")


def test_length_order_sorts_by_length():
    assert length_order(["ccc", "a", "bb"]) == [1, 2, 0]


def test_cache_loads_once_and_evicts_least_recently_used():
    cache = ModelCache(max_items=2)
    cache.get("a", lambda: "A")
    cache.get("b", lambda: "B")
    assert cache.get("a", lambda: "A2") == "A"  # a is now most recent
    cache.get("c", lambda: "C")  # evicts b
    assert "b" not in cache and "a" in cache and "c" in cache
    assert cache.loads == 3


def test_registry_refuses_duplicates_and_unknown_names():
    reg: Registry[str] = Registry("thing")
    reg.register("x")(lambda: "made")
    assert reg.create("x") == "made"
    with pytest.raises(RuntimeError):
        reg.register("x")(lambda: "again")
    with pytest.raises(InvalidInput, match="known: x"):
        reg.create("y")


def test_fit_passages_keeps_best_and_trims_the_one_that_overflows():
    passages = [Passage("low " * 50, 0.1), Passage("best " * 40, 0.9), Passage("mid " * 30, 0.5)]
    count = lambda text: len(text.split())  # noqa: E731
    kept = fit_passages(passages, budget=110, count_tokens=count)
    assert [p.score for p in kept] == [0.9, 0.5, 0.1]
    assert count(kept[2].text) == 40  # the lowest-ranked one was trimmed to the room left
    # too little room left (under min_tokens): the rest is dropped rather than cut to a stub
    assert [p.score for p in fit_passages(passages, budget=90, count_tokens=count)] == [0.9, 0.5]
    assert [p.score for p in fit_passages(passages, budget=60, count_tokens=count)] == [0.9]


def test_render_refuses_objects_and_supports_loops():
    assert render("{% for x in xs %}{{ x }},{% endfor %}", {"xs": [1, 2]}) == "1,2,"
    with pytest.raises(InvalidInput, match="plain data only"):
        render("{{ x }}", {"x": object()})
    assert json.loads(render('{"n": {{ n }}}', {"n": 3})) == {"n": 3}
    assert approx_tokens("abcd" * 10) == 10
