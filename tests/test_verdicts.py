"""The one rule every reported number and claim is judged by (repro/verdicts.py)."""

import math
import statistics

import pytest

from repro import render
from repro.verdicts import check_claim, counts_as_within, judge, smallest_gap, summarize, tolerance, value_of


def run(seed, **history_at_steps):
    steps = sorted({s for series in history_at_steps.values() for s in series})
    history = [{"step": s, **{m: series[s] for m, series in history_at_steps.items() if s in series}}
               for s in steps]
    return {"seed": seed, "history": history}


def test_tolerance_is_two_standard_errors_of_the_difference_or_the_floor():
    row = {"floor": 0.05, "read_error": 0.02, "paper_runs": 5}
    # s = 0.1 over n = 3 seeds; the paper's mean of 5 runs has s/sqrt(5): SE^2 = .01/3 + .01/5 + .0004
    assert tolerance(row, 0.1, 3) == pytest.approx(2 * math.sqrt(0.01 / 3 + 0.01 / 5 + 0.0004))
    assert tolerance(row, 0.001, 3) == 0.05  # tiny spread: the floor
    stated = tolerance({**row, "paper_se": 0.2}, 0.1, 3)
    assert stated == pytest.approx(2 * math.sqrt(0.01 / 3 + 0.04 + 0.0004))
    assert tolerance({"floor": 0.3}, float("nan"), 1) == 0.3  # one seed: no spread, the floor alone
    assert tolerance({"floor": 0.0, "paper_runs": 1}, 0.1, 4) == pytest.approx(2 * math.sqrt(0.01 / 4 + 0.01))


def test_judge_with_the_seed_spread_passes_what_a_flat_tolerance_fails_by_chance():
    row = {"value": 1.45, "floor": 0.05, "read_error": 0.02, "paper_runs": 5}
    verdict = judge(row, [1.50, 1.62, 1.38])  # mean 1.50, std 0.12: 0.05 off, well inside 2 SE
    assert verdict["n"] == 3 and verdict["diff"] == pytest.approx(0.05)
    assert verdict["tolerance"] == pytest.approx(2 * math.sqrt(0.0144 / 3 + 0.0144 / 5 + 0.0004))
    assert verdict["within"]
    assert not judge(row, [1.80, 1.81, 1.79])["within"]  # tight seeds, far off: outside


def test_log_scale_rows_are_judged_as_factors():
    row = {"value": 100.0, "floor": math.log10(2), "scale": "log"}
    assert judge(row, [190.0])["within"] and judge(row, [55.0])["within"]
    assert not judge(row, [210.0])["within"] and not judge(row, [45.0])["within"]
    assert render.tolerance_text(row, math.log10(2)) == "×/÷2"
    with pytest.raises(ValueError, match="scale: log"):
        judge(row, [0.0])


def test_the_smallest_gap_is_to_the_nearest_value_the_paper_compares_ties_and_strangers_aside():
    a = {"value": 1.45, "compares": "h100"}
    rows = [a, {"value": 1.42, "compares": ["h100", "x"]}, {"value": 1.45, "compares": "h100"},
            {"value": 1.44, "compares": "h250"}, {"value": 1.449}]
    assert smallest_gap(a, rows) == pytest.approx(0.03)  # the tie (1.45) draws no difference
    assert smallest_gap({**a, "compares": ["h100", 1.47]}, rows) == pytest.approx(0.02)  # a bare value
    assert smallest_gap({"value": 1.449}, rows) is None  # compared with nothing
    assert smallest_gap({"value": "7563", "scale": "log", "compares": [4022]}, []) == pytest.approx(
        math.log10(7563 / 4022))  # in the row's scale; a value written as text is a number too


def test_a_tolerance_as_wide_as_the_gap_does_not_discriminate_and_its_within_does_not_count():
    row = {"value": 1.0, "floor": 0.1}
    narrow, edge = judge(row, [1.05], gap=0.1000001), judge(row, [1.05], gap=0.1)
    assert narrow["discriminates"] is True and counts_as_within(narrow)
    assert edge["discriminates"] is False and edge["within"] and not counts_as_within(edge)
    assert judge(row, [1.05])["discriminates"] is None and counts_as_within(judge(row, [1.05]))
    outside = {**row, **judge(row, [1.5], gap=0.05)}
    assert render.within_text(outside) == (
        "**no**; does not discriminate (tolerance ≥ the paper's smallest gap, 0.0500)")
    assert render.within_text({**row, **edge, "digits": 2}).startswith("does not discriminate (")
    assert render.within_text({**row, **narrow}) == "yes"


