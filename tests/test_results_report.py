import json
import re

import pytest
import yaml

from repro import registration, render, report
from repro.configuration import compose, config_hash
from repro.data import DataError
from repro.results import BadResultFile, ResultExistsError, load_results, write_result
from repro.run import run


def test_results_are_never_silently_overwritten(tmp_path):
    path = tmp_path / "exp" / "a.json"
    write_result(path, {"x": 1})
    with pytest.raises(ResultExistsError, match="if_exists=overwrite"):
        write_result(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 1}
    write_result(path, {"x": 3}, if_exists="overwrite")
    assert json.loads(path.read_text()) == {"x": 3}


def test_run_refuses_part_of_a_data_set_unless_allowed(run_overrides, tmp_path):
    # The tiny mirror holds 600 of MNIST's 60000 training images: by default no result from it.
    strict = [o for o in run_overrides if "allow_partial" not in o]
    cfg = compose(["experiment=debug", *strict, "train.steps=10", "train.chunk_steps=10"])
    with pytest.raises(DataError, match=r"600 of 60000 train images.*data\.allow_partial=true"):
        run(cfg)
    assert not (tmp_path / "results").exists()
    allowed = compose(["experiment=debug", *run_overrides, "train.steps=10", "train.chunk_steps=10"])
    result = run(allowed)
    assert result["data_partial"] == "600 of 60000 train images, 200 of 10000 test images"
    assert result["config_hash"] != config_hash(cfg)  # never stands in for a full-data run


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
        "sweep_steps": [None, "max"],
        "reported": [
            {"description": "final test accuracy", "variant": "sgd", "metric": "test/accuracy",
             "step": None, "value": 0.5, "floor": 0.6, "source": "Table 1"},
            {"description": "fast accuracy", "variant": "fast", "metric": "test/accuracy",
             "step": 20, "value": 0.9, "floor": 0.01, "source": "Table 2"},
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
    slow_hash = run(compose([*base, "optim.lr=0.05"]))["config_hash"]
    spec["superseded"] = [{"config_hash": slow_hash, "why": "an earlier learning rate"}]
    (spec_dir / "spec.yaml").write_text(yaml.safe_dump(spec))
    # Broken files beside them (an empty one, one without a config hash) must not stop the report.
    (results_dir / "debug" / "empty.json").write_text("")
    (results_dir / "debug" / "nohash.json").write_text('{"seed": 0}')

    # The spec's variants are composed with the same base overrides the runs used.
    real_compose = report.compose
    monkeypatch.setattr(report, "compose", lambda o: real_compose([*base, *o[1:]]))
    specs = report.load_specs(tmp_path / "experiments")
    text = report.write_report(results_dir, specs)
    assert (results_dir / "README.md").read_text() == text
    row_sgd = next(line for line in text.splitlines() if line.startswith("| final test accuracy"))
    cells = [c.strip() for c in row_sgd.split("|")]
    assert cells[5] == "partly run (2 of 3 seeds)" and cells[8] == "yes"  # within tolerance
    assert cells[9] == "unknown"  # a spec outside this repository's history cannot be dated
    row_fast = next(line for line in text.splitlines() if line.startswith("| fast accuracy"))
    assert "not run" in row_fast
    assert "2 reported numbers: 0 run with all seeds, 1 partly run, 1 not run; 1 of the 1 run within" in text
    assert "1 other result file(s)" in text and "optim.lr=0.05" in text
    other = next(line for line in text.splitlines() if line.startswith("| optim.lr=0.05"))
    assert other.startswith("| optim.lr=0.05, ") and "**superseded**: an earlier learning rate |" in other
    slow = next(r for r in load_results(results_dir, "debug") if r["config"]["optim"]["lr"] == 0.05)
    accuracies = [r["test/accuracy"] for r in slow["history"] if "test/accuracy" in r]
    assert "| test/accuracy at the end | test/accuracy, max over training |" in text
    cells = [c.strip() for c in other.split("|")]
    assert cells[3].startswith(render.fmt(accuracies[-1], 4))
    assert cells[4].startswith(render.fmt(max(accuracies), 4))
    assert "2 result file(s) could not be read" in text
    assert "empty.json is not a readable result file" in text and "nohash.json lacks" in text
    assert len(load_results(results_dir, "debug")) == 3
    with pytest.raises(BadResultFile, match="empty.json"):
        report.write_report(results_dir, specs, strict=True)


def test_real_specs_name_existing_variants():
    for spec in report.load_specs():
        for item in spec["reported"]:
            assert item["variant"] in spec["variants"]
            assert item["source"] and item["floor"] > 0
        groups = report.group_by_variant(spec, [])
        assert set(groups) == set(spec["variants"])


def test_report_gives_mean_std_and_the_number_of_seeds_once_each():
    spec = {"experiment": "debug", "variants": {"base": []},
            "reported": [{"description": "acc", "variant": "base", "metric": "test/accuracy",
                          "step": None, "value": 0.5, "floor": 0.2, "source": "Table 1"}]}
    cfg = compose(["experiment=debug"])

    def result(seed, accuracy, tag=cfg.tag):
        return {"config_hash": config_hash(cfg), "seed": seed, "tag": tag,
                "history": [{"step": 0, "test/accuracy": 0.1}, {"step": 9, "test/accuracy": accuracy}]}

    # Seed 1 also ran under another tag (not hashed): counted once, the current tag's file.
    results = [result(1, 0.9, tag="renamed"), result(0, 0.4), result(1, 0.6), result(2, 0.5)]
    groups = report.group_by_variant(spec, results)
    assert [(r["seed"], r["tag"]) for r in groups["base"]] == [(0, cfg.tag), (1, cfg.tag), (2, cfg.tag)]
    (row,) = report.compare(spec, groups)
    assert row["n"] == 3 and row["mean"] == pytest.approx(0.5) and row["std"] == pytest.approx(0.1)
    cells = [c.strip() for c in render.markdown_table([row]).splitlines()[-1].split("|")]
    assert cells[4:9] == ["0.5000 ± 0.1000", "run (3 seeds)", "+0.0000", "±0.2000", "yes"]
    # A spec can ask for more seeds than ran: the row is then only partly reproduced.
    (row,) = report.compare({**spec, "seeds_wanted": 5}, groups)
    assert row["status"] == "partly run (3 of 5 seeds)"


def test_provenance_dirty_counts_code_not_result_files():
    from repro.provenance import code_changes

    porcelain = " D results/x/a.json\n M results/README.md\n M repro/loop.py\nR  old.py -> new.py\n"
    assert code_changes(porcelain) == ["repro/loop.py", "new.py"]
    assert code_changes(" D results/x/a.json\n") == []


def test_provenance_names_the_first_changed_file_whole(tmp_path):
    """git's porcelain line for an unstaged change starts with a space: kept, the path is whole."""
    import subprocess

    from repro.provenance import _git, code_changes

    for args in (["init", "-q"], ["config", "user.email", "t@t"], ["config", "user.name", "t"]):
        subprocess.run(["git", *args], cwd=tmp_path, check=True)
    (tmp_path / "loop.py").write_text("a\n")
    subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)
    subprocess.run(["git", "commit", "-qm", "x"], cwd=tmp_path, check=True)
    (tmp_path / "loop.py").write_text("b\n")
    assert code_changes(_git("status", "--porcelain", "--untracked-files=no", cwd=tmp_path)) == ["loop.py"]
    assert _git("rev-parse", "HEAD", cwd=tmp_path).strip() == _git("rev-parse", "HEAD", cwd=tmp_path)


