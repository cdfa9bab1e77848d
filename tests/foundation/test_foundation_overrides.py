"""--set overrides (typed by the schema) and extends merging, through the Python API."""
from __future__ import annotations

import pytest

import vattfw
from vattfw.spec.loader import apply_override, deep_merge


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("run: {name: base}\ntrain: {global_batch_size: 8, steps: 100}\n")
    return path


@pytest.mark.parametrize("override, read, expected", [
    ("train.steps=7", lambda s: s.train.steps, 7),                                  # int
    ("optimizer.lr=2.5e-4", lambda s: s.optimizer.config.lr, 2.5e-4),                  # float into a plugin
    ("run.name=1234", lambda s: s.run.name, "1234"),                                # number typed as str
    ("train.precision=bf16", lambda s: s.train.precision, "bf16"),                  # enum
    ("mesh.data=-1", lambda s: s.mesh.data, -1),                                     # negative int
    ("eval.every_steps=0", lambda s: s.eval.every_steps, 0),
])
def test_scalar_overrides_are_typed_by_the_schema(spec_file, override, read, expected):
    spec = vattfw.load_spec(spec_file, [override])
    value = read(spec)
    assert value == expected and type(value) is type(expected)


def test_list_and_dict_overrides(spec_file):
    spec = vattfw.load_spec(spec_file, [
        "losses.terms={va: {loss: {name: nce, temperature: 0.1}, x: video_va, y: audio_va}}",
        "tracking.trackers=[]",
    ])
    assert list(spec.losses.terms) == ["va"]
    assert spec.losses.terms["va"].loss.config.temperature == 0.1
    assert spec.tracking.trackers == []


def test_override_into_a_list_element(spec_file):
    spec = vattfw.load_spec(spec_file, ["tracking.trackers=[{name: mlflow}]", "tracking.trackers.0.name=mlflow"])
    assert spec.tracking.trackers[0].name == "mlflow"


def test_extends_merges_mappings_and_replaces_lists(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "run: {name: base, seed: 5}\ntrain: {global_batch_size: 8, steps: 100}\ntracking: {trackers: [mlflow]}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nrun: {name: child}\ntracking: {trackers: []}\n")
    spec = vattfw.load_spec(tmp_path / "child.yaml")
    assert (spec.run.name, spec.run.seed, spec.train.steps) == ("child", 5, 100)
    assert spec.tracking.trackers == []


def test_extends_chain_resolves_relative_to_each_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "root.yaml").write_text("train: {steps: 3}\n")
    (tmp_path / "sub" / "mid.yaml").write_text("extends: ../root.yaml\nrun: {seed: 9}\n")
    (tmp_path / "sub" / "leaf.yaml").write_text("extends: mid.yaml\nrun: {name: leaf}\n")
    spec = vattfw.load_spec(tmp_path / "sub" / "leaf.yaml")
    assert (spec.train.steps, spec.run.seed, spec.run.name) == (3, 9, "leaf")


def test_deep_merge_and_apply_override_primitives():
    assert deep_merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}}) == {"a": {"b": 1, "c": [2]}}
    data: dict = {"x": [{"y": 1}]}
    origins: dict = {}
    apply_override(data, "x.0.y=[1, 2]", origins)
    apply_override(data, "new.deep.key={k: v}", origins)
    assert data == {"x": [{"y": [1, 2]}], "new": {"deep": {"key": {"k": "v"}}}}
    assert origins[("x", 0, "y")] == ("--set", None)


def test_every_spec_field_has_a_description():
    missing = []
    for model in _all_models(vattfw.Spec):
        missing += [f"{model.__name__}.{n}" for n, f in model.model_fields.items() if not f.description]
    host = vattfw.default_host()
    for comp in host.components.values():
        missing += [f"{comp.kind}/{comp.name}.{n}" for n, f in comp.config.model_fields.items() if not f.description]
    assert not missing


def _all_models(root, seen=None):
    import typing
    from pydantic import BaseModel
    seen = seen if seen is not None else set()
    if root in seen:
        return seen
    seen.add(root)
    for f in root.model_fields.values():
        stack = [f.annotation]
        while stack:
            tp = stack.pop()
            stack += list(typing.get_args(tp))
            if isinstance(tp, type) and issubclass(tp, BaseModel) and not issubclass(tp, vattfw.PluginSpec):
                _all_models(tp, seen)
    return seen
