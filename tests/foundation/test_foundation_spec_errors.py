"""Every class of user error: exit code 2, the file, the dotted path, what was given and what
is valid, one line per problem, no traceback."""
from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.processes import run_cli


def validate(tmp_path: Path, text: str, *extra: str):
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    res = run_cli("validate", str(spec), *extra)
    assert "Traceback" not in res.stderr, res.stderr
    return res, str(spec)


def error_lines(res) -> list[str]:
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), res.stderr
    return lines


def test_bad_yaml_reports_the_line(tmp_path):
    res, path = validate(tmp_path, "run:\n  name: x\ntrain: [1,\n  steps: 2\n")
    (line,) = error_lines(res)
    assert line.startswith(f"error: {path}:") and "invalid YAML" in line
    assert int(line.split(":")[2]) >= 3


def test_missing_file(tmp_path):
    res = run_cli("validate", str(tmp_path / "nope.yaml"))
    (line,) = error_lines(res)
    assert "nope.yaml" in line and "not found" in line


def test_unknown_key_suggests_the_closest(tmp_path):
    res, path = validate(tmp_path, "run:\n  name: x\n  seeed: 3\n")
    (line,) = error_lines(res)
    assert line.startswith(f"error: {path}:3: run.seeed: unknown key 'seeed'; did you mean 'seed'? "
                           "valid keys: name, seed, output_dir")


def test_wrong_type_and_out_of_range_are_each_one_line(tmp_path):
    res, path = validate(tmp_path, "train:\n  steps: many\n  global_batch_size: 0\n  precision: fp16\n")
    lines = error_lines(res)
    assert len(lines) == 3
    assert f"{path}:2: train.steps: got 'many'; input should be a valid integer" in lines[1] + lines[0] + lines[2]
    assert any(f"{path}:3: train.global_batch_size: got 0; input should be greater than or equal to 1" in l
               for l in lines)
    assert any("train.precision: got 'fp16'; input should be 'fp32' or 'bf16'" in l for l in lines)


def test_unknown_plugin_lists_the_registered_names(tmp_path):
    res, path = validate(tmp_path, "optimizer:\n  name: adamm\n  lr: 0.1\n")
    (line,) = error_lines(res)
    assert f"{path}:2: optimizer.name: unknown optimizer 'adamm'" in line
    assert "registered optimizers:" in line


def test_unknown_field_inside_a_plugin_section_names_the_full_path(tmp_path):
    res, path = validate(tmp_path, "losses:\n  terms:\n    va:\n      loss: {name: nce, temprature: 0.1}\n"
                                   "      x: video_va\n      y: audio_va\n")
    (line,) = error_lines(res)
    assert "losses.terms.va.loss.temprature: unknown key 'temprature'; did you mean 'temperature'?" in line
    assert line.startswith(f"error: {path}:4:")


def test_missing_required_field(tmp_path):
    res, path = validate(tmp_path, "losses:\n  terms:\n    va:\n      loss: nce\n      x: video_va\n")
    (line,) = error_lines(res)
    assert f"{path}:3: losses.terms.va.y: missing required field" in line


def test_plugin_section_without_a_name(tmp_path):
    res, _ = validate(tmp_path, "optimizer:\n  lr: 0.1\n")
    (line,) = error_lines(res)
    assert "optimizer.name: missing required field 'name'; registered optimizers:" in line


@pytest.mark.parametrize("text, path, fragment", [
    ("mesh: {data: 4}\ntrain: {global_batch_size: 10}\n", "train.global_batch_size",
     "must divide by the mesh's data x fsdp size (4 x 1 = 4)"),
    ("train: {global_batch_size: 10, grad_accumulation: 4}\n", "train.grad_accumulation",
     "global_batch_size 10 must divide by it"),
    ("mesh: {data: -1, fsdp: -1}\n", "mesh", "at most one axis may be -1"),
])
def test_cross_field_errors(tmp_path, text, path, fragment):
    res, _ = validate(tmp_path, text)
    (line,) = error_lines(res)
    assert f" {path}: " in line and fragment in line


def test_bad_override_is_located_at_the_command_line(tmp_path):
    res, _ = validate(tmp_path, "run: {name: x}\n", "--set", "train.steps=lots")
    (line,) = error_lines(res)
    assert line.startswith("error: --set: train.steps: got 'lots'; input should be a valid integer")


def test_override_without_equals(tmp_path):
    res, _ = validate(tmp_path, "run: {name: x}\n", "--set", "train.steps")
    (line,) = error_lines(res)
    assert "expected KEY=VALUE" in line


def test_extends_cycle_and_missing_base(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    res = run_cli("validate", str(tmp_path / "a.yaml"))
    assert "extends forms a cycle" in error_lines(res)[0]
    (tmp_path / "c.yaml").write_text("extends: missing.yaml\n")
    res = run_cli("validate", str(tmp_path / "c.yaml"))
    assert "missing.yaml" in error_lines(res)[0] and "not found" in error_lines(res)[0]
