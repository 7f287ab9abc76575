"""Properties of the one rule (repro/verdicts.py) that must hold for every input, not only the
examples of test_verdicts.py: hypothesis draws the inputs."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from repro.verdicts import check_claim, judge, smallest_gap, tolerance

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False)
positive = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False)
values = st.lists(finite, min_size=1, max_size=6)
FAST = settings(max_examples=60, deadline=None, derandomize=True)  # the same examples every run


@FAST
@given(values, finite, st.floats(min_value=0, max_value=10), st.floats(min_value=0, max_value=5))
def test_within_is_exactly_the_difference_against_a_tolerance_at_least_the_floor(vals, paper, floor, read):
    row = {"value": paper, "floor": floor, "read_error": read, "paper_runs": 1}
    verdict = judge(row, vals)
    assert verdict["tolerance"] >= floor and verdict["tolerance"] >= 2 * read - 1e-12
    assert verdict["within"] == (abs(verdict["diff"]) <= verdict["tolerance"] + 1e-12 * max(1.0, abs(paper)))
    # Reflected about the paper's value, the same values are judged the same.
    mirrored = judge(row, [2 * paper - v for v in vals])
    assert mirrored["within"] == verdict["within"]
    assert math.isclose(mirrored["tolerance"], verdict["tolerance"], rel_tol=1e-9, abs_tol=1e-9)


@FAST
@given(st.lists(positive, min_size=1, max_size=5), positive, positive)
def test_a_log_scale_row_judges_ratios_so_a_common_factor_changes_nothing(vals, paper, factor):
    row = {"value": paper, "floor": math.log10(2), "scale": "log"}
    scaled = {**row, "value": paper * factor}
    assert judge(row, vals)["within"] == judge(scaled, [v * factor for v in vals])["within"]


@FAST
@given(st.floats(min_value=0, max_value=5), st.integers(min_value=1, max_value=20))
def test_more_seeds_never_widen_the_tolerance_of_the_same_spread(std, n):
    row = {"floor": 0.0}
    # (from one seed to two the spread appears: one seed has none, the floor alone)
    assert tolerance(row, std, n + 1) <= tolerance(row, std, n) + 1e-12 or n == 1


@FAST
@given(st.lists(st.tuples(finite, finite), min_size=2, max_size=6), finite,
       st.sampled_from(["lower", "higher"]))
def test_a_claim_reads_the_same_with_its_sides_swapped_and_its_expectation_reversed(pairs, shift, expect):
    groups = {"A": [{"seed": s, "history": [{"step": 1, "m": a}]} for s, (a, _) in enumerate(pairs)],
              "B": [{"seed": s, "history": [{"step": 1, "m": b}]} for s, (_, b) in enumerate(pairs)]}
    claim = {"a": "A", "b": "B", "metric": "m", "expect": expect, "than": shift}
    reverse = "higher" if expect == "lower" else "lower"
    swapped = {**claim, "a": "B", "b": "A", "expect": reverse, "than": -shift}
    assert check_claim(claim, groups)["verdict"] == check_claim(swapped, groups)["verdict"]


@FAST
@given(st.lists(finite, min_size=2, max_size=8))
def test_the_smallest_gap_is_the_nearest_other_value_of_the_group_whatever_its_order(paper_values):
    rows = [{"value": v, "compares": "g"} for v in paper_values]
    first = rows[0]
    gaps = [abs(first["value"] - r["value"]) for r in rows[1:] if r["value"] != first["value"]]
    expected = min(gaps) if gaps else None
    assert smallest_gap(first, rows) == expected
    assert smallest_gap(first, list(reversed(rows))) == expected
