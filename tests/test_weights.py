"""Final weights kept beside each result file: a run's evaluation and probes are recomputed from
them without retraining, and weights of another model are refused."""

import numpy as np
import pytest
from conftest import compose

from repro import recompute
from repro.run import run
from repro.weights import load_weights, save_weights, weights_path

PROBE = {"_target_": "experiments.bn_mnist.probes.SigmoidInputPercentiles", "layer": 0, "units": [0, 1]}


def _tiny(run_overrides, *more):
    return compose(["experiment=debug", *run_overrides, "train.steps=20", "train.chunk_steps=10",
                    "train.eval_every=10", "model.hidden=[16,8]", *more])


def test_a_run_is_recomputed_from_its_weights_exactly_and_takes_new_probes(run_overrides, tmp_path,
                                                                           tiny_data_dir):
    result = run(_tiny(run_overrides, "model.batchnorm=true"))
    path = tmp_path / "results" / "debug" / f"{result['name']}.json"
    assert result["weights"] == weights_path(path).name and weights_path(path).exists()
    again = recompute.recompute(path, data_dir=str(tiny_data_dir))
    evals = {k: v for k, v in result["final"].items() if "/" in k and not k.startswith("train/")}
    assert evals and {k: again[k] for k in evals} == evals  # same device, same code: bitwise
    assert not recompute.differences(again, result["final"])
    with_probe = recompute.recompute(path, [PROBE], str(tiny_data_dir))
    assert len(with_probe["probe/sigmoid_input_p50"]) == 2

    # A retrained run with another seed has other weights: the check notices.
    other = run(_tiny(run_overrides, "model.batchnorm=true", "seed=1"))
    other_path = tmp_path / "results" / "debug" / f"{other['name']}.json"
    weights_path(other_path).replace(weights_path(path))
    assert recompute.differences(recompute.recompute(path, data_dir=str(tiny_data_dir)), result["final"])
    assert recompute.main([str(path), "--check", "--data-dir", str(tiny_data_dir)]) == 1


def test_vmapped_seeds_each_keep_their_own_weights(run_overrides, tmp_path, tiny_data_dir):
    results = run(_tiny(run_overrides, "seeds=[0,1]"))
    for result in results:
        path = tmp_path / "results" / "debug" / f"{result['name']}.json"
        assert recompute.main([str(path), "--check", "--data-dir", str(tiny_data_dir)]) == 0
    first, second = (np.load(weights_path(tmp_path / "results" / "debug" / f"{r['name']}.json"))
                     for r in results)
    assert set(first.files) == set(second.files)
    assert any(not np.array_equal(first[k], second[k]) for k in first.files)


def test_weights_of_another_model_are_refused_naming_the_leaf(tmp_path):
    save_weights(tmp_path / "w.npz", {"dense": {"kernel": np.zeros((3, 4), np.float32)}}, {})
    with pytest.raises(ValueError, match=r"params/dense/kernel is float32\[3, 4\], the model wants "
                                         r"float32\[3, 5\]"):
        load_weights(tmp_path / "w.npz", {"dense": {"kernel": np.zeros((3, 5), np.float32)}}, {})
    with pytest.raises(ValueError, match="has no params/out/kernel"):
        load_weights(tmp_path / "w.npz", {"out": {"kernel": np.zeros((3, 4), np.float32)}}, {})
    with pytest.raises(FileNotFoundError, match="rerun it"):
        load_weights(tmp_path / "absent.npz", {}, {})


@pytest.mark.parametrize("where", ["probes", "model", "probe_file"])
def test_a_crafted_result_or_probe_file_cannot_build_a_class_outside_the_project(
        run_overrides, tmp_path, tiny_data_dir, where):
    """A logging.FileHandler in mode 'w' would empty its file when built: refused before."""
    import json

    from repro.configuration import UntrustedTargetError

    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    handler = {"_target_": "logging.FileHandler", "filename": str(victim), "mode": "w"}
    result = run(_tiny(run_overrides))
    path = tmp_path / "results" / "debug" / f"{result['name']}.json"
    stored = json.loads(path.read_text())
    probes = []
    if where == "probes":
        stored["config"]["probes"] = [handler]
    elif where == "model":
        stored["config"]["model"]["_target_"] = "logging.FileHandler"
    else:
        probes = [handler]
    path.write_text(json.dumps(stored))
    with pytest.raises(UntrustedTargetError, match="only the project's own classes"):
        recompute.recompute(path, probes, str(tiny_data_dir))
    assert victim.read_text() == "keep me"


def test_a_spec_variant_cannot_name_a_class_outside_the_project():
    from repro.spec import SpecError, validate

    for override in ("+probes=[{_target_: os.system}]", "objective._target_=os.remove",
                     "data.derive={_target_: 'shutil.rmtree', path: x}"):
        spec = {"title": "t", "paper": "p", "command": "-", "reported": [], "variants": {"x": [override]}}
        with pytest.raises(SpecError, match="names a class outside the project"):
            validate(spec, "spec.yaml")
    ok = {"title": "t", "paper": "p", "command": "-", "reported": [],
          "variants": {"x": ["+probes=[{_target_: experiments.bn_mnist.probes.SigmoidInputPercentiles}]"]}}
    validate(ok, "spec.yaml")


@pytest.mark.parametrize("content, message", [
    ('{"seed": 0}', r"lacks \['config_hash', 'history', 'config'\]: not a result file of this suite"),
    ("{not json", "not a readable result file"),
])
def test_recompute_of_a_file_that_is_no_result_says_so_without_a_traceback(tmp_path, content, message):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(SystemExit, match=f"error: .*{message}"):
        recompute.main([str(path)])
