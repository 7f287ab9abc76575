import json

import pytest
import yaml

from repro import report
from repro.configuration import compose
from repro.results import ResultExistsError, load_results, write_result
from repro.run import run


def test_results_are_never_silently_overwritten(tmp_path):
    path = tmp_path / "exp" / "a.json"
    write_result(path, {"x": 1})
    with pytest.raises(ResultExistsError, match="if_exists=overwrite"):
        write_result(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 1}
    write_result(path, {"x": 3}, if_exists="overwrite")
    assert load_results(tmp_path, "exp")[0]["x"] == 3


def test_run_refuses_before_training_when_result_exists(run_overrides):
    cfg = compose(["experiment=debug", *run_overrides, "train.steps=20", "train.chunk_steps=10",
                   "train.eval_every=10", "results.if_exists=error"])
    first = run(cfg)
    with pytest.raises(ResultExistsError):
        run(cfg)
    skip = compose(["experiment=debug", *run_overrides, "train.steps=20", "train.chunk_steps=10",
                    "train.eval_every=10", "results.if_exists=skip"])
    assert "skipped" in run(skip)
    assert first["provenance"]["versions"]["jax"]
    assert first["timing"]["compile_seconds"] > 0 and first["timing"]["steps_per_second"] > 0
    assert first["config"]["train"]["steps"] == 20


def test_report_table_uses_only_current_configs(tmp_path, run_overrides, monkeypatch):
    # A two-variant spec over the debug experiment, and three runs: 2 seeds of one variant,
    # and one run of a config the spec does not name (it must be left out of the table).
    spec = {
        "title": "Debug paper", "paper": "Nobody 2026", "experiment": "debug",
        "command": "make nothing",
        "variants": {"sgd": ["optim.lr=0.5"], "fast": ["optim.lr=1.0"]},
        "reported": [
            {"description": "final test accuracy", "variant": "sgd", "metric": "test/accuracy",
             "step": None, "value": 0.5, "tolerance": 0.6, "source": "Table 1"},
            {"description": "fast accuracy", "variant": "fast", "metric": "test/accuracy",
             "step": 20, "value": 0.9, "tolerance": 0.01, "source": "Table 2"},
        ],
    }
    spec_dir = tmp_path / "experiments" / "debug"
    spec_dir.mkdir(parents=True)
    (spec_dir / "spec.yaml").write_text(yaml.safe_dump(spec))
    results_dir = tmp_path / "results"
    base = ["experiment=debug", *run_overrides, f"paths.results={results_dir}", "train.steps=40",
            "train.chunk_steps=20", "train.eval_every=20", "model.hidden=[32]",
            "model.activation=relu"]
    for seed in (0, 1):
        run(compose([*base, "optim.lr=0.5", f"seed={seed}"]))
    run(compose([*base, "optim.lr=0.05"]))

    # The spec's variants are composed with the same base overrides the runs used.
    real_compose = report.compose
    monkeypatch.setattr(report, "compose", lambda o: real_compose([*base, *o[1:]]))
    specs = report.load_specs(tmp_path / "experiments")
    text = report.write_report(results_dir, specs)
    assert (results_dir / "README.md").read_text() == text
    row_sgd = next(line for line in text.splitlines() if line.startswith("| final test accuracy"))
    cells = [c.strip() for c in row_sgd.split("|")]
    assert cells[5] == "2" and cells[8] == "yes"  # 2 seeds, within tolerance
    row_fast = next(line for line in text.splitlines() if line.startswith("| fast accuracy"))
    assert "not run" in row_fast
    assert "1 other result file(s)" in text and "optim.lr=0.05" in text


def test_real_specs_name_existing_variants():
    for spec in report.load_specs():
        for item in spec["reported"]:
            assert item["variant"] in spec["variants"]
            assert item["source"] and item["tolerance"] > 0
        groups = report.group_by_variant(spec, [])
        assert set(groups) == set(spec["variants"])


def test_report_rows_with_units_and_a_lower_is_better_metric():
    base = {"description": "test NLL (nats per image, lower is better)", "source": "Table 4",
            "value": 81.3, "tolerance": 1.0, "digits": 2, "units": "nats", "better": "lower"}
    worse = {**base, "n": 1, "mean": 85.0, "std": float("nan"), "diff": 3.7, "within": False}
    better = {**base, "n": 2, "mean": 80.8, "std": 0.1, "diff": -0.5, "within": True}
    not_run = {**base, "n": 0}
    lines = report.markdown_table([worse, better, not_run]).splitlines()[2:]
    assert lines[0] == ("| test NLL (nats per image, lower is better) | Table 4 | 81.3 nats | 85.00 ± – nats "
                        "| 1 | +3.70 (worse) | ±1.0 | **no** |")
    assert "| 80.80 ± 0.10 nats | 2 | -0.50 (better) | ±1.0 | yes |" in lines[1]
    assert "| 81.3 nats | not run |" in lines[2]
    higher = {**better, "better": "higher"}
    assert "-0.50 (worse)" in report.markdown_table([higher])
