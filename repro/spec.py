"""The schema of a paper's spec.yaml, checked when specs load.

A spec is half of every paper: what it reported, how each number is judged, the run grid. Its
keys are declared here (types and which are required); a misspelt key, a wrong type, a row or
claim naming a variant the spec does not define, all fail when the spec loads, with the file,
the key and the closest valid key named, instead of surfacing later as a KeyError or a silent
"not run". `load_spec` returns the checked spec as a plain dict (the report and reproduce read
it so); a broken spec fails only the commands that need that paper (`load_specs` collects it).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from repro.configuration import TRUSTED_TARGETS
from repro.verdicts import split_metric

Number = int | float


@dataclasses.dataclass
class ReportedRow:
    """A number the paper reports, the variant and metric that reproduce it, and its tolerance
    (repro/verdicts.py). `metric` is a logged metric (`test/accuracy`), a ratio `a / b` or a
    difference `a - b` of two at the same step, or a
    result block's fact: `facts/<name>` (parameters, flops_per_example) or `timing/<name>`
    (steps_per_second, train_seconds, ...)."""

    description: str
    variant: str
    metric: str
    value: Number | str
    floor: Number
    source: str
    step: int | None = None
    digits: int = 4
    seeds_wanted: int | None = None
    paper_runs: int | None = None
    paper_se: Number | None = None
    read_error: Number | None = None
    scale: Literal["log"] | None = None
    over_training: Literal["min", "max"] | None = None
    steps_to: Number | None = None
    units: str | None = None
    better: Literal["higher", "lower"] | None = None
    # What the paper sets this number beside: group names shared with other rows, and paper values
    # that are no row here; the smallest gap decides whether the tolerance discriminates.
    compares: str | list[str | Number] | None = None


@dataclasses.dataclass
class ClaimRow:
    """A conclusion of the paper tested within seeds: a - b (or a alone; or a difference of
    differences, (a - b) - (c - d)) `expect`ed lower or higher than `than` (repro/verdicts.py:
    check_claim)."""

    description: str
    a: str
    metric: str
    expect: Literal["lower", "higher"]
    source: str
    b: str | None = None
    c: str | None = None  # with d: the gain a - b compared with the gain c - d, seed by seed
    d: str | None = None
    than: Number | None = None
    step: int | None = None
    step_b: int | None = None
    metric_b: str | None = None
    steps_to: Number | None = None
    paper: Number | None = None
    digits: int = 4
    # a measurement of the data alone (e.g. distances of shifted test images): the same for every
    # seed by design, so exempt from the check that seeds reach their random streams
    seed_independent: bool = False


@dataclasses.dataclass
class SupersededRuns:
    """Committed runs of an earlier config of the paper, kept (never deleted because a later
    config replaced them) and listed in the report with why they no longer count."""

    config_hash: str
    why: str


@dataclasses.dataclass
class Spec:
    title: str
    paper: str
    command: str
    variants: dict[str, list[str]]
    reported: list[ReportedRow]
    setup: dict[str, str] = dataclasses.field(default_factory=dict)
    deviations: list[str] = dataclasses.field(default_factory=list)
    claim_tests: list[ClaimRow] = dataclasses.field(default_factory=list)
    claims: list[Any] = dataclasses.field(default_factory=list)  # prose, shown in the report
    figures: str | None = None          # module with make_figures(groups, reference, out)
    headline_metric: str | None = None  # the metric of the other-runs table
    sweep_steps: list[Any] | None = None
    seeds_wanted: int | None = None
    vmap_seeds: bool = False
    on_demand: list[str] = dataclasses.field(default_factory=list)
    experiment: str | None = None       # must equal the folder's name when given
    scope: str | None = None            # what is run where (README's paper table); no verdicts
    superseded: list[SupersededRuns] = dataclasses.field(default_factory=list)


class SpecError(ValueError):
    """A spec.yaml that does not fit the schema; the message names the file and the key."""


def _fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _type_ok(value, hint) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in args)
    if origin is Literal:
        return value in args
    if hint is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list)
    if origin is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _check_node(node: dict, cls, where: str) -> None:
    if not isinstance(node, dict):
        raise SpecError(f"{where}: expected a mapping of {cls.__name__} keys, got {type(node).__name__}")
    fields = _fields(cls)
    hints = typing.get_type_hints(cls)
    for key, value in node.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(fields)}"
            raise SpecError(f"{where}: unknown key {key!r}{hint}")
        if not _type_ok(value, hints[key]):
            raise SpecError(f"{where}.{key}: {value!r} is not {hints[key]}".replace("typing.", ""))
    required = [name for name, f in fields.items() if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in node]
    if missing:
        raise SpecError(f"{where}: missing required key(s) {missing}")


def check_row(row: dict, where: str) -> None:
    """One reported row against the schema (without its spec's variants)."""
    _check_node(row, ReportedRow, where)


def _check_variant(name: str, variants: dict, where: str) -> None:
    if name not in variants:
        close = difflib.get_close_matches(name, variants, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; variants: {', '.join(variants)}"
        raise SpecError(f"{where}: variant {name!r} is not defined in `variants`{hint}")


def _check_metric(metric: str, where: str) -> None:
    try:
        split_metric(metric)
    except ValueError as err:
        raise SpecError(f"{where}: {err}") from None


def _check_compare_groups(rows: list[dict], where: str) -> None:
    """A `compares` group that no other row shares compares with nothing: most likely a typo."""
    members: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        compares = row.get("compares")
        for group in [compares] if isinstance(compares, str) else compares or []:
            if isinstance(group, str):
                members.setdefault(group, []).append(i)
    for group, rows_in in members.items():
        if len(rows_in) == 1:
            close = difflib.get_close_matches(group, [g for g in members if g != group], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SpecError(f"{where}.reported[{rows_in[0]}].compares: group {group!r} is shared by no "
                            f"other row{hint}")


def validate(spec: dict, where: str) -> dict:
    """The spec, checked against the schema (module docstring); raises SpecError."""
    _check_node(spec, Spec, where)
    variants = spec["variants"]
    for name, overrides in variants.items():
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise SpecError(f"{where}.variants.{name}: a list of Hydra overrides (strings)")
        for override in overrides:  # a spec is a data file: it builds only the project's classes
            named = re.findall(r"_target_\s*[:=]\s*['\"]?([^\s,}'\"]+)", override)
            if any(not t.startswith(TRUSTED_TARGETS) for t in named):
                raise SpecError(f"{where}.variants.{name}: {override!r} names a class outside the "
                                "project (repro.*, experiments.*)")
    for i, row in enumerate(spec["reported"]):
        _check_node(row, ReportedRow, f"{where}.reported[{i}]")
        _check_metric(row["metric"], f"{where}.reported[{i}].metric")
        _check_variant(row["variant"], variants, f"{where}.reported[{i}] ({row['description']!r})")
        compares = row.get("compares")
        if isinstance(compares, list) and not all(isinstance(c, str | int | float) and not isinstance(c, bool)
                                                  for c in compares):
            raise SpecError(f"{where}.reported[{i}].compares: a group name or a list of group names "
                            f"and paper values, got {compares!r}")
    _check_compare_groups(spec["reported"], where)
    for i, claim in enumerate(spec.get("claim_tests", [])):
        _check_node(claim, ClaimRow, f"{where}.claim_tests[{i}]")
        for key in ("metric", "metric_b"):
            if claim.get(key):
                _check_metric(claim[key], f"{where}.claim_tests[{i}].{key}")
        for side in ("a", "b", "c", "d"):
            if claim.get(side) is not None:
                _check_variant(claim[side], variants, f"{where}.claim_tests[{i}].{side}")
        if (claim.get("c") is None) != (claim.get("d") is None) or (claim.get("c") and not claim.get("b")):
            raise SpecError(f"{where}.claim_tests[{i}]: c and d come together, and with b: the claim "
                            f"is (a - b) - (c - d)")
    for name in spec.get("on_demand", []):
        _check_variant(name, variants, f"{where}.on_demand")
    for i, runs in enumerate(spec.get("superseded", [])):
        _check_node(runs, SupersededRuns, f"{where}.superseded[{i}]")
    return spec


def load_spec(path: Path) -> dict:
    """One paper's spec.yaml, parsed and checked; its experiment is the folder's name."""
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML ({err})") from err
    spec = validate(spec, str(path))
    if spec.get("experiment", path.parent.name) != path.parent.name:
        raise SpecError(f"{path} names experiment {spec['experiment']!r}: a paper's folder is its "
                        "experiment, so rename the folder or drop the key")
    spec["experiment"], spec["_dir"] = path.parent.name, path.parent
    return spec
