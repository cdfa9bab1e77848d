"""Hostile spec files and --set paths: each is one `error:` line and exit 2, fast and in bounded
memory (binary, UTF-16 and NUL bytes, 5,000-deep nesting, alias bombs, recursive aliases,
oversized files), duplicate keys, non-finite numbers, an empty source list, unsafe run names."""
from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest
import yaml

from fixtures.processes import run_cli
from vattfw.cli import main
from vattfw.spec import loader

# 340 bytes that expand to 9^9 (387 million) strings when walked: the billion-laughs shape.
BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]"] +
                 [f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
                  for p, c in zip("abcdefgh", "bcdefghi")]) + "\n"


def one_error(capsys, *argv: str) -> str:
    rc = main(list(argv))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def spec_file(tmp_path: Path, data: bytes | str) -> str:
    path = tmp_path / "spec.yaml"
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


@pytest.mark.parametrize("data, fragment", [
    (bytes(range(256)) * 4, "NUL byte at offset 0"),
    (os.urandom(64).replace(b"\0", b"\x01") + b"\xff", "is not UTF-8"),
    ("run: {name: x}\n".encode("utf-16"), "UTF-16"),
    (b"run: {name: x}\n\0\0", "NUL byte at offset 15"),
    (b"run: {name: x}\x01\n", "unacceptable character #x0001"),
    (b"# padding\n" * 20_000, "a spec is at most 128 KiB"),
])
def test_binary_and_foreign_text_is_one_line(tmp_path, capsys, data, fragment):
    path = spec_file(tmp_path, data)
    line = one_error(capsys, "validate", path)
    assert line.startswith(f"error: {path}") and fragment in line, line


@pytest.mark.timeout(120)  # a hang guard: each case takes well under a second to parse
def test_deep_nesting_and_alias_bombs_fail_fast_in_bounded_memory(tmp_path, capsys):
    assert len(BOMB) < 400
    for text, fragment in [("[" * 5000 + "]" * 5000, "nesting deeper than 64 levels"),
                           ("a:\n" + "".join(f"{' ' * (i + 1)}b{i}:\n" for i in range(200)), "nesting deeper"),
                           (BOMB, "expands to more than 100,000 values"),
                           ("a: &a [1, *a]\n", "recursive alias")]:
        tracemalloc.start()
        with pytest.raises(yaml.YAMLError, match=fragment):
            loader.parse_yaml(text)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 32 * 2 ** 20, (fragment, peak)  # the bomb, walked, would need tens of GB
        line = one_error(capsys, "validate", spec_file(tmp_path, text))
        assert "invalid YAML: " in line and fragment in line, line


def test_the_bomb_as_a_fresh_process_exits_2_with_one_line(tmp_path):
    res = run_cli("validate", spec_file(tmp_path, BOMB), timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'spec.yaml'}:2: invalid YAML: expands to more than 100,000 values once its "
        f"aliases are expanded (an alias bomb?)"] or "alias bomb" in res.stderr, res.stderr


def test_aliases_within_limits_still_work(tmp_path, capsys):
    text = ("base: &t {name: transformer, layers: 1, width: 32, mlp_dim: 64, heads: 4}\n"
            "run: {name: x}\n")
    data, _ = loader.parse_yaml(text)
    assert data["base"]["layers"] == 1
    merged, _ = loader.parse_yaml("a: &a {x: 1, y: 2}\nb:\n  <<: *a\n  y: 3\n")  # merge keys may be overridden
    assert merged["b"] == {"x": 1, "y": 3}


def test_duplicate_key_names_both_lines(tmp_path, capsys):
    path = spec_file(tmp_path, "run:\n  name: x\n  seed: 1\n  name: y\n")
    line = one_error(capsys, "validate", path)
    assert line == f"error: {path}:4: invalid YAML: duplicate key 'name' (first on line 2); keep one", line


@pytest.mark.parametrize("override, fragment", [
    ("optimizer.lr=.inf", "optimizer.lr: got inf; input should be a finite number"),
    ("optimizer.lr=.nan", "optimizer.lr: got nan; input should be a finite number"),
    ("data.sources=[]", "sources: an empty list; at least one datasource is needed"),
    ("run.name=../elsewhere", "run.name: got '../elsewhere'; a run name is one folder name"),
    ("run.name=a/b", "run.name: got 'a/b'; a run name is one folder name"),
    ("run.name=..", "run.name: got '..'; a run name is one folder name"),
])
def test_field_validation(tmp_path, capsys, override, fragment):
    line = one_error(capsys, "validate", spec_file(tmp_path, "run: {name: x}\n"), "--set", override)
    assert fragment in line, line


def test_the_same_in_the_file_is_located_at_its_line(tmp_path, capsys):
    path = spec_file(tmp_path, "run: {name: x}\noptimizer:\n  name: adam\n  lr: .inf\n")
    assert one_error(capsys, "validate", path).startswith(f"error: {path}:4: optimizer.lr: got inf;")
    path = spec_file(tmp_path, "run:\n  name: ../../etc\n")
    assert one_error(capsys, "validate", path).startswith(f"error: {path}:2: run.name: got '../../etc';")


@pytest.mark.parametrize("override, expected", [
    ("nosuch.path=1", "error: --set: nosuch.path: unknown key 'nosuch' in the spec; valid keys: run, mesh, data"),
    ("train.steps.deeper=1", "error: --set: train.steps.deeper: train.steps is a plain value (int), "
                             "it has no key 'deeper'"),
    ("train.stesp=1", "error: --set: train.stesp: unknown key 'stesp' in train; did you mean 'steps'?"),
    ("run..name=x", "error: --set: run..name: an empty key between dots"),
])
def test_set_paths_are_checked_against_the_schema(tmp_path, capsys, override, expected):
    line = one_error(capsys, "validate", spec_file(tmp_path, "run: {name: x}\ntrain: {steps: 5}\n"),
                     "--set", override)
    assert line.startswith(expected), line


def test_set_into_plugin_sections_still_works(tmp_path, capsys):
    path = spec_file(tmp_path, "run: {name: x}\noptimizer: sgd\n")
    spec = loader.load_spec(path, ["optimizer.lr=0.5", "schedule.warmup_steps=3"])
    assert spec.optimizer.name == "sgd" and spec.optimizer.config.lr == 0.5
    assert spec.schedule.config.warmup_steps == 3
    line = one_error(capsys, "validate", path, "--set", "optimizer.lr.x=1")  # no lr in the file: validation says
    assert line.startswith("error: --set: optimizer.lr: ") and "valid number" in line, line
    path = spec_file(tmp_path, "run: {name: x}\noptimizer: {name: sgd, lr: 0.1}\n")
    line = one_error(capsys, "validate", path, "--set", "optimizer.lr.x=1")
    assert line == "error: --set: optimizer.lr.x: lr is 0.1, a plain value with no keys", line
    line = one_error(capsys, "validate", path, "--set", "optimizer.lrr=1")
    assert line.startswith("error: --set: optimizer.lrr: unknown key 'lrr'"), line
