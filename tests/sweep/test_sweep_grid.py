"""Grid files and point validation: everything is checked before anything runs."""
from pathlib import Path

import pytest

import vattfw
from vattfw.sweep.grid import load_grid, plan
from vattfw.sweep.runner import Sweep, markdown


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_bad_point_overrides_are_reported_by_name_before_running(toy_spec, tmp_path):
    grid = write(tmp_path / "bad.yaml", "base: tiny.yaml\n"
                 "points:\n"
                 "  - {name: good, set: [train.steps=1]}\n"
                 "  - {name: negative, set: [train.steps=-3]}\n"
                 "  - {name: typo, set: ['model.tokenizers.video.patchh=[4, 16, 16]']}\n"
                 "metrics: [probe/top1]\n")
    out = tmp_path / "out"
    with pytest.raises(vattfw.UserError) as err:
        Sweep(grid, out=out)
    lines = [str(p) for p in err.value.problems]
    assert any(s.startswith("point negative: ") and "train.steps" in s for s in lines), lines
    assert any(s.startswith("point typo: ") and "patchh" in s for s in lines), lines
    assert not any("point good" in s for s in lines)
    assert not out.exists()  # nothing ran, nothing was written


def test_bad_input_through_the_cli_exits_2_with_point_lines(toy_spec, tmp_path, cli):
    grid = write(tmp_path / "bad.yaml", "base: tiny.yaml\npoints:\n  - {name: p1, set: [train.steps=zero]}\n"
                 "metrics: [probe/top1]\n")
    res = cli("sweep", str(grid), "--out", str(tmp_path / "out"))
    assert res.returncode == 2
    assert "point p1: " in res.stderr and "train.steps" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_grid_file_itself_is_validated(tmp_path):
    grid = write(tmp_path / "g.yaml", "base: x.yaml\npoints: [{name: a}, {name: a}]\nmetrics: [m]\ncolumns: [m]\n")
    with pytest.raises(vattfw.UserError) as err:
        load_grid(grid)
    text = str(err.value)
    assert "two points are named 'a'" in text and "columns" in text


def test_checkpoint_reference_must_name_an_earlier_point(toy_spec, tmp_path):
    grid = write(tmp_path / "g.yaml", "base: tiny.yaml\npoints:\n  - {name: a, checkpoint: '@b'}\n"
                 "  - {name: b}\nmetrics: [m]\n")
    with pytest.raises(vattfw.UserError, match="point a: checkpoint '@b' names no earlier point"):
        plan(grid)


def test_override_order_point_then_profile_then_cli(toy_spec, tmp_path):
    write(tmp_path / "prof.yaml", "description: scale down\nset: [train.steps=7]\n"
          "points: {a: [train.global_batch_size=2], elsewhere: [train.steps=1]}\n")
    grid = write(tmp_path / "g.yaml", "base: tiny.yaml\npoints:\n"
                 "  - {name: a, set: [train.steps=100, train.global_batch_size=8]}\n"
                 "  - {name: b, set: [train.steps=100]}\nmetrics: [m]\n")
    _, _, points = plan(grid, ["run.seed=3"], profile=str(tmp_path / "prof.yaml"))
    a, b = points
    assert (a.spec.train.steps, a.spec.train.global_batch_size, a.spec.run.seed) == (7, 2, 3)
    assert (b.spec.train.steps, b.spec.train.global_batch_size) == (7, 4)
    _, _, plain = plan(grid, profile="none")
    assert plain[0].spec.train.steps == 100


def test_every_point_gets_an_mlflow_tracker_and_its_own_run_folder(toy_spec, tmp_path):
    grid = write(tmp_path / "g.yaml", "base: tiny.yaml\npoints: [{name: a}, {name: b}]\nmetrics: [m]\n")
    sweep = Sweep(grid, out=tmp_path / "out")
    for p in sweep.points:
        assert [t.name for t in p.spec.tracking.trackers] == ["mlflow"]
        assert Path(p.spec.run.output_dir) == (tmp_path / "out").resolve() and p.spec.run.name == p.name
    assert sweep.uri.startswith("sqlite:///")


def test_markdown_table_rows_are_points_columns_are_metrics():
    rows = [{"point": "a", "x/top1": 0.5, "y": None}, {"point": "b", "x/top1": 1.0, "y": 2}]
    assert markdown(rows, ["x/top1", "y"]).splitlines() == [
        "| point | x/top1 | y |", "|---|---|---|", "| a | 0.5000 | - |", "| b | 1.0000 | 2 |"]


def test_shipped_grids_validate_at_paper_scale_and_with_the_demo_profile():
    repo = Path(__file__).resolve().parents[2]
    for name in ("table8", "table9", "table10"):
        grid = repo / "specs" / "ablations" / f"{name}.yaml"
        _, _, paper = plan(grid, profile="none")
        _, _, demo = plan(grid, profile=str(repo / "specs" / "ablations" / "demo-cpu.yaml"))
        assert [p.name for p in paper] == [p.name for p in demo]