def test_values_can_be_ratios_or_steps_to_a_threshold():
    r = run(0, **{"a": {10: 2.0, 20: 3.0}, "b": {10: 4.0, 20: 12.0}, "acc": {10: 0.5, 20: 0.85, 30: 0.95}})
    assert value_of(r, {"metric": "a / b", "step": 10}) == 0.5
    assert value_of(r, {"metric": "a / b", "step": None}) == 0.25
    assert value_of(r, {"metric": "acc", "steps_to": 0.8}) == 20.0
    assert value_of(r, {"metric": "acc", "steps_to": 0.99}) is None  # never reached: no value
    assert value_of(r, {"metric": "missing / b", "step": None}) is None
    assert value_of(r, {"metric": "a - b", "step": 10}) == -2.0  # a difference, at one step
    assert value_of(r, {"metric": "b - a", "step": None}) == 9.0
    assert value_of(r, {"metric": "a - missing", "step": None}) is None
    assert value_of(r, {"metric": "b", "over_training": "min"}) == 4.0  # the best evaluation
    assert value_of(r, {"metric": "acc", "over_training": "max"}) == 0.95
    for chained in ("a / b / acc", "a - b - acc", "a / b - acc", "a - b / acc"):  # which binds first?
        with pytest.raises(ValueError, match="one ratio"):
            value_of(r, {"metric": chained, "step": None})


def test_claims_hold_are_contradicted_or_stay_unresolved_by_their_interval():
    claim = {"description": "a below b", "a": "A", "b": "B", "metric": "err", "step": None,
             "expect": "lower"}

    def groups(diffs):
        return {"A": [run(s, err={1: 1.0 + d}) for s, d in enumerate(diffs)],
                "B": [run(s, err={1: 1.0}) for s in range(len(diffs))]}

    held = check_claim(claim, groups([-0.3, -0.2, -0.25]))
    assert held["verdict"] == "holds" and held["n"] == 3 and held["high"] < 0
    assert check_claim(claim, groups([0.3, 0.2, 0.25]))["verdict"] == "contradicted"
    assert check_claim(claim, groups([-0.3, 0.2, 0.05]))["verdict"] == "unresolved"
    # Paired by seed: only seeds run in both variants count.
    unpaired = groups([-0.3, -0.2, -0.25])
    unpaired["B"] = unpaired["B"][:2]
    assert check_claim(claim, unpaired)["n"] == 2
    single = check_claim({**claim, "b": None, "than": 1.5}, {"A": [run(0, err={1: 1.2})]})
    assert single["verdict"] == "holds (one run, no interval)"
    assert check_claim(claim, {})["verdict"] == "not run"
    # step_b: b read at its own step (A's last value 1.0 against B at step 5, then at its end)
    staged = {"A": [run(s, err={1: 1.0}) for s in range(3)],
              "B": [run(s, err={5: 1.5 + s / 100, 9: 0.5}) for s in range(3)]}
    assert check_claim({**claim, "step_b": 5}, staged)["verdict"] == "holds"
    assert check_claim(claim, staged)["verdict"] == "contradicted"
    # metric_b: b read on another metric, here a baseline the same runs measure (A against itself)
    both = {"A": [run(s, err={1: 1.0}, base={1: 1.2 + s / 100}) for s in range(3)]}
    against_base = {**claim, "b": "A", "metric_b": "base"}
    assert check_claim(against_base, both)["verdict"] == "holds"
    assert check_claim({**against_base, "metric_b": None}, both)["verdict"] == "unresolved"  # d = 0
    # c, d: one gain against another, seed by seed: (A - B) - (C - D)
    gains = {"A": [run(s, err={1: 3.0 + s}) for s in range(3)], "B": [run(s, err={1: 1.0}) for s in range(3)],
             "C": [run(s, err={1: 2.0 + s + 0.1 * s}) for s in range(3)],
             "D": [run(s, err={1: 1.5}) for s in range(3)]}
    larger = {**claim, "expect": "higher", "c": "C", "d": "D"}
    compared = check_claim(larger, gains)  # per seed: 2 - (0.5 + 0.1 s) = 1.5, 1.4, 1.3
    assert compared["verdict"] == "holds" and compared["mean"] == pytest.approx(1.4)
    assert check_claim({**larger, "than": 2.0}, gains)["verdict"] == "contradicted"
    gains["D"] = gains["D"][:1]  # only the seeds run in all four variants count
    assert check_claim(larger, gains)["n"] == 1
    # 95% t-interval: mean -0.25, std 0.05, n 3 -> half-width t(0.975, 2) * 0.05 / sqrt(3) = 0.1242
    assert held["high"] - held["mean"] == pytest.approx(4.302653 * 0.05 / math.sqrt(3), rel=1e-5)


