"""The spec schema (repro/spec.py) and rows that judge a result's facts and timing."""

import copy

import pytest
import yaml

from repro import report, reproduce, verdicts
from repro.configuration import compose
from repro.run import run
from repro.spec import SpecError, load_spec, validate

GOOD = {"title": "Tiny", "paper": "Nobody 2026", "command": "-",
        "variants": {"fast": ["optim.lr=0.5"], "slow": ["optim.lr=0.05"]},
        "reported": [{"description": "accuracy", "variant": "fast", "metric": "test/accuracy",
                      "value": 0.5, "floor": 0.1, "source": "Table 1"}],
        "claim_tests": [{"description": "fast beats slow", "a": "fast", "b": "slow",
                         "metric": "test/accuracy", "expect": "higher", "source": "Table 1"}],
        "superseded": [{"config_hash": "0123abcd", "why": "an earlier probe"}]}


def broken(path: str, value):
    spec = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = spec
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    if value is KeyError:
        node[last + "o"] = node.pop(last)  # misspelt by one letter
    else:
        node[last] = value
    return spec


def test_the_committed_specs_fit_the_schema():
    broken_specs: dict = {}
    specs = report.load_specs(broken=broken_specs)
    assert not broken_specs and len(specs) >= 9


@pytest.mark.parametrize("where, value, message", [
    ("reported.0.floor", KeyError, r"reported\[0\]: unknown key 'flooro'; did you mean 'floor'\?"),
    ("variants", KeyError, r"unknown key 'variantso'; did you mean 'variants'\?"),
    ("claim_tests.0.expect", "bigger", r"claim_tests\[0\]\.expect: 'bigger' is not"),
    ("reported.0.value", None, r"reported\[0\]\.value: None is not"),
    ("reported.0.variant", "fsat", r"variant 'fsat' is not defined in `variants`; did you mean 'fast'\?"),
    ("claim_tests.0.b", "medium", r"claim_tests\[0\]\.b: variant 'medium' is not defined"),
    ("claim_tests.0.c", "fast", r"claim_tests\[0\]: c and d come together"),
    ("claim_tests.0.d", "fsat", r"claim_tests\[0\]\.d: variant 'fsat' is not defined"),
    ("on_demand", ["fast", "full"], r"on_demand: variant 'full' is not defined"),
    ("superseded.0.why", KeyError, r"superseded\[0\]: unknown key 'whyo'; did you mean 'why'\?"),
    ("reported.0.metric", "test/a / test/b / test/c", r"reported\[0\]\.metric: metric 'test/a / test/b / "
     r"test/c': one ratio \('a / b'\) or one difference"),
    ("claim_tests.0.metric", "test/a - test/b / test/c", r"claim_tests\[0\]\.metric: metric 'test/a - "),
    ("claim_tests.0.metric_b", "test/a - test/b - test/c", r"claim_tests\[0\]\.metric_b: metric"),
])
def test_a_spec_error_names_the_file_the_key_and_the_closest_valid_key(where, value, message):
    validate(copy.deepcopy(GOOD), "spec.yaml")  # the unbroken spec passes
    with pytest.raises(SpecError, match=message):
        validate(broken(where, value), "experiments/tiny/spec.yaml")


def test_a_compares_group_must_be_shared_and_hold_only_names_and_paper_values():
    two = copy.deepcopy(GOOD)
    two["reported"].append({**two["reported"][0], "description": "slow accuracy", "variant": "slow"})
    two["reported"][0]["compares"] = ["table1", 0.4]
    two["reported"][1]["compares"] = "table2"
    with pytest.raises(SpecError, match=r"reported\[0\]\.compares: group 'table1' is shared by no other "
                       r"row; did you mean 'table2'\?"):
        validate(copy.deepcopy(two), "spec.yaml")
    two["reported"][1]["compares"] = "table1"
    validate(copy.deepcopy(two), "spec.yaml")
    two["reported"][1]["compares"] = ["table1", True]
    with pytest.raises(SpecError, match=r"reported\[1\]\.compares: a group name or a list"):
        validate(two, "spec.yaml")


def test_a_missing_required_key_is_named():
    spec = copy.deepcopy(GOOD)
    del spec["reported"][0]["source"]
    with pytest.raises(SpecError, match=r"reported\[0\]: missing required key\(s\) \['source'\]"):
        validate(spec, "spec.yaml")


def test_a_broken_spec_breaks_only_its_own_paper(tmp_path, monkeypatch):
    for name in ("good", "bad"):
        (tmp_path / "experiments" / name).mkdir(parents=True)
    (tmp_path / "experiments" / "good" / "spec.yaml").write_text(yaml.safe_dump(GOOD))
    (tmp_path / "experiments" / "bad" / "spec.yaml").write_text("title: [unclosed\n")
    real = report.load_specs
    monkeypatch.setattr(report, "load_specs", lambda **k: real(tmp_path / "experiments", **k))
    assert reproduce.find_spec("good")["title"] == "Tiny"
    with pytest.raises(SystemExit, match=r"experiments/bad/spec.yaml: not valid YAML"):
        reproduce.find_spec("bad")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(tmp_path / "experiments" / "bad" / "spec.yaml")


def test_fact_and_timing_rows_are_judged_on_a_real_run(run_overrides):
    """The result file holds the parameter count (784*32 + 32 + 32*10 + 10 for a 784-32-10 MLP)
    and XLA's FLOPs per example; rows read them and the timing block like any metric."""
    cfg = compose(["experiment=debug", *run_overrides, "train.steps=20", "train.chunk_steps=10",
                   "train.eval_every=10", "model.hidden=[32]"])
    result = run(cfg)
    assert result["facts"]["parameters"] == 784 * 32 + 32 + 32 * 10 + 10
    flops = result["facts"]["flops_per_example"]
    assert flops is None or 2 * (784 * 32 + 32 * 10) <= flops < 10 * (784 * 32 + 32 * 10)

    def judge(row):
        values = verdicts.values_by_seed([result], row)
        return verdicts.judge(row, list(values.values())) if values else None

    count = {"metric": "facts/parameters", "value": 25450, "floor": 0.5, "description": "parameters"}
    assert judge(count)["within"]
    assert not judge({**count, "value": 25451})["within"]
    speed = {"metric": "timing/steps_per_second", "value": result["timing"]["steps_per_second"] * 1.5,
             "floor": 0.301, "scale": "log", "description": "steps/s within a factor of 2"}
    assert judge(speed)["within"] and not judge({**speed, "floor": 0.1})["within"]
    assert judge({**count, "metric": "facts/no_such_fact"}) is None