def test_report_rows_with_units_and_a_lower_is_better_metric():
    base = {"description": "test NLL (nats per image, lower is better)", "source": "Table 4",
            "value": 81.3, "floor": 1.0, "digits": 2, "units": "nats", "better": "lower"}
    worse = {**base, "n": 1, "status": "partly run (1 of 3 seeds)",
             "mean": 85.0, "std": float("nan"), "diff": 3.7, "tolerance": 1.0, "within": False}
    better = {**base, "n": 2, "status": "partly run (2 of 3 seeds)",
              "mean": 80.8, "std": 0.1, "diff": -0.5, "tolerance": 1.0, "within": True}
    not_run = {**base, "n": 0, "status": "not run"}
    lines = render.markdown_table([worse, better, not_run]).splitlines()[2:]
    assert lines[0] == ("| test NLL (nats per image, lower is better) | Table 4 | 81.3 nats | 85.00 ± – nats "
                        "| partly run (1 of 3 seeds) | +3.70 (worse) | ±1.00 | **no** | – |")
    assert "| 80.80 ± 0.10 nats | partly run (2 of 3 seeds) | -0.50 (better) | ±1.00 | yes |" in lines[1]
    assert "| 81.3 nats | – | not run |" in lines[2]
    higher = {**better, "better": "higher"}
    assert "-0.50 (worse)" in render.markdown_table([higher])