def test_fact_and_timing_rows_read_numbers_only_never_flags_or_text():
    result = {"history": [], "facts": {"parameters": 177814, "flops_per_example": 9.3e6, "sharded": True,
                                       "name": "x"}, "timing": {"steps_per_second": 0.64}}
    assert value_of(result, {"metric": "facts/parameters"}) == 177814.0
    assert value_of(result, {"metric": "facts/flops_per_example"}) == 9.3e6
    assert value_of(result, {"metric": "timing/steps_per_second"}) == 0.64
    assert value_of(result, {"metric": "facts/sharded"}) is None   # a flag is not a number
    assert value_of(result, {"metric": "facts/name"}) is None
    assert value_of(result, {"metric": "facts/missing"}) is None
    assert value_of({"history": []}, {"metric": "timing/steps_per_second"}) is None  # no block at all


def test_steps_to_ignores_records_without_the_metric_and_nearest_step_reads_the_nearest():
    # Train-only records (no test metric) sit between evaluations: they never "reach" a threshold.
    r = {"seed": 0, "history": [{"step": 5, "loss": 1.0}, {"step": 10, "acc": 0.5},
                                {"step": 15, "loss": 0.5}, {"step": 20, "acc": 0.9}]}
    assert value_of(r, {"metric": "acc", "steps_to": 0.8}) == 20.0
    assert value_of(r, {"metric": "acc", "steps_to": 0.5}) == 10.0  # reaching it exactly counts
    assert value_of(r, {"metric": "acc", "step": 14}) == 0.5
    assert value_of(r, {"metric": "acc", "step": 16}) == 0.9
    assert value_of(r, {"metric": "missing", "step": None}) is None


def test_this_machine_is_compared_with_the_reference_seed_for_seed_not_by_membership():
    from repro.verdicts import versus_reference

    ref = {0: 1.0, 1: 2.0, 2: 3.0}
    assert versus_reference(ref, {0: 1.0, 1: 2.0}) == ("bitwise equal", False)
    # The same values under other seeds: every value "appears" in the reference, yet none is its seed's.
    text, differs = versus_reference(ref, {0: 2.0, 1: 3.0, 2: 1.0})
    assert text.startswith("within seed spread (means +0, 2 s.e. 1.63)") and not differs
    # Beyond 2 standard errors of the difference of means (each side's seed std): it differs, and
    # by how much at most, seed for seed.
    text, differs = versus_reference({0: 1.0, 1: 1.1, 2: 0.9}, {0: 1.5, 1: 1.7, 2: 1.4})
    bound = 2 * math.sqrt(0.1**2 / 3 + statistics.stdev([1.5, 1.7, 1.4]) ** 2 / 3)
    assert differs and text == f"**differs** by up to 0.6 (means +0.5333, 2 s.e. {bound:.3g})"
    # One seed on each side: no spread to judge by, the difference named.
    assert versus_reference({0: 1.0}, {0: 1.25}) == (
        "no spread to judge by (one seed each; differs by 0.25)", False)
    # One seed here, three in the reference: the reference's spread stands in for ours.
    text, differs = versus_reference({0: 1.0, 1: 1.1, 2: 0.9}, {0: 1.05})
    bound = 2 * math.sqrt(0.01 / 3 + 0.01 / 1)
    assert text == f"within seed spread (means +0.05, 2 s.e. {bound:.3g})" and not differs
    assert versus_reference({0: 1.0}, {}) == ("not run here", False)
    assert versus_reference({}, {0: 1.0}) == ("no reference", False)


def test_final_values_flatten_lists_and_skip_the_step_and_flags():
    from repro.verdicts import final_metrics_versus_reference, final_values

    result = {"final": {"step": 100, "acc": 0.9, "alpha": [0.1, 0.2], "nan_seen": False, "name": "x"}}
    assert final_values(result) == {"acc": 0.9, "alpha[0]": 0.1, "alpha[1]": 0.2}
    ref = [{"seed": 0, **result}, {"seed": 1, "final": {"acc": 0.8}}]
    local = [{"seed": 1, "final": {"acc": 0.8, "only_here": 1.0}}]
    assert final_metrics_versus_reference(ref, local) == [("acc", "bitwise equal", False)]


def test_within_at_the_exact_tolerance_survives_float_rounding_at_any_scale():
    # 0.55 - 0.3 is 0.25000000000000006 in floats: the rule's 1e-12 (relative above 1) keeps it within.
    assert judge({"value": 0.3, "floor": 0.25}, [0.55])["within"]
    big = judge({"value": 1000.3, "floor": 0.1}, [1000.4])  # 1000.4 - 1000.3 = 0.10000000000002274
    assert big["diff"] - 0.1 > 1e-14 and big["within"]       # rounding at scale 1000, absorbed
    assert not judge({"value": 0.3, "floor": 0.25}, [0.5500001])["within"]  # a real excess is not
    # 0.30000000000000004: an absolute 1e-12 below 1
    assert judge({"value": 0.0, "floor": 0.3}, [0.1 + 0.2])["within"]


