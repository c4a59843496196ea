"""A render's cost has a ceiling: users write templates and send variables, the web process renders them.

The probe: an agent's 60 KB render with a nested loop over a 20,000-item variable took 8.6 s of web CPU
and grew with the square of the list.
"""

from __future__ import annotations

import time

import pytest

from ml.errors import InvalidInput
from ml.prompts import RenderLimits, check_template, render

ITEMS = {"items": [f"item {i}" for i in range(20_000)]}


def test_a_nested_loop_over_a_long_list_stops_at_the_iteration_limit_quickly():
    body = "{% for a in items %}{% for b in items %}{% endfor %}{% endfor %}"
    started = time.process_time()
    with pytest.raises(InvalidInput, match="100,000 loop iterations"):
        render(body, ITEMS)
    assert time.process_time() - started < 2.0  # 400 million iterations unguarded


def test_loops_over_literals_and_filtered_values_are_counted_too():
    limits = RenderLimits(iterations=50)
    with pytest.raises(InvalidInput, match="loop iterations"):
        render("{% for c in (s | upper) %}{{ c }}{% endfor %}", {"s": "x" * 100}, limits=limits)
    assert render("{% for c in s %}{{ c }}{% endfor %}", {"s": "x" * 50}, limits=limits) == "x" * 50


def test_a_single_loop_over_the_same_list_is_fine():
    text = render("{% for a in items %}{{ a }};{% endfor %}", ITEMS)
    assert text.count(";") == 20_000


def test_output_length_is_capped():
    with pytest.raises(InvalidInput, match="longer than 1,000 characters"):
        render("{% for a in items %}{{ a }}{% endfor %}", ITEMS, limits=RenderLimits(output_chars=1_000))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{{ "a" * 1000000000 }}', "repeats a value"),
        ("{{ 2 ** 99999999 }}", "exponents above"),
        ('{{ "%999999999d" % 1 }}', "string formatting"),
    ],
)
def test_operators_that_make_a_huge_value_from_a_small_one_are_refused(body, message):
    with pytest.raises(InvalidInput, match=message):
        render(body, {})


def test_template_and_variable_sizes_are_capped():
    with pytest.raises(InvalidInput, match="at most 50,000 characters"):
        check_template("x" * 50_001)
    with pytest.raises(InvalidInput, match="variables may have at most 10 characters"):
        render("{{ s }}", {"s": "x" * 20}, limits=RenderLimits(variables_chars=10))


def test_time_is_capped():
    slow = RenderLimits(seconds=0.0, iterations=10**9)
    with pytest.raises(InvalidInput, match="took more than 0 s"):
        render("{% for a in items %}{{ a }}{% endfor %}", ITEMS, limits=slow)