def test_a_difference_exactly_at_the_tolerance_is_within():
    spec = {"reported": [{"variant": "v", "metric": "m", "value": 0.5, "floor": 0.25},
                         {"variant": "v", "metric": "m", "value": 0.4, "floor": 0.25}]}
    runs = [{"seed": 0, "history": [{"step": 1, "m": 0.75}]}]
    at, beyond = report.compare(spec, {"v": runs})
    assert at["diff"] == 0.25 and at["within"] is True
    assert beyond["within"] is False


def _explained(key: str, raw: dict, overridden: set[str]) -> bool:
    """A config value that differs because the command set it, or set the key it interpolates."""
    follows = isinstance(raw.get(key), str) and any(f"${{{o}}}" in raw[key] for o in overridden)
    return follows or any(key == o or key.startswith(o + ".") for o in overridden)


def _command_keys(command: str) -> set[str]:
    """The keys a result's recorded command overrode (`key=value` tokens, `+key` too)."""
    import shlex

    return {tok.split("=", 1)[0].lstrip("+") for tok in shlex.split(command)[1:]
            if "=" in tok and not tok.startswith("-")}


def test_committed_results_still_match_their_experiment_configs():
    """Every committed result must be reproducible from its experiment config as it stands now:
    where its stored config differs from the freshly composed experiment, only in keys its
    recorded command overrode, and with exactly those changes its config hash is the stored one.
    A changed default (e.g. MNIST scaled by 256) or a key dropped from the hash would silently
    orphan these results in the report; this test names them instead."""
    from omegaconf import DictConfig, OmegaConf, open_dict

    from repro.configuration import NOT_HASHED, from_stored, to_dict

    def leaves(tree, prefix=""):
        out = {}
        for k, v in tree.items():
            out.update(leaves(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
        return out

    def hashed(key):
        return not any(key == n or key.startswith(n + ".") for n in NOT_HASHED)

    bases, problems = {}, []
    paths = sorted(report.ROOT.joinpath("results").glob("*/*.json"))
    assert paths, "no committed results found"
    superseded = {h for spec in report.load_specs() for h in report.superseded(spec)}
    for path in paths:
        result = json.loads(path.read_text())
        if result["config_hash"] in superseded:  # an earlier config's runs, kept and marked
            continue
        exp = result["experiment"]
        if exp not in bases:
            bases[exp] = compose([f"experiment={exp}"])
        cfg = bases[exp].copy()
        # The stored config as the schema reads it now: keys added since take their defaults.
        stored_cfg = from_stored(result["config"])
        base, stored = leaves(to_dict(cfg)), leaves(to_dict(stored_cfg))
        diff = sorted(k for k in base.keys() | stored.keys()
                      if hashed(k) and base.get(k, "<absent>") != stored.get(k, "<absent>"))
        overridden = _command_keys(result["provenance"]["command"])
        raw = leaves(OmegaConf.to_container(cfg, resolve=False))  # e.g. decay_steps: ${train.steps}

        unexplained = [k for k in diff if not _explained(k, raw, overridden)]
        if unexplained:
            now, then = [base.get(k) for k in unexplained], [stored.get(k) for k in unexplained]
            problems.append(f"{path.name}: {unexplained} differ from the experiment config "
                            f"(now {now}, stored {then})")
            continue
        whole = [k for k in sorted(overridden) if isinstance(OmegaConf.select(stored_cfg, k), DictConfig)]
        for key in whole:  # a group choice (model=seqgan) sets its subtree as a whole
            with open_dict(cfg):
                OmegaConf.update(cfg, key, OmegaConf.select(stored_cfg, key), merge=False)
        for key in sorted(diff):  # a parent (e.g. data.derive: null -> {...}) before its leaves
            if any(key == w or key.startswith(w + ".") for w in whole):
                continue
            OmegaConf.update(cfg, key, OmegaConf.select(stored_cfg, key), merge=False)
        if config_hash(cfg) != result["config_hash"]:
            problems.append(f"{path.name}: hash now {config_hash(cfg)}, stored {result['config_hash']}")
    assert not problems, "\n".join(problems)
    stale = superseded - {json.loads(p.read_text())["config_hash"] for p in paths}
    assert not stale, f"specs mark as superseded config hashes no committed result has: {stale}"


def test_result_files_carry_no_machine_paths_or_hostname(run_overrides, tiny_data_dir):
    import socket
    from pathlib import Path

    result = run(compose(["experiment=debug", *run_overrides, "train.steps=20", "train.chunk_steps=10",
                          "train.eval_every=10"]))
    text = Path(result_path_of(result)).read_text()
    assert str(tiny_data_dir) not in text and "<data dir>" in text
    assert str(report.ROOT) not in text and str(Path.home()) + "/" not in text
    assert '"host"' not in text and f'"{socket.gethostname()}"' not in text
    stored = json.loads(text)
    assert stored["data_source"] == "mirror:<data dir>/mnist"
    assert stored["data"]["splits"] == {"train": 600, "test": 200}
    assert set(stored["data"]["sha256"]) == {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}
    assert stored["provenance"]["hardware"]["device_kind"] and stored["provenance"]["versions"]["jax"]


def result_path_of(result: dict):
    from repro.results import result_path

    return result_path(result["config"]["paths"]["results"], result["experiment"], result["name"])


def test_the_readme_paper_table_is_the_one_the_verdicts_give():
    """The README's status column is generated by make report from the committed results' verdicts:
    stale or hand-written, this fails (run make report)."""
    readme = (report.ROOT / "README.md").read_text()
    start, end = (readme.index(m) for m in report.README_MARKERS)
    shown = readme[start:end + len(report.README_MARKERS[1])]
    papers = [report.paper_row(spec, *report.paper_section(spec, report.ROOT / "results", draw=False)[1:])
              for spec in report.load_specs()]
    papers += [report.planned_row(paper) for paper in report.planned_papers()]
    if not registration.history_available(report.ROOT):  # a shallow clone cannot date the rows
        shown = re.sub(r"; \d+ with a tolerance or expectation set after their results", "", shown)
    assert shown == report.papers_block(papers)
    assert "vardrop_cifar10" in shown and "reproduced" not in shown


def test_every_committed_row_and_claim_rests_on_independent_seeds():
    """Two seeds giving exactly the same value of a row or a claim's side means the seed did not
    reach a random stream (the mixture paper's probe once drew every seed's mixtures with seed 0).
    Steps-to-threshold rows are exempt: evaluations every k steps make ties natural; so are claims
    marked seed_independent (measurements of the data alone), and ties at a bound of the metric
    (0 or 1: e.g. a mask AP of 0 for every seed of an untrained mask branch) when the seeds' runs
    differ elsewhere (their training reached its own random stream)."""
    from repro import verdicts

    same = []
    for spec in report.load_specs():
        groups = report.group_by_variant(spec, load_results(report.ROOT / "results", spec["experiment"]))
        items = [(row, [row["variant"]]) for row in spec["reported"] if "steps_to" not in row]
        items += [(c, [c["a"], *([c["b"]] if c.get("b") else [])]) for c in spec.get("claim_tests", [])
                  if "steps_to" not in c and not c.get("seed_independent")]
        for item, variants in items:
            for variant in variants:
                values = verdicts.values_by_seed(groups.get(variant, []), item)
                if len(values) >= 2 and len(set(values.values())) == 1:
                    runs = groups[variant]
                    if set(values.values()) <= {0.0, 1.0} and len({json.dumps(r["final"], sort_keys=True)
                                                                   for r in runs}) == len(runs):
                        continue
                    same.append(f"{spec['experiment']}: {item['description']!r} ({variant}): "
                                f"{len(values)} seeds all give {next(iter(values.values()))}")
    assert not same, "\n".join(same)