def test_the_seed_spread_counts_from_two_seeds_and_one_seed_has_none():
    row = {"floor": 0.0}
    assert tolerance(row, 0.1, 2) == pytest.approx(2 * math.sqrt(0.01 / 2))  # two seeds: their spread
    assert tolerance(row, 0.1, 1) == 0.0   # one seed: no spread, whatever is passed
    assert tolerance({"floor": 0.05}, float("nan"), 3) == 0.05
    assert tolerance({"floor": 0.3}, float("nan"), 0) == 0.3                 # no seeds: the floor
    assert summarize([1.0, 3.0]) == (2.0, math.sqrt(2.0), 2)                 # the std of two values
    assert math.isnan(summarize([1.0])[1])
    # A log row may have values and a paper value between 0 and 1 (only <= 0 is refused).
    assert judge({"value": 0.5, "floor": 0.3, "scale": "log"}, [0.4])["within"]


def test_claims_at_the_edges_of_their_interval_and_with_two_seeds():
    def groups(diffs):
        return {"A": [run(s, m={1: d}) for s, d in enumerate(diffs)], "B": []}

    lower = {"a": "A", "metric": "m", "expect": "lower"}
    higher = {**lower, "expect": "higher"}
    two = check_claim(lower, groups([-1.0, -1.2]))
    assert two["low"] is not None and "one run" not in two["verdict"]        # two seeds give an interval
    # Exactly at an end of the interval is not beyond it: unresolved, on every side.
    base = check_claim(lower, groups([-1.0, -1.2, -0.9]))
    ends = ((lower, base["high"]), (lower, base["low"]), (higher, base["low"]), (higher, base["high"]))
    for claim, than in ends:
        assert check_claim({**claim, "than": than}, groups([-1.0, -1.2, -0.9]))["verdict"] == "unresolved"
    # The "higher" side: holds above, contradicted below, unresolved across.
    assert check_claim(higher, groups([1.0, 1.2, 0.9]))["verdict"] == "holds"
    assert check_claim(higher, groups([-1.0, -1.2, -0.9]))["verdict"] == "contradicted"
    assert check_claim(higher, groups([-1.0, 1.2, 0.1]))["verdict"] == "unresolved"
    # One run: its sign; exactly at `than`, neither side.
    at = "unresolved (one run, no interval)"
    assert check_claim({**higher, "than": 0.5}, groups([0.5]))["verdict"] == at
    assert check_claim({**lower, "than": 0.5}, groups([0.5]))["verdict"] == at
    assert check_claim(lower, groups([0.5]))["verdict"] == "contradicted (one run, no interval)"
    assert check_claim(higher, groups([0.5]))["verdict"] == "holds (one run, no interval)"
    assert check_claim(higher, groups([-0.5]))["verdict"] == "contradicted (one run, no interval)"


def test_the_reference_comparison_at_its_edges():
    from repro.verdicts import versus_reference

    def text(ref, loc):
        return versus_reference(dict(enumerate(ref)), dict(enumerate(loc)))[0]

    # A difference of means exactly at 2 standard errors (10/3 both, in floats) is within.
    assert text([0, 0, 2], [1, 5, 6]) == "within seed spread (means +3.333, 2 s.e. 3.33)"
    # Two seeds on one side are a spread: no "no spread" verdict unless both sides have one seed.
    assert text([1.0, 1.2], [1.1]).startswith("within seed spread")
    assert text([1.1], [1.0, 1.2]).startswith("within seed spread")
    # One side with one seed borrows the other side's spread (exact bounds).
    s = statistics.stdev([1.5, 1.6, 1.4])
    bound = 2 * math.sqrt(s**2 + s**2 / 3)
    assert text([1.0], [1.5, 1.6, 1.4]) == f"**differs** by up to 0.5 (means +0.5, 2 s.e. {bound:.3g})"
    s_ref, s_loc = statistics.stdev([1.0, 1.3]), statistics.stdev([1.0, 1.1, 0.9])
    bound = 2 * math.sqrt(s_ref**2 / 2 + s_loc**2 / 3)
    assert text([1.0, 1.3], [1.0, 1.1, 0.9]).endswith(f"2 s.e. {bound:.3g})")
    assert text([1.0, 1.1, 0.9], [1.0, 1.3]).endswith(f"2 s.e. {bound:.3g})")
    # No seed in common: the largest difference is that of the means.
    disjoint = versus_reference({0: 1.0, 1: 1.2}, {5: 3.0, 6: 3.2})[0]
    assert disjoint.startswith("**differs** by up to 2 (means +2,")
